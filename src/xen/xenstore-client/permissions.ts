// XenStore permission strings (docs/misc/xenstore.txt): `<access><domid>`, access one of
// r (read), w (write), b (both), n (none); the first entry is the owner and the default.
import { type Access, type Permission, XenStoreError } from '../xenstore';

const ACCESS = new Set<string>(['r', 'w', 'b', 'n']);

export function formatPermissions(perms: readonly Permission[]): string[] {
  if (perms.length === 0) throw new XenStoreError('EINVAL', 'set-perms', '', 'at least the owner entry is needed');
  return perms.map((p) => {
    if (!Number.isInteger(p.domid) || p.domid < 0 || p.domid > 0xffff || !ACCESS.has(p.access)) {
      throw new XenStoreError('EINVAL', 'set-perms', '', `bad permission ${JSON.stringify(p)}`);
    }
    return `${p.access}${p.domid}`;
  });
}

export function parsePermissions(parts: readonly string[], path: string): Permission[] {
  return parts.map((s) => {
    const m = /^([rwbn])(\d+)$/.exec(s);
    if (!m) throw new XenStoreError('EIO', 'get-perms', path, `unparsable permission ${JSON.stringify(s)}`);
    return { access: m[1] as Access, domid: Number(m[2]) };
  });
}
