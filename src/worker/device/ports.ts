// EventChannels has one pending-ports subscriber; a process may serve several devices over one
// platform (the demo), so ports are dispatched from here. Overflow (the kernel queue was reset)
// means every port may be pending: every handler runs. Whoever else needs events from the same
// EventChannels must register here too: a second onPending() would replace this subscriber.
import type { EventChannels } from '../../xen/evtchn';

type PortHandler = () => void;

class PortDispatcher {
  private readonly handlers = new Map<number, PortHandler>();

  constructor(evtchn: EventChannels) {
    evtchn.onPending((ports, overflow) => {
      if (overflow) {
        for (const h of [...this.handlers.values()]) h();
        return;
      }
      for (const p of ports) this.handlers.get(p)?.();
    });
  }

  register(port: number, handler: PortHandler): void {
    this.handlers.set(port, handler);
  }

  unregister(port: number): void {
    this.handlers.delete(port);
  }
}

const dispatchers = new WeakMap<EventChannels, PortDispatcher>();

export function portDispatcher(evtchn: EventChannels): PortDispatcher {
  let d = dispatchers.get(evtchn);
  if (!d) {
    d = new PortDispatcher(evtchn);
    dispatchers.set(evtchn, d);
  }
  return d;
}

export type { PortDispatcher };
