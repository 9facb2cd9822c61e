// Sizes libuv's thread pool, which carries every pread/pwrite/fdatasync of the engine. libuv
// reads UV_THREADPOOL_SIZE once, when the pool is first used, so this module must be imported
// first by the entry point (src/main.ts), before anything touches the pool.
//
// Measured (`npm run bench -- --only threadpool`, 4k random reads 32 deep, 2 CPUs; see
// bench/README.md): 4 threads beat 16 and 32 both from the page cache and with O_DIRECT,
// because every request wakes a pool thread and then the main thread, and more threads than
// CPUs only add contention. So: twice the CPUs, at least libuv's 4, at most the per-device
// request budget (32), beyond which a thread could never have work. An administrator's UV_THREADPOOL_SIZE wins.
import * as os from 'node:os';

export const MAX_POOL = 32; // the engine's default per-device request budget (DEFAULT_MAX_REQUESTS)

export function defaultThreadpoolSize(cpus: number = os.availableParallelism()): number {
  return Math.min(MAX_POOL, Math.max(4, 2 * cpus));
}

if (!process.env.UV_THREADPOOL_SIZE) process.env.UV_THREADPOOL_SIZE = String(defaultThreadpoolSize());
