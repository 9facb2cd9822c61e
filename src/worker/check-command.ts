// `afsfile check [--json]`: can this dom0 run afsfile? Each finding names what is wrong and the
// fix; the exit status is 1 when anything is wrong. AFSFILE_CHECK_ROOT prefixes /sys, /dev and
// /etc (tests only: the host's own are not theirs to change).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ParsedArgs } from '../cli/parse';
import { kernelBlkbackMarkers } from '../xen/kernel-blkback';
import { connectXenStore } from '../xen/xenstore-client';
import { checkIdentities, firstIdentityKeytab } from './check-identities';
import { checkConfig, checkHotplugLink, checkKerberosTools, checkRunHotplugScripts, xenstoredUnit } from './check-host';
import { checkKeeper } from './check-keeper';
import { checkLocks } from './check-locks';
import { mergeStatus } from './status-command';
import { pidAlive, readStatusFiles } from './status-file';

export interface Finding {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly fix?: string;
}

async function checkXenstore(env: NodeJS.ProcessEnv, root: string): Promise<Finding> {
  let xs;
  try {
    xs = await connectXenStore({ env, reconnect: false });
  } catch (e) {
    return { check: 'xenstored', ok: false, detail: (e as Error).message, fix: `systemctl start ${xenstoredUnit(root)} (or set XENSTORED_PATH)` };
  }
  try {
    const t = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 3 s')), 3000).unref());
    await Promise.race([xs.directory('/'), t]);
    return { check: 'xenstored', ok: true, detail: `answers at ${xs.endpoint.path}` };
  } catch (e) {
    return { check: 'xenstored', ok: false, detail: `${xs.endpoint.path}: ${(e as Error).message}`, fix: 'restart xenstored' };
  } finally {
    xs.close();
  }
}

function checkDevices(root: string): Finding[] {
  return ['evtchn', 'gntdev'].map((n) => {
    const p = `/dev/xen/${n}`;
    return fs.existsSync(path.join(root, p))
      ? { check: p, ok: true, detail: 'present' }
      : { check: p, ok: false, detail: `${p} is missing`, fix: `modprobe xen-${n === 'evtchn' ? 'evtchn' : 'gntdev'} (this must be a Xen dom0 kernel)` };
  });
}

/** The hypervisor's version from /sys/hypervisor/version (Linux drivers/xen/sys-hypervisor.c), or null. */
function xenVersion(root: string): { major: number; minor: number } | null {
  const read = (n: string) => {
    try {
      return Number(fs.readFileSync(path.join(root, '/sys/hypervisor/version', n), 'utf8').trim());
    } catch {
      return NaN;
    }
  };
  const major = read('major');
  const minor = read('minor');
  return Number.isInteger(major) && Number.isInteger(minor) ? { major, minor } : null;
}

// libxl's backendtype=tap (backend/vbd3, which kernel blkback never watches) came back in
// Xen 4.19 (xen.git 6d7d8d2b3e); before it, afsfile's disks live under backend/vbd.
const VBD3_SINCE = { major: 4, minor: 19 };
const atLeast = (v: { major: number; minor: number }, w: typeof VBD3_SINCE) =>
  v.major > w.major || (v.major === w.major && v.minor >= w.minor);
const VBD_LINE = "disk = ['vdev=xvda,access=rw,script=block-afsfile,target=/path/to/image']";
const VBD3_LINE = "disk = ['vdev=xvda,access=rw,backendtype=tap,script=block-afsfile,target=/path/to/image']";

/** Which route this host's disks take, with the exact disk line. */
function checkRoute(root: string): Finding {
  const v = xenVersion(root);
  if (!v) {
    const detail = `Xen version unknown (no /sys/hypervisor/version): on Xen >= 4.19 use ${VBD3_LINE}; `
      + `before, ${VBD_LINE} with xen-blkback unloaded`;
    return { check: 'route', ok: true, detail };
  }
  const ver = `Xen ${v.major}.${v.minor}`;
  return atLeast(v, VBD3_SINCE)
    ? { check: 'route', ok: true, detail: `${ver}: vbd3 (backendtype=tap, beside kernel blkback): ${VBD3_LINE}` }
    : { check: 'route', ok: true, detail: `${ver}: vbd (kernel xen-blkback must be unloaded): ${VBD_LINE}` };
}

function checkBlkback(root: string): Finding {
  const seen = kernelBlkbackMarkers(root);
  if (!seen.length) return { check: 'xen-blkback', ok: true, detail: 'not loaded' };
  const v = xenVersion(root);
  if (v && atLeast(v, VBD3_SINCE)) {
    const detail = "loaded: it serves backend/vbd disks; afsfile's backendtype=tap disks are under backend/vbd3, "
      + 'which it never looks at';
    return { check: 'xen-blkback', ok: true, detail };
  }
  return {
    check: 'xen-blkback', ok: false,
    detail: `the kernel's xen-blkback is loaded (${seen.join(', ')}): it claims every backend/vbd device before afsfile can`,
    fix: "blacklist it (echo 'blacklist xen-blkback' > /etc/modprobe.d/afsfile.conf; rmmod xen-blkback; update-initramfs -u), " +
      'or on Xen >= 4.19 give the disks backendtype=tap so they live under backend/vbd3, which blkback never looks at',
  };
}

function checkWorker(runDir: string): Finding {
  const w = readStatusFiles(runDir).get('worker');
  if (w && pidAlive(w.pid, w.pidStart)) return { check: 'worker', ok: true, detail: `running, pid ${String(w.pid)}` };
  return {
    check: 'worker', ok: false,
    detail: w ? `not running (pid ${String(w.pid)} from ${runDir}/status/worker.json is gone)` : `not running (no ${runDir}/status/worker.json)`,
    fix: 'systemctl start afsfile (it runs: afsfile renew -- afsfile worker); without it libxl cannot attach block-afsfile disks',
  };
}

function checkTokens(runDir: string, keytab: string | undefined, now = Date.now()): Finding {
  const r = readStatusFiles(runDir).get('renew');
  const check = 'tokens';
  if (!r) {
    return keytab
      ? { check, ok: false, detail: `a keytab is configured but renew is not running (no ${runDir}/status/renew.json)`, fix: 'systemctl start afsfile' }
      : { check, ok: true, detail: 'no keytab configured: tokens are not managed (fine for images outside AFS)' };
  }
  if (!pidAlive(r.pid, r.pidStart)) return { check, ok: false, detail: `renew is not running (pid ${String(r.pid)} gone; last update ${String(r.updated)})`, fix: 'systemctl restart afsfile' };
  if (r.managed === false) return { check, ok: true, detail: 'no keytab configured: tokens are not managed' };
  const exp = typeof r.ticketExpires === 'string' ? Date.parse(r.ticketExpires) : NaN;
  const lastError = (r.lastError as { message?: string } | null | undefined)?.message;
  if (!(exp > now)) {
    return { check, ok: false, detail: `no valid Kerberos ticket${lastError ? `: ${lastError}` : ''}`, fix: 'check the keytab and principal in /etc/xen/afsfile.conf; `journalctl -u afsfile` shows why kinit fails' };
  }
  const tokens = (r.tokenExpires as Record<string, string> | null | undefined) ?? {};
  // "present": a kAFS token (an rxrpc key; its expiry is not read back).
  const bad = Object.entries(tokens).filter(([, v]) => v === 'expired' || (v !== 'present' && !(Date.parse(v) > now))).map(([cell]) => cell);
  if (bad.length) return { check, ok: false, detail: `AFS token expired for ${bad.join(', ')}${lastError ? `: ${lastError}` : ''}`, fix: 'check aklog (the cell, and the principal\'s AFS access); `journalctl -u afsfile`' };
  return { check, ok: true, detail: `ticket valid until ${String(r.ticketExpires)}${Object.keys(tokens).length ? `, tokens for ${Object.keys(tokens).join(', ')}` : ''}` };
}

/** Whether this process may use io_uring (a refusal is not fatal: image I/O then goes through
 * the thread pool, as each device says in its status and its log). */
async function checkUring(): Promise<Finding> {
  const { uringProblem } = await import('../image/uring');
  const problem = uringProblem();
  if (problem === null) return { check: 'io_uring', ok: true, detail: 'available: image I/O goes through io_uring' };
  return {
    check: 'io_uring', ok: true,
    detail: `refused by the kernel (${problem}): image I/O goes through the thread pool, ` +
      'which costs more CPU per request',
    fix: 'allow io_uring to afsfile: sysctl kernel.io_uring_disabled=0, and a seccomp profile (container, ' +
      'systemd SystemCallFilter) that permits io_uring_setup, io_uring_enter and io_uring_register',
  };
}

/** Devices the supervisor gave up on (or refused), with what it said. */
function checkFailedDevices(runDir: string): Finding {
  const bad = mergeStatus(runDir).devices.filter((d) => d.phase === 'failed' || d.phase === 'refused' || d.state === 'failed');
  if (!bad.length) return { check: 'devices', ok: true, detail: 'none failed' };
  return {
    check: 'devices', ok: false,
    detail: bad.map((d) => `${String(d.domid)}/${String(d.devid)} ${String(d.image ?? '')}: ${String(d.phase ?? d.state)}${d.message ? ` (${String(d.message)})` : ''}`).join('; '),
    fix: 'journalctl -u afsfile shows why; fix the cause, then `afsfile detach DOMID DEVID` and `xl block-attach` it again',
  };
}

/** --metrics-file: its directory must exist and take the worker's atomic rename. */
function checkMetricsFile(file: string | undefined): Finding[] {
  if (!file) return [];
  const dir = path.dirname(file);
  try {
    if (!fs.statSync(dir).isDirectory()) throw new Error('not a directory');
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    return [{
      check: 'metrics', ok: false,
      detail: `metrics-file ${file}: its directory ${dir} is not usable (${(e as Error).message})`,
      fix: 'create it (apt-get install prometheus-node-exporter makes /var/lib/prometheus/node-exporter), ' +
        'or choose another metrics-file',
    }];
  }
  let when = 'not written yet (the worker writes it within seconds of starting)';
  try {
    when = `last changed ${fs.statSync(file).mtime.toISOString()}`;
  } catch { /* not yet */ }
  return [{ check: 'metrics', ok: true, detail: `${file}: ${when}` }];
}

export interface CheckInputs {
  readonly runDir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly keytab: string | undefined;
  readonly configFile?: string;
  readonly configExplicit?: boolean;
  readonly metricsFile?: string;
}

export async function runChecks(runDir: string, env: NodeJS.ProcessEnv, keytab: string | undefined, o: Partial<CheckInputs> = {}): Promise<Finding[]> {
  const root = env.AFSFILE_CHECK_ROOT ?? '/';
  const config = o.configFile ? checkConfig(o.configFile, o.configExplicit ?? false) : undefined;
  const key = keytab ?? (config?.values.get('keytab') as string | undefined);
  const aklog = (config?.values.get('aklog') as string | undefined) ?? 'aklog';
  const metrics = o.metricsFile ?? (config?.values.get('metrics-file') as string | undefined);
  const rootsValue = config?.values.get('image-roots');
  const roots = Array.isArray(rootsValue) ? rootsValue.filter((r): r is string => typeof r === 'string') : [];
  const worker = checkWorker(runDir);
  const identities = o.configFile
    ? checkIdentities({
      configFile: o.configFile, configExplicit: o.configExplicit ?? false, runDir, env, workerRunning: worker.ok,
    })
    : [];
  return [
    ...(config?.findings ?? []),
    await checkXenstore(env, root), ...checkDevices(root), checkRoute(root), checkBlkback(root),
    checkHotplugLink(root), checkRunHotplugScripts(root),
    worker, checkFailedDevices(runDir), checkTokens(runDir, key),
    checkKerberosTools(key ?? (o.configFile ? firstIdentityKeytab(o.configFile, o.configExplicit ?? false) : undefined),
      aklog, env),
    ...identities, await checkUring(), ...checkMetricsFile(metrics), ...checkLocks(runDir, roots),
    await checkKeeper(),
  ];
}

/** dom0 loopback self-test of /dev/xen/{evtchn,gntdev} (binds to itself, grants itself pages
 * through gntalloc): the exact code the worker runs, with no guest needed. */
async function platformSelfTest(): Promise<Finding> {
  try {
    const { dom0SelfTest } = await import('../xen/linux/selftest');
    const lines = await dom0SelfTest();
    return { check: 'platform self-test', ok: true, detail: lines.join('; ') };
  } catch (err) {
    return { check: 'platform self-test', ok: false, detail: (err as Error).message,
      fix: 'load xen-evtchn, xen-gntdev and xen-gntalloc in a Xen dom0 (modprobe xen-evtchn xen-gntdev xen-gntalloc)' };
  }
}

export async function checkMain(args: ParsedArgs, env: NodeJS.ProcessEnv): Promise<number> {
  const findings = await runChecks(args.string('run-dir'), env, args.optionalString('keytab'), {
    configFile: args.string('config'), configExplicit: args.explicit.has('config') || !!env.AFSFILE_CONFIG,
    metricsFile: args.optionalString('metrics-file'),
  });
  if (args.bool('selftest')) findings.push(await platformSelfTest());
  const ok = findings.every((f) => f.ok);
  if (args.bool('json')) process.stdout.write(`${JSON.stringify({ ok, findings }, null, 2)}\n`);
  else {
    for (const f of findings) {
      process.stdout.write(`${f.ok ? 'ok  ' : 'FAIL'} ${f.check}: ${f.detail}\n`);
      if (f.fix) process.stdout.write(`     fix: ${f.fix}\n`);
    }
    process.stdout.write(ok ? 'all checks passed\n' : `${findings.filter((f) => !f.ok).length} problem(s)\n`);
  }
  return ok ? 0 : 1;
}
