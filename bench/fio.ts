// fio as the baseline: the same patterns on the same file, psync with numjobs = depth, and
// io_uring with iodepth = depth.
import { spawnSync } from 'node:child_process';
import type { Pattern } from './patterns';

export interface IoResult {
  /** Operations per second. */
  iops: number;
  /** Bytes per second. */
  bw: number;
}

export function fioAvailable(): boolean {
  return spawnSync('fio', ['--version'], { stdio: 'ignore' }).status === 0;
}

interface FioJson {
  jobs: { read: { iops: number; bw_bytes: number }; write: { iops: number; bw_bytes: number } }[];
}

export function runFio(file: string, size: number, p: Pattern, engine: 'psync' | 'io_uring', direct: boolean, seconds: number): IoResult {
  const args = [
    '--name=afsfile-bench', `--filename=${file}`, `--size=${size}`, `--rw=${p.rw}`, `--bs=${p.bs}`,
    `--ioengine=${engine}`, `--direct=${direct ? 1 : 0}`, `--runtime=${seconds}`, '--time_based', '--group_reporting',
    '--output-format=json', '--randrepeat=0', '--norandommap', '--invalidate=0', '--allow_file_create=0',
    ...(engine === 'io_uring' ? [`--iodepth=${p.depth}`, '--numjobs=1'] : [`--numjobs=${p.depth}`, '--iodepth=1']),
    ...(p.fsync ? ['--fsync=1'] : []),
    // Several psync jobs doing sequential I/O would each stream the whole file; give each its own region.
    ...(p.rw === 'read' || p.rw === 'write' ? ['--offset_increment=' + Math.floor(size / p.depth / p.bs) * p.bs, `--size=${Math.floor(size / p.depth / p.bs) * p.bs}`] : []),
  ];
  const r = spawnSync('fio', args, { encoding: 'utf8', timeout: (seconds + 60) * 1000 });
  if (r.status !== 0) throw new Error(`fio failed (${r.status}): ${r.stderr || r.stdout}`);
  const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as FioJson;
  const job = json.jobs[0]!;
  const iops = job.read.iops + job.write.iops;
  const bw = job.read.bw_bytes + job.write.bw_bytes;
  return { iops, bw };
}
