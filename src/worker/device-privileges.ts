// The device process faces a guest: it gets no more than it needs (least privilege). Once it
// runs it needs no capability at all: the supervisor hands it the open image, /dev/xen/* and
// the xenstored socket are root's own (uid 0 stays, so no CAP_DAC_OVERRIDE is needed for them),
// and the PAG that gives it AFS access lives in its supplementary groups (OpenAFS) or session
// keyring (kAFS), both kept. Capabilities are per thread and Node starts its threads before
// any JavaScript runs, so they are dropped in the exec path: setpriv(1) empties the bounding,
// inheritable and ambient sets and sets no_new_privs, then execs the device process, whose
// every thread then starts without capabilities (an exec by uid 0 gets only what the bounding
// set allows: capabilities(7), "Transformation of capabilities during execve()").
// KRB5CCNAME (renew's ticket cache) is not passed on: the device process needs no ticket.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface DeviceExec {
  readonly command: string;
  readonly args: string[];
  readonly env: NodeJS.ProcessEnv;
}

/** CAP_SETPCAP: needed to empty the bounding set (capabilities(7)). */
const CAP_SETPCAP = 8n;

/** How to run the device process: through setpriv when this process can drop capabilities. */
export function deviceExec(
  command: string, args: string[], env: NodeJS.ProcessEnv, setpriv: string | null = findSetpriv(env),
): DeviceExec {
  const clean = { ...env };
  delete clean.KRB5CCNAME;
  if (setpriv === null || !hasCapability(CAP_SETPCAP)) return { command, args, env: clean };
  return {
    command: setpriv,
    args: ['--bounding-set=-all', '--inh-caps=-all', '--ambient-caps=-all', '--no-new-privs', '--', command, ...args],
    env: clean,
  };
}

function findSetpriv(env: NodeJS.ProcessEnv): string | null {
  const dirs = [...(env.PATH ?? '').split(':'), '/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, 'setpriv');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Whether this process has capability `bit` in its effective set (/proc/self/status CapEff). */
export function hasCapability(bit: bigint): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m !== null && ((BigInt(`0x${m[1]}`) >> bit) & 1n) === 1n;
  } catch {
    return false;
  }
}
