// fio as the baseline: the same patterns on the same file, psync with numjobs = depth, and
// io_uring with iodepth = depth, in the same I/O mode as the engine round it is paired with.
import { spawnSync } from 'node:child_process';
import type { Pattern } from './patterns';

export type FioEngine = 'psync' | 'io_uring';

export interface IoResult {
  /** Operations per second (reads + writes; flushes are not counted). */
  iops: number;
  /** Bytes per second. */
  bw: number;
  /** fio's CPU time (user + system, all its threads) per I/O, microseconds. */
  cpuUsPerRequest: number;
}

/** fio's version string, or undefined when fio is not installed. */
export function fioVersion(): string | undefined {
  const r = spawnSync('fio', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

interface FioJson {
  jobs: {
    error: number;
    /** Percent of the job's run time, summed over its jobs with group_reporting. */
    usr_cpu: number;
    sys_cpu: number;
    /** Milliseconds. */
    job_runtime?: number;
    read: { iops: number; bw_bytes: number; total_ios: number; runtime: number };
    write: { iops: number; bw_bytes: number; total_ios: number; runtime: number };
  }[];
}

export interface FioRun {
  file: string;
  /** The file's size; every job stays inside it. */
  size: number;
  pattern: Pattern;
  engine: FioEngine;
  direct: boolean;
  seconds: number;
  warmupSeconds: number;
}

export function fioArgs(r: FioRun): string[] {
  const p = r.pattern;
  const sequential = p.rw === 'read' || p.rw === 'write';
  const jobs = r.engine === 'psync' ? p.depth : 1;
  // Sequential psync jobs each stream their own region (otherwise they would all read the same
  // blocks at once); random jobs all roam the whole file.
  const region = sequential ? Math.floor(r.size / jobs / p.bs) * p.bs : r.size;
  const args = [
    '--name=afsfile-bench', `--filename=${r.file}`, `--size=${region}`, `--rw=${p.rw}`, `--bs=${p.bs}`,
    `--ioengine=${r.engine}`, `--direct=${r.direct ? 1 : 0}`,
    `--runtime=${Math.round(r.seconds * 1000)}ms`, `--ramp_time=${Math.round(r.warmupSeconds * 1000)}ms`, '--time_based',
    '--group_reporting', '--output-format=json', '--randrepeat=0', '--norandommap', '--invalidate=0',
    '--allow_file_create=0', '--overwrite=1',
    `--numjobs=${jobs}`, `--iodepth=${r.engine === 'psync' ? 1 : p.depth}`,
  ];
  if (sequential && jobs > 1) args.push(`--offset_increment=${region}`);
  if (p.fsync) args.push('--fdatasync=1');
  return args;
}

export function runFio(r: FioRun): IoResult {
  const res = spawnSync('fio', fioArgs(r), { encoding: 'utf8', timeout: (r.seconds + r.warmupSeconds + 60) * 1000 });
  if (res.status !== 0) throw new Error(`fio ${r.engine} ${r.pattern.name} failed (${res.status ?? res.signal}): ${(res.stderr || res.stdout).trim().slice(0, 500)}`);
  const start = res.stdout.indexOf('{');
  if (start < 0) throw new Error(`fio ${r.engine} ${r.pattern.name}: no JSON in its output: ${res.stdout.slice(0, 300)}`);
  const json = JSON.parse(res.stdout.slice(start)) as FioJson;
  const job = json.jobs[0];
  if (!job) throw new Error(`fio ${r.engine} ${r.pattern.name}: no job in its JSON`);
  if (job.error) throw new Error(`fio ${r.engine} ${r.pattern.name}: job error ${job.error}`);
  const ios = job.read.total_ios + job.write.total_ios;
  // usr_cpu/sys_cpu are percent of job_runtime, which group_reporting sums over the jobs.
  const runtimeMs = job.job_runtime ?? Math.max(job.read.runtime, job.write.runtime);
  const cpuUs = ((job.usr_cpu + job.sys_cpu) / 100) * runtimeMs * 1000;
  const iops = job.read.iops + job.write.iops;
  return { iops, bw: job.read.bw_bytes + job.write.bw_bytes, cpuUsPerRequest: ios ? cpuUs / ios : NaN };
}

/** Whether fio's io_uring engine works here (kernels or containers may disable io_uring). */
export function ioUringWorks(file: string, size: number): boolean {
  try {
    runFio({ file, size, pattern: { name: 'probe', rw: 'randread', bs: 4096, depth: 1, fsync: false }, engine: 'io_uring', direct: false, seconds: 0.05, warmupSeconds: 0 });
    return true;
  } catch {
    return false;
  }
}
