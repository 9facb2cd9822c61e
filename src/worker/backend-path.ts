// Backend directories the worker serves: /local/domain/<self>/backend/<kind>/<domid>/<devid>,
// kind vbd (kernel-blkback's name, used with script=) or vbd3 (backendtype=tap, Xen >= 4.19).
export const BACKEND_KINDS = ['vbd', 'vbd3'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

export interface BackendPath {
  readonly path: string;
  readonly selfDomid: number;
  readonly kind: BackendKind;
  readonly domid: number;
  readonly devid: number;
}

const RE = /^\/local\/domain\/(\d+)\/backend\/(vbd3?)\/(\d+)\/(\d+)$/;

export function parseBackendPath(path: string): BackendPath | undefined {
  const m = RE.exec(path);
  if (!m) return undefined;
  return { path, selfDomid: Number(m[1]), kind: m[2] as BackendKind, domid: Number(m[3]), devid: Number(m[4]) };
}

/** The device directory a watch event under `<root>/<kind>` is about, if any. */
export function deviceOf(eventPath: string): BackendPath | undefined {
  const m = /^(\/local\/domain\/\d+\/backend\/vbd3?\/\d+\/\d+)(\/.*)?$/.exec(eventPath);
  return m ? parseBackendPath(m[1]!) : undefined;
}

export function kindRoot(selfDomid: number, kind: BackendKind): string {
  return `/local/domain/${selfDomid}/backend/${kind}`;
}

/** The name of the device's status file (status/dev-<domid>-<devid>.json). */
export function statusName(b: Pick<BackendPath, 'domid' | 'devid'>): string {
  return `dev-${b.domid}-${b.devid}`;
}
