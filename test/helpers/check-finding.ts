// `afsfile check --json` run as a command (the executable, or a wrapper running it), with no
// xenstored and the host root at `dir`; one finding read back by its name.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export interface CheckFinding {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
}

export function checkFinding(cmd: readonly string[], dir: string, name: string,
  env: NodeJS.ProcessEnv = {}): CheckFinding | undefined {
  const r = spawnSync(cmd[0]!, [...cmd.slice(1), 'check', '--json', '--run-dir', dir], {
    encoding: 'utf8',
    env: { ...process.env, XENSTORED_PATH: path.join(dir, 'no-xenstored'), AFSFILE_CHECK_ROOT: dir, ...env },
  });
  const j = JSON.parse(r.stdout) as { findings: CheckFinding[] };
  return j.findings.find((f) => f.check === name);
}
