// A CPU profile of this process, for finding where a request's time goes where no outside
// profiler can look at JavaScript (the executable ignores NODE_OPTIONS, so --cpu-prof is out,
// and SIGUSR1 never opens the inspector: src/main.ts). AFSFILE_CPU_PROFILE=DIR starts V8's
// sampling profiler through the in-process node:inspector session; when the process exits it
// writes DIR/afsfile-PID.cpuprofile (Chrome DevTools format) and prints the functions with the
// most self time to stderr as `afsfile: cpu-profile ...` lines (the log of a device shows them
// where the file cannot be fetched, e.g. a test dom0). Off unless the variable is set.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Session } from 'node:inspector';

/** Functions listed in the stderr summary. */
const TOP = 25;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

/** Starts profiling when env.AFSFILE_CPU_PROFILE names a directory; a no-op otherwise. */
export function startCpuProfileFromEnv(env: NodeJS.ProcessEnv, label: string): void {
  const dir = env.AFSFILE_CPU_PROFILE;
  if (!dir) return;
  const session = new Session();
  try {
    session.connect();
    session.post('Profiler.enable');
    // 0.5 ms: fine enough for a request that takes milliseconds under emulation.
    session.post('Profiler.setSamplingInterval', { interval: 500 });
    session.post('Profiler.start');
  } catch (err) {
    process.stderr.write(`afsfile: cpu-profile: cannot start (${(err as Error).message})\n`);
    return;
  }
  const started = Date.now();
  process.once('exit', () => {
    // An in-process session answers synchronously, so this completes before the process ends.
    session.post('Profiler.stop', (err, res) => {
      if (err || !res) return void process.stderr.write(`afsfile: cpu-profile: stop failed: ${err?.message}\n`);
      const file = path.join(dir, `afsfile-${process.pid}.cpuprofile`);
      try {
        fs.writeFileSync(file, JSON.stringify(res.profile));
      } catch (e) {
        process.stderr.write(`afsfile: cpu-profile: cannot write ${file}: ${(e as Error).message}\n`);
      }
      for (const line of summarize(res.profile as Profile, TOP))
        process.stderr.write(`afsfile: cpu-profile ${label} pid ${process.pid} ${Date.now() - started}ms: ${line}\n`);
    });
  });
}

/** Self time per function, largest first, as "PERCENT name file:line" lines. */
export function summarize(profile: Profile, top: number): string[] {
  const byNode = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) byNode.set(samples[i], (byNode.get(samples[i]) ?? 0) + (deltas[i] ?? 0));
  const self = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const t = byNode.get(n.id) ?? 0;
    total += t;
    const f = n.callFrame;
    const where = f.url ? ` ${f.url.split('/').pop()}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + t);
  }
  if (total <= 0) return ['no samples'];
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, t]) => `${((100 * t) / total).toFixed(1)}% ${k}`);
}
