// `afsfile demo`: the whole data path without Xen. An image (a temp one, or --image), the
// in-memory XenStore with libxl's vbd keys, the simulated hypervisor, the worker's own
// per-device state machine and request engine (claim, Device), and a simulated Linux blkfront
// running a mixed workload whose every byte is checked against a model, then the image file
// itself after a libxl-style removal. Exit 1 on any mismatch.
import { readStatusFiles } from '../worker/status-file';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FatalError, UsageError } from '../cli/errors';
import type { ParsedArgs } from '../cli/parse';
import { SECTOR_SIZE } from '../blkif/constants';
import { createImage } from '../image/create';
import { SimBlkfront } from '../sim/blkfront';
import { SimHypervisor } from '../sim/platform';
import { Toolstack } from '../sim/toolstack';
import { SimStore } from '../sim/xenstore';
import { formatBytes } from '../util/units';
import { Progress } from '../util/progress';
import { claimDevice } from '../worker/device/claim';
import { Device } from '../worker/device/device';
import { DiskModel } from './model';
import { runWorkload } from './workload';

const DEFAULT_SIZE = 64 * 1024 * 1024;
const DEFAULT_SECONDS = 4;
const GUEST_DOMID = 1;
const MIB = 1024 * 1024;

export interface DemoSummary {
  ok: boolean;
  image: string;
  temporary: boolean;
  sizeBytes: number;
  queueDepth: number;
  seconds: number;
  ops: number;
  reads: number;
  writes: number;
  flushes: number;
  discards: number;
  indirectRequests: number;
  ringRequests: number;
  bytesRead: number;
  bytesWritten: number;
  mbPerSec: number;
  iops: number;
  latencyMs: { p50: number; p99: number; max: number };
  fsyncs: number;
  errors: number;
  mismatches: number;
  imageMismatches: number;
  imageBytesChecked: number;
  backend: string;
}

/** The device (domain/devid) that has `file` attached, from the worker's status files. */
function attachedTo(runDir: string, file: string): string | undefined {
  for (const [name, j] of readStatusFiles(runDir)) {
    const supervisorList = name === 'worker' && Array.isArray(j.devices) ? (j.devices as unknown[]) : [];
    const list = name.startsWith('dev-') ? [j] : supervisorList;
    for (const d of list) {
      const o = (typeof d === 'object' && d !== null ? d : {}) as Record<string, unknown>;
      if (typeof o.image !== 'string' || path.resolve(o.image) !== file) continue;
      return `domain ${String(o.domid)} device ${String(o.devid)}`;
    }
  }
  return undefined;
}

export async function demoMain(args: ParsedArgs): Promise<number> {
  const json = args.bool('json');
  const seconds = args.optionalNumber('seconds') ?? DEFAULT_SECONDS;
  const queueDepth = Math.floor(args.optionalNumber('queue-depth') ?? 16);
  if (queueDepth < 1 || queueDepth > 1024) throw new UsageError('--queue-depth must be 1..1024', 'demo');
  const given = args.optionalString('image');
  let size = args.optionalNumber('size') ?? DEFAULT_SIZE;
  if (size % SECTOR_SIZE !== 0 || size < MIB)
    throw new UsageError('--size must be a multiple of 512 and at least 1M', 'demo');

  let tmp: string | undefined;
  let file: string;
  if (given) {
    file = path.resolve(given);
    // The demo writes over the whole image: never by surprise.
    const attached = attachedTo(args.string('run-dir'), file);
    if (attached && !args.bool('force')) {
      throw new FatalError(`${file} is attached to ${attached}: the demo would overwrite a running guest's disk; ` +
        '--force if you really mean it');
    }
    if (fs.existsSync(file) && !args.bool('force')) {
      throw new FatalError(`${file} exists and the demo overwrites it; use a new path, or --force to overwrite it`);
    }
    if (fs.existsSync(file)) {
      const st = fs.statSync(file);
      if (!st.isFile()) throw new FatalError(`${file}: not a regular file`);
      if (args.optionalNumber('size') === undefined) size = st.size;
      else if (st.size !== size) fs.truncateSync(file, size);
    } else {
      createImage(file, { size, preallocate: false, quiet: true });
    }
  } else {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-demo-'));
    file = path.join(tmp, 'disk.img');
    createImage(file, { size, preallocate: false, quiet: true });
  }

  const store = new SimStore();
  const hv = new SimHypervisor();
  let device: Device | undefined;
  let front: SimBlkfront | undefined;
  const platform = hv.platform();
  const reported: string[] = [];
  const report = (sector: number, why: string) => {
    if (reported.length < 5) reported.push(`sector ${sector}: ${why}`);
  };
  try {
    const dom0 = store.connect(0);
    const toolstack = new Toolstack(dom0);
    await toolstack.createDomain(GUEST_DOMID, 'demo-guest');
    store.introduceDomain(GUEST_DOMID);
    // Room for queue-depth requests of up to 1 MiB (256 data pages + 1 indirect page) and the rings.
    const guest = hv.addGuest({ domid: GUEST_DOMID, pages: Math.max(8192, queueDepth * 260 + 1024) });
    const vbd = await toolstack.addVbd({ domid: GUEST_DOMID, target: file, access: 'rw' });
    // The data-path options of the worker apply here too.
    const limits = {
      maxIndirectSegments: args.optionalNumber('max-indirect-segments'),
      maxQueues: args.optionalNumber('max-queues'),
      maxRingPageOrder: args.optionalNumber('max-ring-page-order'),
    };
    const definedLimits = Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined));
    try {
      await claimDevice(dom0, vbd.backend, definedLimits);
    } catch (err) {
      throw new UsageError((err as Error).message, 'demo');
    }
    device = new Device(store.connect(0), platform, vbd.backend, {
      limits: definedLimits,
      direct: args.bool('direct'),
      engine: {
        fsyncIntervalMs: (args.optionalNumber('fsync-interval') ?? 5) * 1000,
        maxRequests: args.optionalNumber('max-requests'),
        maxBytes: args.optionalNumber('max-inflight'),
      },
      warn: (m) => process.stderr.write(`afsfile demo: ${m}\n`),
    });
    await device.start();
    if ((await dom0.tryRead(`${vbd.backend}/afsfile-status`)) !== 'opened')
      throw new FatalError(
        `cannot serve ${file}: ${(await dom0.tryRead(`${vbd.backend}/afsfile-error`)) ?? 'the device did not open it'}`,
      );
    await toolstack.hotplugConnected(vbd);
    front = new SimBlkfront({ xs: store.connect(GUEST_DOMID), guest, devid: vbd.devid, maxRingPageOrder: 2, maxQueues: 2, maxIndirectSegments: 256, queueDepth });
    await front.connect();

    const model = new DiskModel(size / SECTOR_SIZE, !given);
    const progress = new Progress('demo', 100, false, 'count');
    const result = await runWorkload(front, model, {
      seconds,
      queueDepth,
      sequentialBytes: Math.min(size, 32 * MIB),
      seed: Date.now(),
      progress: (f) => progress.update(Math.round(f * 95)),
      report,
    });

    // Detach as libxl does (online=0, Closing → Closed), then check the file itself.
    await front.close();
    const removal = await toolstack.removeVbd(vbd, { timeoutMs: 10_000 });
    if (!removal.closed) throw new FatalError('the backend did not reach Closed within 10 s');
    const stats = device.stats().engine;
    await device.closed;
    device = undefined;
    const fileCheck = checkImageFile(file, model, result.touched, report);
    progress.done();

    const lat = result.latencies.sort((a, b) => a - b);
    const q = (p: number) => round(lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! : 0, 3);
    const secs = result.elapsedMs / 1000;
    const summary: DemoSummary = {
      ok: result.mismatches === 0 && fileCheck.mismatches === 0 && result.errors === 0,
      image: file,
      temporary: tmp !== undefined,
      sizeBytes: size,
      queueDepth,
      seconds: round(secs, 2),
      ops: result.ops,
      reads: result.reads,
      writes: result.writes,
      flushes: result.flushes,
      discards: result.discards,
      indirectRequests: front.stats.indirect,
      ringRequests: front.stats.requests,
      bytesRead: result.bytesRead,
      bytesWritten: result.bytesWritten,
      mbPerSec: round((result.bytesRead + result.bytesWritten) / MIB / secs, 1),
      iops: Math.round(result.ops / secs),
      latencyMs: { p50: q(0.5), p99: q(0.99), max: round(lat[lat.length - 1] ?? 0, 3) },
      fsyncs: stats?.fsyncs ?? 0,
      errors: result.errors,
      mismatches: result.mismatches,
      imageMismatches: fileCheck.mismatches,
      imageBytesChecked: fileCheck.bytes,
      backend: 'worker/device (Device + Engine)',
    };
    if (json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    else process.stdout.write(formatSummary(summary));
    for (const line of reported) process.stderr.write(`afsfile demo: mismatch at ${line}\n`);
    return summary.ok ? 0 : 1;
  } finally {
    await front?.close().catch(() => undefined);
    await device?.quiesce().catch(() => undefined);
    platform.close();
    hv.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Reads the touched regions of the image file directly and checks them against the model. */
function checkImageFile(
  file: string,
  model: DiskModel,
  touched: Set<number>,
  report: (s: number, why: string) => void,
): { mismatches: number; bytes: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = new Uint8Array(MIB);
    let mismatches = 0;
    let bytes = 0;
    const perRegion = MIB / SECTOR_SIZE;
    for (const m of [...touched].sort((a, b) => a - b)) {
      const s = m * perRegion;
      const n = Math.min(perRegion, model.sectors - s);
      const view = buf.subarray(0, n * SECTOR_SIZE);
      let got = 0;
      while (got < view.length) {
        const k = fs.readSync(fd, view, got, view.length - got, s * SECTOR_SIZE + got);
        if (k === 0) break;
        got += k;
      }
      if (got < view.length) view.fill(0, got);
      mismatches += model.check(s, view, (sec, why) => report(sec, `image file: ${why}`));
      bytes += view.length;
    }
    return { mismatches, bytes };
  } finally {
    fs.closeSync(fd);
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function formatSummary(s: DemoSummary): string {
  const lines = [
    `afsfile demo: ${formatBytes(s.sizeBytes)} image${s.temporary ? ' (temporary)' : ` ${s.image}`}, queue depth ${s.queueDepth}, ${s.seconds} s`,
    `  ops        ${s.ops} (reads ${s.reads}, writes ${s.writes}, flushes ${s.flushes}, discards ${s.discards})`,
    `  requests   ${s.ringRequests} on the ring, ${s.indirectRequests} indirect`,
    `  data       written ${formatBytes(s.bytesWritten)}, read ${formatBytes(s.bytesRead)}: ${s.mbPerSec} MiB/s`,
    `  IOPS       ${s.iops}`,
    `  latency    p50 ${s.latencyMs.p50} ms, p99 ${s.latencyMs.p99} ms, max ${s.latencyMs.max} ms`,
    `  fsyncs     ${s.fsyncs}`,
    `  verified   every read (${s.mismatches} mismatches), image file ${formatBytes(s.imageBytesChecked)} (${s.imageMismatches} mismatches), ${s.errors} I/O errors`,
    `  result     ${s.ok ? 'OK' : 'FAILED'}`,
  ];
  return lines.join('\n') + '\n';
}
