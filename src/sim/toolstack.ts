// What libxl writes to XenStore for a vbd, and how it removes one, for tests and the demo.
// Works against any XenStore (the in-memory store or the real xenstored), as dom0.
//
// Sources: xen.git tools/libs/light/libxl_disk.c device_disk_add,
// libxl_device.c libxl__device_generic_add (one transaction: the libxl copy, then the frontend
// dir rm+mkdir+perms+backend+keys, then the backend dir rm+mkdir+perms+frontend+keys),
// libxl__initiate_device_generic_remove (online=0 and state=5 in one transaction, wait up to
// LIBXL_DESTROY_TIMEOUT = 10 s for state 6) and libxl__device_destroy (remove both dirs).
import { XenbusState, parseState } from '../xen/xenbus-state';
import type { Permission, XenStore, XenStoreOps } from '../xen/xenstore';
import { PROTOCOL_X86_64 } from '../blkif/constants';
import { waitForKey } from '../xen/xenstore-wait';
import { vdevToDevid } from '../xen/vdev';

export { vdevToDevid };

/** LIBXL_DESTROY_TIMEOUT (libxl_internal.h). */
export const LIBXL_DESTROY_TIMEOUT_MS = 10_000;
/** Where libxl makes script= absolute (libxl__xen_script_dir_path()). */
export const XEN_SCRIPT_DIR = '/etc/xen/scripts';

export interface VbdConfig {
  /** The guest. */
  readonly domid: number;
  /** vdev as in the disk spec (xvda, xvdb1, 51728, d0p1); default xvda. */
  readonly vdev?: string;
  /** target= (params, verbatim for phy with a script). */
  readonly target: string;
  readonly access?: 'rw' | 'ro';
  /** script=; made absolute under /etc/xen/scripts as libxl does. Default block-afsfile. */
  readonly script?: string;
  readonly backendDomid?: number;
  /** Backend kind: vbd, or vbd3 for backendtype=tap on Xen >= 4.19. */
  readonly kind?: 'vbd' | 'vbd3';
  /** PV guests also get frontend `protocol` (the domain's native ABI). Default true. */
  readonly pv?: boolean;
  readonly protocol?: string;
  readonly cdrom?: boolean;
  /** discard-enable: default 1 when writable. */
  readonly discardEnable?: boolean;
  readonly trusted?: boolean;
}

export interface VbdPaths {
  readonly domid: number;
  readonly devid: number;
  readonly backendDomid: number;
  readonly backend: string;
  readonly frontend: string;
  readonly libxl: string;
}

export interface RemoveResult {
  /** The backend reached Closed (6) within the timeout. */
  readonly closed: boolean;
  readonly waitedMs: number;
}

export function vbdPaths(cfg: Pick<VbdConfig, 'domid' | 'vdev' | 'backendDomid' | 'kind'>): VbdPaths {
  const devid = vdevToDevid(cfg.vdev ?? 'xvda');
  const backendDomid = cfg.backendDomid ?? 0;
  const kind = cfg.kind ?? 'vbd';
  return {
    domid: cfg.domid,
    devid,
    backendDomid,
    backend: `/local/domain/${backendDomid}/backend/${kind}/${cfg.domid}/${devid}`,
    // The frontend is always under device/vbd, whatever the backend kind.
    frontend: `/local/domain/${cfg.domid}/device/vbd/${devid}`,
    libxl: `/libxl/${cfg.domid}/device/vbd/${devid}`,
  };
}

export class Toolstack {
  constructor(private readonly xs: XenStore) {}

  /**
   * The guest's home as libxl__domain_make leaves it: /local/domain/<domid> owned by dom0 and
   * readable by the guest, device/ (and the other guest-writable dirs) owned by the guest.
   */
  async createDomain(domid: number, name = `guest${domid}`): Promise<void> {
    const dom = `/local/domain/${domid}`;
    const roperm: Permission[] = [{ domid: 0, access: 'n' }, { domid, access: 'r' }];
    const rwperm: Permission[] = [{ domid, access: 'n' }];
    await this.xs.transaction(async (t) => {
      await t.mkdir(dom);
      await t.setPermissions(dom, roperm);
      await t.write(`${dom}/name`, name);
      await t.write(`${dom}/domid`, String(domid));
      for (const sub of ['device', 'control', 'data', 'drivers', 'feature', 'attr', 'error']) {
        await t.mkdir(`${dom}/${sub}`);
        await t.setPermissions(`${dom}/${sub}`, rwperm);
      }
    });
  }

  /** Writes the vbd exactly as libxl__device_generic_add does for a phy disk with script=. */
  async addVbd(cfg: VbdConfig): Promise<VbdPaths> {
    const p = vbdPaths(cfg);
    const writable = (cfg.access ?? 'rw') === 'rw';
    const script = (cfg.script ?? 'block-afsfile').startsWith('/')
      ? cfg.script!
      : `${XEN_SCRIPT_DIR}/${cfg.script ?? 'block-afsfile'}`;
    const back: Array<[string, string]> = [
      ['frontend-id', String(cfg.domid)],
      ['online', '1'],
      ['removable', cfg.cdrom ? '1' : '0'],
      ['bootable', '1'],
      ['state', String(XenbusState.Initialising)],
      ['dev', cfg.vdev ?? 'xvda'],
      ['type', 'phy'],
      ['mode', writable ? 'w' : 'r'],
      ['device-type', cfg.cdrom ? 'cdrom' : 'disk'],
      ['discard-enable', (cfg.discardEnable ?? writable) ? '1' : '0'],
      ['specification', 'xen'],
      ['params', cfg.target],
      ['script', script],
    ];
    const front: Array<[string, string]> = [
      ['backend-id', String(p.backendDomid)],
      ['state', String(XenbusState.Initialising)],
      ['virtual-device', String(p.devid)],
      ['device-type', cfg.cdrom ? 'cdrom' : 'disk'],
      ['trusted', (cfg.trusted ?? true) ? '1' : '0'],
    ];
    if (cfg.pv ?? true) front.push(['protocol', cfg.protocol ?? PROTOCOL_X86_64]);
    const frontendPerms: Permission[] = [{ domid: p.domid, access: 'n' }, { domid: p.backendDomid, access: 'r' }];
    const backendPerms: Permission[] = [{ domid: p.backendDomid, access: 'n' }, { domid: p.domid, access: 'r' }];

    await this.xs.transaction(async (t) => {
      await t.rm(p.libxl).catch(ignoreEnoent);
      await t.write(`${p.libxl}/frontend`, p.frontend);
      await t.write(`${p.libxl}/backend`, p.backend);

      await t.rm(p.frontend).catch(ignoreEnoent);
      await t.mkdir(p.frontend);
      await t.setPermissions(p.frontend, frontendPerms);
      await t.write(`${p.frontend}/backend`, p.backend);
      // libxl__xs_writev_perms: each frontend key gets the frontend permissions explicitly.
      for (const [k, v] of front) {
        await t.write(`${p.frontend}/${k}`, v);
        await t.setPermissions(`${p.frontend}/${k}`, frontendPerms);
      }

      await t.rm(p.backend).catch(ignoreEnoent);
      await t.mkdir(p.backend);
      await t.setPermissions(p.backend, backendPerms);
      await t.write(`${p.backend}/frontend`, p.frontend);
      for (const [k, v] of back) await t.write(`${p.backend}/${k}`, v);

      for (const [k, v] of back) await t.write(`${p.libxl}/${k}`, v);
    });
    return p;
  }

  /** What `block-afsfile add` writes on success (the demo and in-process tests run no script). */
  async hotplugConnected(p: VbdPaths): Promise<void> {
    await this.xs.write(`${p.backend}/hotplug-status`, 'connected');
  }

  /** Resolves true when the backend state reaches `state` within timeoutMs, false otherwise. */
  waitBackendState(p: VbdPaths, state: number, timeoutMs: number): Promise<boolean> {
    return waitFor(this.xs, `${p.backend}/state`, (v) => parseState(v) === state, timeoutMs);
  }

  /**
   * libxl's removal: online=0 and (unless already Closed) state=5 in one transaction, wait up
   * to 10 s for Closed, then remove the frontend, backend and libxl dirs (libxl__device_destroy,
   * with empty parents, as libxl__xs_path_cleanup does). The hotplug `remove` step that libxl
   * runs between waiting and destroying is not run here.
   */
  async removeVbd(p: VbdPaths, opts: { timeoutMs?: number; destroy?: boolean } = {}): Promise<RemoveResult> {
    const started = Date.now();
    await this.xs.transaction(async (t: XenStoreOps) => {
      const state = parseState(await t.tryRead(`${p.backend}/state`));
      await t.write(`${p.backend}/online`, '0');
      if (state !== XenbusState.Closed) await t.write(`${p.backend}/state`, String(XenbusState.Closing));
    });
    const closed = await this.waitBackendState(p, XenbusState.Closed, opts.timeoutMs ?? LIBXL_DESTROY_TIMEOUT_MS);
    const waitedMs = Date.now() - started;
    if (opts.destroy ?? true) await this.destroy(p);
    return { closed, waitedMs };
  }

  /** libxl__device_destroy: the three dirs and their empty parents, in one transaction. */
  async destroy(p: VbdPaths): Promise<void> {
    await this.xs.transaction(async (t) => {
      for (const path of [p.frontend, p.backend, p.libxl]) await pathCleanup(t, path);
    });
  }
}

async function pathCleanup(t: XenStoreOps, path: string): Promise<void> {
  await t.rm(path).catch(ignoreEnoent);
  let parent = path.slice(0, path.lastIndexOf('/'));
  // Stop at a domain's home (/local/domain/N) or the top of /libxl.
  while (parent && !/^\/local\/domain\/\d+$/.test(parent) && parent !== '/libxl' && parent !== '/local/domain') {
    const children = await t.directory(parent).catch(() => undefined);
    if (!children || children.length) break;
    await t.rm(parent).catch(ignoreEnoent);
    parent = parent.slice(0, parent.lastIndexOf('/'));
  }
}

function ignoreEnoent(err: unknown): void {
  if ((err as { code?: string }).code !== 'ENOENT') throw err;
}

/** Waits (by watch) until the value at path satisfies pred; false on timeout. */
export async function waitFor(
  xs: XenStore,
  path: string,
  pred: (value: string | undefined) => boolean,
  timeoutMs: number,
): Promise<boolean> {
  return (await waitForKey(xs, path, pred, timeoutMs)).kind === 'value';
}
