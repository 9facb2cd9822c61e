// What one process costs the host, read from /proc (Linux Documentation/filesystems/proc.rst):
// PSS/USS from smaps (mappings of the simulated guests' memory files left out: on real Xen the
// backend never maps guest memory, it grant-copies), page tables (VmPTE), threads and their
// kernel stacks, and per-thread CPU time and timeslices from schedstat (a timeslice begins at
// each wake-up, so their count over an idle window is the process's wakeups).
import * as fs from 'node:fs';

/** x86_64 THREAD_SIZE (arch/x86/include/asm/page_64_types.h: 4 pages, KASAN off). */
export const KERNEL_STACK_KIB = 16;

export interface MemorySample {
  pid: number;
  /** KiB, excluding mappings whose path starts with `exclude`. */
  pssKiB: number;
  ussKiB: number;
  rssKiB: number;
  /** KiB of anonymous memory (heap, pool, stacks). */
  anonKiB: number;
  /** KiB in the excluded mappings (the simulated guest memory). */
  excludedPssKiB: number;
  pteKiB: number;
  threads: number;
}

export interface CpuSample {
  /** Per thread: [run time ns, timeslices]. */
  tasks: Map<number, [number, number]>;
}

function kib(line: string): number {
  const m = /:\s+(\d+) kB/.exec(line);
  return m ? Number(m[1]) : 0;
}

/** undefined when the process is gone. */
export function sampleMemory(pid: number, exclude?: string): MemorySample | undefined {
  let smaps: string;
  let status: string;
  try {
    smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const s: MemorySample = { pid, pssKiB: 0, ussKiB: 0, rssKiB: 0, anonKiB: 0, excludedPssKiB: 0, pteKiB: 0, threads: 0 };
  let excluded = false;
  for (const line of smaps.split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      const name = line.split(/\s+/)[5] ?? '';
      excluded = exclude !== undefined && name.startsWith(exclude);
      continue;
    }
    if (line.startsWith('Pss:')) {
      if (excluded) s.excludedPssKiB += kib(line);
      else s.pssKiB += kib(line);
    } else if (excluded) continue;
    else if (line.startsWith('Rss:')) s.rssKiB += kib(line);
    else if (line.startsWith('Private_Clean:') || line.startsWith('Private_Dirty:')) s.ussKiB += kib(line);
    else if (line.startsWith('Anonymous:')) s.anonKiB += kib(line);
  }
  for (const line of status.split('\n')) {
    if (line.startsWith('VmPTE:')) s.pteKiB = kib(line);
    else if (line.startsWith('Threads:')) s.threads = Number(line.split(/\s+/)[1]);
  }
  return s;
}

export function sampleCpu(pid: number): CpuSample {
  const tasks = new Map<number, [number, number]>();
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return { tasks };
  }
  for (const t of tids) {
    try {
      const [run, , slices] = fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      tasks.set(Number(t), [run ?? 0, slices ?? 0]);
    } catch {
      // The thread ended.
    }
  }
  return { tasks };
}

/** CPU seconds and wakeups between two samples of the same process (threads in both). */
export function cpuBetween(a: CpuSample, b: CpuSample): { cpuS: number; wakeups: number } {
  let ns = 0;
  let wakeups = 0;
  for (const [tid, [run, slices]] of b.tasks) {
    const before = a.tasks.get(tid) ?? [0, 0];
    ns += run - before[0];
    wakeups += slices - before[1];
  }
  return { cpuS: ns / 1e9, wakeups };
}

/** Kernel memory counters of the whole host, KiB (/proc/meminfo). */
export function kernelMemory(): { slabKiB: number; kernelStackKiB: number; pageTablesKiB: number } {
  const m = fs.readFileSync('/proc/meminfo', 'utf8');
  const get = (k: string) => kib(m.split('\n').find((l) => l.startsWith(`${k}:`)) ?? '');
  return { slabKiB: get('Slab'), kernelStackKiB: get('KernelStack'), pageTablesKiB: get('PageTables') };
}

/** Least-squares slope and intercept of y against x. */
export function fit(x: readonly number[], y: readonly number[]): { slope: number; intercept: number } {
  const n = x.length;
  if (n < 2) return { slope: NaN, intercept: y[0] ?? NaN };
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
  }
  const slope = sxx ? sxy / sxx : NaN;
  return { slope, intercept: my - slope * mx };
}
