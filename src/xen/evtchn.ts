// Event channels: the interface the device code uses. Implemented on Linux over
// /dev/xen/evtchn (xen/linux) and by the simulator (sim/).
//
// Semantics follow Linux drivers/xen/evtchn.c and include/uapi/xen/evtchn.h:
// when an event arrives the port is masked and reported as pending; it stays masked until
// unmask(port), which the device calls after it has drained the ring. So a device sees at most
// one pending report per port until it unmasks.

export type PendingHandler = (ports: readonly number[]) => void;

export interface EventChannels {
  /** Binds the frontend's unbound port; resolves to the local port. */
  bindInterdomain(remoteDomid: number, remotePort: number): Promise<number>;
  unbind(localPort: number): void;
  /** Sends an event to the peer of localPort. */
  notify(localPort: number): void;
  /** Re-enables delivery for a port reported pending (write-back to /dev/xen/evtchn). */
  unmask(localPort: number): void;
  /**
   * Subscribes to pending ports. The handler runs on the event loop, never re-entrantly.
   * `overflow` = the kernel queue overflowed and was reset: every bound port must be treated
   * as pending (re-scan every ring). `ports` is valid during the call only (it is reused).
   */
  onPending(handler: (ports: readonly number[], overflow: boolean) => void): void;
  /** Unbinds every port and releases the device. */
  close(): void;
}
