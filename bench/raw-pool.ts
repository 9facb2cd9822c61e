// The ceiling of Node's thread pool, no engine: `depth` fs.read/fs.write calls kept in flight
// on the bench file, each re-issued from its own callback. What the engine can reach through
// libuv's pool is at most this; the gap from here to fio is the pool itself.
import * as fs from 'node:fs';
import { native } from '../src/native/addon';
import type { EngineRunResult, EngineRunSpec } from './engine-guest';

export function runRawPool(spec: EngineRunSpec): Promise<EngineRunResult> {
  const p = spec.pattern;
  const write = p.rw === 'write' || p.rw === 'randwrite';
  const sequential = p.rw === 'read' || p.rw === 'write';
  const fd = fs.openSync(spec.file, fs.constants.O_RDWR | (spec.direct ? fs.constants.O_DIRECT : 0));
  const size = fs.fstatSync(fd).size;
  const blocks = Math.floor(size / p.bs);
  const pool = new Uint8Array(native().allocAligned(p.bs * p.depth, 4096));
  let rnd = (Date.now() ^ process.pid) >>> 0 || 1;
  let cursor = 0;
  let stopping = false;
  let inFlight = 0;
  let done = 0;
  let errors = 0;
  return new Promise((resolve) => {
    let window = { t: 0, done: 0, cpu: process.cpuUsage() };
    let result: EngineRunResult | undefined;
    const finish = () => {
      fs.closeSync(fd);
      result!.errors = errors;
      resolve(result!);
    };
    const issue = (i: number, buf: Uint8Array, cb: (err: NodeJS.ErrnoException | null) => void) => {
      let b: number;
      if (sequential) {
        b = cursor;
        cursor = cursor + 1 >= blocks ? 0 : cursor + 1;
      } else {
        rnd ^= rnd << 13;
        rnd ^= rnd >>> 17;
        rnd ^= rnd << 5;
        b = (rnd >>> 0) % blocks;
      }
      inFlight++;
      if (write) fs.write(fd, buf, 0, p.bs, b * p.bs, cb);
      else fs.read(fd, buf, 0, p.bs, b * p.bs, cb);
      void i;
    };
    for (let i = 0; i < p.depth; i++) {
      const buf = pool.subarray(i * p.bs, (i + 1) * p.bs);
      const cb = (err: NodeJS.ErrnoException | null) => {
        inFlight--;
        if (err) {
          errors++;
          stopping = true;
        } else done++;
        if (!stopping) issue(i, buf, cb);
        else if (inFlight === 0) finish();
      };
      issue(i, buf, cb);
    }
    setTimeout(() => {
      window = { t: performance.now(), done, cpu: process.cpuUsage() };
      setTimeout(() => {
        const secs = (performance.now() - window.t) / 1000;
        const cpu = process.cpuUsage(window.cpu);
        const n = done - window.done;
        result = {
          iops: n / secs, bw: (n * p.bs) / secs, requests: n,
          cpuUsPerRequest: n ? (cpu.user + cpu.system) / n : NaN, cpuCores: (cpu.user + cpu.system) / 1e6 / secs,
          rssBytes: process.memoryUsage().rss, maxRssBytes: process.resourceUsage().maxRSS * 1024,
          threadpool: Number(process.env.UV_THREADPOOL_SIZE ?? 4), errors: 0,
          engine: { grantBatches: 0, segmentsPerBatch: 0, notifiesToGuest: 0, notifiesToBackend: 0 },
        };
        stopping = true;
        if (inFlight === 0) finish();
      }, spec.seconds * 1000);
    }, spec.warmupSeconds * 1000);
  });
}
