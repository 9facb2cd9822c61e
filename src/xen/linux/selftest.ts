// A dom0 loopback self-test of the Linux platform that needs no guest, no xl and no worker:
// dom0 binds an event channel to itself (BIND_UNBOUND_PORT on one fd, BIND_INTERDOMAIN on the
// platform's) and grants itself pages through /dev/xen/gntalloc, then maps and grant-copies
// them through the platform's GrantTable. This is what `xl block-attach 0` relies on too
// (dom0 serving its own frontend). It runs the exact code the worker runs, so on the Xen-in-QEMU
// harness it tells platform bugs apart from protocol bugs.
import { setTimeout as sleep } from 'node:timers/promises';
import * as fs from 'node:fs';
import { native } from '../../native/addon';
import { withTimeout } from '../../util/timeout';
import { GNTST, GrantCopyBatch, PAGE_SIZE } from '../grant-table';
import { openDevice, xenError } from './errors';
import type { LinuxEventChannels } from './evtchn';
import type { LinuxGrantTable } from './grant-table';
import { createLinuxPlatform, type LinuxPlatformOptions } from './platform';
import {
  EVTCHN_DEVICE, GNTALLOC_DEVICE, IOCTL, decodeAllocGref, encodeAllocGref, encodeDeallocGref, encodePort,
} from './uapi';

export interface SelfTestOptions extends LinuxPlatformOptions {
  gntallocPath?: string;
  /** This domain's id (0 in dom0). */
  selfDomid?: number;
  /** Notify → pending round trips to time. */
  rounds?: number;
}

const TIMEOUT_MS = 2000;

/** p, or a rejection naming the step when nothing comes within ms. */
function within<T>(p: Promise<T>, what: string, ms = TIMEOUT_MS): Promise<T> {
  return withTimeout(p, ms, () => {
    throw new Error(`self-test: ${what}: nothing within ${ms} ms`);
  });
}

/** Runs every step; returns one line per step; throws at the first failure, naming the step. */
export async function dom0SelfTest(opts: SelfTestOptions = {}): Promise<string[]> {
  const lines: string[] = [];
  const platform = createLinuxPlatform(opts);
  try {
    lines.push(...(await eventChannelLoopback(platform.evtchn as LinuxEventChannels, opts)));
    lines.push(...(await grantLoopback(platform.grants as LinuxGrantTable, opts)));
  } finally {
    platform.close();
  }
  return lines;
}

async function eventChannelLoopback(ev: LinuxEventChannels, opts: SelfTestOptions): Promise<string[]> {
  const addon = native();
  const self = opts.selfDomid ?? 0;
  const lines: string[] = [];
  const peerFd = openDevice(opts.evtchnPath ?? EVTCHN_DEVICE, fs.constants.O_NONBLOCK);
  const arg = new Uint8Array(4);
  const argView = new DataView(arg.buffer);
  const peerIoctl = (what: string, req: number, port: number) => {
    encodePort(argView, port);
    try {
      return addon.ioctl(peerFd, req, arg);
    } catch (err) {
      throw xenError(`self-test: ${what}`, err);
    }
  };
  try {
    const peerPort = peerIoctl(`IOCTL_EVTCHN_BIND_UNBOUND_PORT(${self})`, IOCTL.EVTCHN_BIND_UNBOUND_PORT, self);
    const port = await ev.bindInterdomain(self, peerPort);
    lines.push(`evtchn: bound local port ${port} to dom${self} port ${peerPort}`);

    let waiting: ((ports: readonly number[]) => void) | undefined;
    const deliveries: number[][] = [];
    ev.onPending((ports) => {
      deliveries.push([...ports]);
      waiting?.([...ports]);
    });
    const next = () => new Promise<readonly number[]>((r) => (waiting = r));

    let got = next();
    peerIoctl('IOCTL_EVTCHN_NOTIFY (peer)', IOCTL.EVTCHN_NOTIFY, peerPort);
    const ports = await within(got, 'pending after the peer notified');
    if (!ports.includes(port)) throw new Error(`self-test: pending ports ${ports.join(',')} lack ${port}`);

    // Masked until unmask: a second event must wait for the write-back, then arrive.
    const before = deliveries.length;
    got = next();
    peerIoctl('IOCTL_EVTCHN_NOTIFY (peer, while masked)', IOCTL.EVTCHN_NOTIFY, peerPort);
    await sleep(100);
    if (deliveries.length !== before) throw new Error('self-test: an event arrived while the port was masked');
    ev.unmask(port);
    await within(got, 'the event held while masked, after unmask');
    ev.unmask(port);
    lines.push('evtchn: pending delivered, held while masked, released by unmask');

    ev.notify(port);
    const back = Buffer.alloc(4);
    const t0 = Date.now();
    for (;;) {
      try {
        if (fs.readSync(peerFd, back) === 4) break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw xenError('self-test: read of the peer fd', err);
      }
      if (Date.now() - t0 > TIMEOUT_MS) throw new Error('self-test: the peer never saw our notify');
      await sleep(1);
    }
    if (back.readUInt32LE(0) !== peerPort)
      throw new Error(`self-test: the peer read port ${back.readUInt32LE(0)}, expected ${peerPort}`);
    lines.push('evtchn: notify reached the peer');

    const rounds = opts.rounds ?? 200;
    const times: number[] = [];
    for (let i = 0; i < rounds; i++) {
      got = next();
      const start = process.hrtime.bigint();
      peerIoctl('IOCTL_EVTCHN_NOTIFY (timing)', IOCTL.EVTCHN_NOTIFY, peerPort);
      await within(got, `timed round ${i}`);
      times.push(Number(process.hrtime.bigint() - start) / 1000);
      ev.unmask(port);
    }
    times.sort((a, b) => a - b);
    if (rounds) lines.push(`evtchn: notify → onPending median ${times[rounds >> 1].toFixed(1)} µs, p99 ${times[Math.floor(rounds * 0.99)].toFixed(1)} µs (${rounds} rounds)`);
    ev.unbind(port);
  } finally {
    fs.closeSync(peerFd);
  }
  return lines;
}

async function grantLoopback(gt: LinuxGrantTable, opts: SelfTestOptions): Promise<string[]> {
  const addon = native();
  const self = opts.selfDomid ?? 0;
  const lines: string[] = [];
  const allocFd = openDevice(opts.gntallocPath ?? GNTALLOC_DEVICE);
  const count = 2;
  const req = encodeAllocGref(self, count, true);
  try {
    addon.ioctl(allocFd, IOCTL.GNTALLOC_ALLOC_GREF, req);
  } catch (err) {
    fs.closeSync(allocFd);
    throw xenError('self-test: IOCTL_GNTALLOC_ALLOC_GREF', err);
  }
  const { index, grefs } = decodeAllocGref(req, count);
  let shared: ArrayBuffer | undefined;
  try {
    shared = addon.mmapShared(allocFd, PAGE_SIZE * count, index, true);
    const granted = new Uint8Array(shared);
    for (let i = 0; i < PAGE_SIZE; i++) granted[i] = (i * 7) & 0xff;
    granted.fill(0xa5, PAGE_SIZE);
    lines.push(`gntalloc: granted pages ${grefs.join(',')} to dom${self}`);

    const ring = await gt.mapRing(self, grefs);
    const mapped = new Uint8Array(ring.buffer);
    for (let i = 0; i < PAGE_SIZE * count; i++) {
      if (mapped[i] !== granted[i])
        throw new Error(`self-test: mapped byte ${i} is ${mapped[i]}, granted ${granted[i]}`);
    }
    Atomics.store(new Uint32Array(ring.buffer), 1, 0x600dcafe);
    if (new DataView(shared).getUint32(4, true) !== 0x600dcafe)
      throw new Error('self-test: a store through the mapping is not visible in the granted page');
    ring.unmap();
    if (ring.buffer.byteLength !== 0) throw new Error('self-test: the ring buffer is still attached after unmap');
    lines.push('gntdev: mapped, shared both ways, unmapped (GET_OFFSET_FOR_VADDR, munmap, UNMAP_GRANT_REF)');

    const pool = gt.allocPool(4 * PAGE_SIZE);
    pool.fill(0x3c, PAGE_SIZE, 2 * PAGE_SIZE);
    const batch = new GrantCopyBatch(4);
    batch.add(false, self, grefs[0], 100, 200, 0); // guest → pool, like a write request
    batch.add(true, self, grefs[1], 0, PAGE_SIZE, PAGE_SIZE); // pool → guest, like a read request
    batch.add(false, self, 0x0fff_fff0, 0, 16, 3 * PAGE_SIZE); // a gref nobody granted
    gt.copy(batch, pool);
    const status = [...batch.status.subarray(0, 3)];
    if (status[0] !== GNTST.okay || status[1] !== GNTST.okay || status[2] === GNTST.okay) {
      throw new Error(`self-test: grant copy statuses ${status.join(',')}, expected 0,0,<error>`);
    }
    for (let i = 0; i < 200; i++) {
      if (pool[i] !== granted[100 + i])
        throw new Error(`self-test: copied-in byte ${i} is ${pool[i]}, expected ${granted[100 + i]}`);
    }
    for (let i = PAGE_SIZE; i < 2 * PAGE_SIZE; i++) {
      if (granted[i] !== 0x3c) throw new Error(`self-test: copied-out byte ${i} is ${granted[i]}, expected 0x3c`);
    }
    lines.push(`gntdev: one grant copy of 3 segments, statuses ${status.join(',')} (the bad gref failed alone)`);
  } finally {
    if (shared) addon.munmapShared(shared);
    try {
      addon.ioctl(allocFd, IOCTL.GNTALLOC_DEALLOC_GREF, encodeDeallocGref(index, count));
    } finally {
      fs.closeSync(allocFd);
    }
  }
  return lines;
}
