// The parts of `afsfile check` about how this dom0 is set up around afsfile: the config file,
// the hotplug link, xl.conf, which unit starts xenstored here, and the Kerberos tools renew
// runs. Paths are under `root` (AFSFILE_CHECK_ROOT; tests only).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateConfigFile } from '../cli/validate-config';
import type { OptionValue } from '../cli/values';
import type { Finding } from './check-command';

export const HOTPLUG_LINK = '/etc/xen/scripts/block-afsfile';
const XL_CONF = '/etc/xen/xl.conf';

export function checkConfig(file: string, explicit: boolean): { findings: Finding[]; values: ReadonlyMap<string, OptionValue> } {
  const r = validateConfigFile(file, explicit);
  if (r.absent) return { findings: [{ check: 'config', ok: true, detail: `${file} does not exist: every setting is its default` }], values: r.values };
  if (!r.problems.length) return { findings: [{ check: 'config', ok: true, detail: `${file}: ${r.keys} setting(s), all valid` }], values: r.values };
  return {
    findings: r.problems.map((p) => ({ check: 'config', ok: false, detail: p,
      fix: `edit ${file} (keys and accepted values: afsfile help config); the worker refuses to start, and a reload changes nothing, until it is fixed` })),
    values: r.values,
  };
}

/** Debian 12 starts Xen with the `xen` init script (xen.service); upstream Xen installs
 * xenstored.service and xencommons. The fix names the one this host has. */
export function xenstoredUnit(root: string): string {
  const unitDirs = ['/etc/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];
  const has = (unit: string): boolean => unitDirs.some((d) => fs.existsSync(path.join(root, d, unit)));
  if (has('xenstored.service')) return 'xenstored';
  if (has('xen.service') || fs.existsSync(path.join(root, '/etc/init.d/xen'))) return 'xen';
  if (has('xencommons.service') || fs.existsSync(path.join(root, '/etc/init.d/xencommons'))) return 'xencommons';
  return 'xenstored';
}

export function checkHotplugLink(root: string): Finding {
  const link = path.join(root, HOTPLUG_LINK);
  const check = 'block-afsfile';
  let target: string;
  try {
    target = fs.readlinkSync(link);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { check, ok: false, detail: `${HOTPLUG_LINK} is missing: libxl cannot run script=block-afsfile`, fix: 'run install.sh (it links it to the executable)' };
    if (code !== 'EINVAL') return { check, ok: false, detail: `${HOTPLUG_LINK}: ${(e as Error).message}`, fix: 'run install.sh' };
    target = HOTPLUG_LINK; // a plain file (a copy): fine if executable
  }
  const resolved = path.isAbsolute(target) ? path.join(root, target) : path.resolve(path.dirname(link), target);
  try {
    fs.accessSync(resolved, fs.constants.X_OK);
  } catch {
    return { check, ok: false, detail: `${HOTPLUG_LINK} -> ${target}, which is missing or not executable`, fix: 'run install.sh again' };
  }
  return { check, ok: true, detail: target === HOTPLUG_LINK ? `${HOTPLUG_LINK} is an executable file` : `${HOTPLUG_LINK} -> ${target}` };
}

/** libxl runs hotplug scripts itself only with run_hotplug_scripts=1 (the default; xl.conf(5)). */
export function checkRunHotplugScripts(root: string): Finding {
  const check = 'run_hotplug_scripts';
  let text = '';
  try {
    text = fs.readFileSync(path.join(root, XL_CONF), 'utf8');
  } catch {
    return { check, ok: true, detail: `no ${XL_CONF}: libxl runs hotplug scripts (the default)` };
  }
  let value: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^\s*run_hotplug_scripts\s*=\s*"?([^"#\s]*)"?/.exec(line);
    if (m) value = m[1];
  }
  if (value === undefined || value === '1') return { check, ok: true, detail: `libxl runs hotplug scripts (${value === undefined ? 'the default' : `${XL_CONF}: run_hotplug_scripts=1`})` };
  return { check, ok: false, detail: `${XL_CONF} sets run_hotplug_scripts=${value}: libxl leaves scripts to udev, whose rules do not run block-afsfile`,
    fix: `set run_hotplug_scripts=1 in ${XL_CONF} (or remove the line)` };
}

function onPath(cmd: string, env: NodeJS.ProcessEnv): boolean {
  if (cmd.includes('/')) return isExecutable(cmd);
  return (env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d && isExecutable(path.join(d, cmd)));
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** With a keytab, renew runs kinit and aklog (the `aklog` setting's first word). */
export function checkKerberosTools(keytab: string | undefined, aklog: string, env: NodeJS.ProcessEnv): Finding {
  const check = 'kerberos tools';
  if (!keytab) return { check, ok: true, detail: 'no keytab configured: kinit and aklog are not needed' };
  const need: Array<[string, string]> = [['kinit', 'krb5-user'], [aklog.trim().split(/\s+/)[0] ?? 'aklog', 'openafs-krb5']];
  const missing = need.filter(([cmd]) => !onPath(cmd, env));
  if (!missing.length) return { check, ok: true, detail: `${need.map(([c]) => c).join(' and ')} found` };
  return { check, ok: false, detail: `a keytab is configured but ${missing.map(([c]) => c).join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not on PATH`,
    fix: `apt-get install ${missing.map(([, p]) => p).join(' ')}` };
}
