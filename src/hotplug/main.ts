// The block-afsfile hotplug script, as libxl runs it: `block-afsfile add|remove` with
// XENBUS_PATH=backend/vbd/<domid>/<devid> (relative to /local/domain/<self>), stdin /dev/null,
// 40 s to finish, judged by exit status; on failure xl shows `hotplug-error`.
// Contract with the worker: DESIGN.md "Hotplug <-> worker" (afsfile-status / afsfile-error).
import { UsageError } from '../cli/errors';
import type { ParsedArgs } from '../cli/parse';
import { connectXenStore } from '../xen/xenstore-client';
import type { XenStore } from '../xen/xenstore';
import { waitForKey } from '../xen/xenstore-wait';
import { identityNote } from './identity-note';
import { HotplugLog } from './log';
import { SpecError, parseDiskSpec } from './params';
import { findConflicts } from './sharing';

const EXIT_OK = 0;
const EXIT_FAILED = 1;

export async function hotplugMain(args: ParsedArgs, env: NodeJS.ProcessEnv, configError?: string): Promise<number> {
  const action = args.positional[0];
  if (action !== 'add' && action !== 'remove') throw new UsageError(`expected add or remove, got ${action === undefined ? 'nothing' : `"${action}"`}`);
  const xenbusPath = env.XENBUS_PATH;
  const tag = `${action} ${xenbusPath ?? '(no XENBUS_PATH)'}`;
  const log = new HotplugLog(args.string('hotplug-log'), tag, args.string('hotplug-syslog'));
  try {
    if (!xenbusPath) {
      log.line('XENBUS_PATH is not set: this script is run by libxl (xl block-attach / xl create), not by hand');
      return EXIT_FAILED;
    }
    const backend = xenbusPath.startsWith('/') ? xenbusPath : `/local/domain/0/${xenbusPath}`;
    const base = backend.replace(/\/(vbd3?|qdisk)\/[^/]+\/[^/]+$/, '');
    const waitMs = args.number('hotplug-wait') * 1000;
    let xs: XenStore;
    try {
      // No reconnect loop: libxl gives the script 40 s, and a dead xenstored is an answer.
      xs = await connectXenStore({ env: env, reconnect: false });
    } catch (err) {
      log.line(`cannot reach xenstored: ${(err as Error).message}`);
      return EXIT_FAILED;
    }
    try {
      // A broken config file (hotplug-wait, hotplug-log are read from it) must not leave xl
      // with a bare exit status: say which line is wrong; removal goes on with the defaults.
      if (configError) {
        if (action === 'add') return await fail(xs, backend, 'error', `afsfile: ${configError} (\`afsfile check\` lists every problem)`, log);
        log.line(`config file problem, removing with the defaults: ${configError}`);
      }
      const files = { runDir: args.string('run-dir'), config: args.string('config') };
      return action === 'add'
        ? await add(xs, backend, base, waitMs, log, files)
        : await remove(xs, backend, waitMs, log);
    } finally {
      xs.close();
    }
  } finally {
    log.close();
  }
}

async function fail(xs: XenStore, backend: string, status: 'error' | 'busy', message: string, log: HotplugLog): Promise<number> {
  log.line(`${status}: ${message}`);
  try {
    const wrote = await xs.transaction(async (tx) => {
      // Never re-create a backend directory libxl removed meanwhile (a write creates parents).
      if ((await tx.tryRead(backend)) === undefined) return false;
      await tx.write(`${backend}/hotplug-error`, message);
      await tx.write(`${backend}/hotplug-status`, status);
      return true;
    });
    if (!wrote) log.line('the backend directory is gone: nothing written');
  } catch (err) {
    log.line(`could not report the error in xenstore: ${(err as Error).message}`);
  }
  return EXIT_FAILED;
}

async function add(xs: XenStore, backend: string, base: string, waitMs: number, log: HotplugLog,
  files: { runDir: string; config: string }): Promise<number> {
  const params = await xs.tryRead(`${backend}/params`);
  const modeText = await xs.tryRead(`${backend}/mode`);
  let spec;
  try {
    spec = parseDiskSpec(params, modeText);
  } catch (err) {
    if (err instanceof SpecError) return fail(xs, backend, 'error', `afsfile: ${params ?? '(no params)'}: ${err.message}`, log);
    throw err;
  }
  log.line(`image ${spec.image} mode ${spec.mode}`);

  const conflicts = await findConflicts(xs, base, backend, spec.image, spec.mode);
  if (conflicts.length) {
    const c = conflicts[0]!;
    const how = c.mode === 'r' ? 'read-only' : 'read-write';
    return fail(xs, backend, 'busy',
      `afsfile: ${spec.image} is already attached ${how} to domain ${c.domid} (${c.backendPath}); ` +
      (spec.mode === 'w' ? 'detach it there first, or attach it read-only (access=ro) everywhere' : 'a read-write disk cannot be shared'), log);
  }

  // The worker (inside the PAG, where AFS is visible) opens the image and gives the verdict.
  const verdict = await waitForKey(xs, `${backend}/afsfile-status`, (v) => v === 'opened' || v === 'error' || v === 'busy', waitMs, { dir: backend });
  if (verdict.kind === 'gone') return fail(xs, backend, 'error', `afsfile: ${spec.image}: the device was removed while waiting for the worker`, log);
  if (verdict.kind === 'timeout')
    return fail(xs, backend, 'error',
      `afsfile: ${spec.image}: the afsfile worker did not open the image within ${Math.round(waitMs / 1000)} s; ` +
      'is afsfile.service running? (systemctl status afsfile; afsfile check)', log);
  if (verdict.value === 'error' || verdict.value === 'busy') {
    const why = (await xs.tryRead(`${backend}/afsfile-error`)) ?? 'the worker could not open the image (no reason given)';
    // The principal of the domain's identity: for the administrator's log, never for XenStore.
    const note = identityNote(why, files.runDir, files.config);
    if (note) log.line(note);
    // busy: the worker's exclusivity table found the image in use (xl then says so).
    return fail(xs, backend, verdict.value, `afsfile: ${why}`, log);
  }
  await xs.write(`${backend}/hotplug-status`, 'connected');
  log.line(`connected: the worker opened ${spec.image}`);
  return EXIT_OK;
}

async function remove(xs: XenStore, backend: string, waitMs: number, log: HotplugLog): Promise<number> {
  // libxl has already asked for Closing and waited for Closed; wait (bounded) for the device
  // child to finish, then succeed whatever happened, as Xen's scripts do on remove.
  const closed = await waitForKey(xs, `${backend}/state`, (v) => v === '6', Math.min(waitMs, 10_000), { dir: backend });
  if (closed.kind === 'value') log.line('removed: the backend answered Closed');
  else if (closed.kind === 'gone') log.line('removed: the device is already gone');
  else log.line('removed: the backend did not answer Closed in time (worker down?); nothing left to undo here');
  return EXIT_OK;
}
