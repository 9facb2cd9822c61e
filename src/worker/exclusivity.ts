// Who uses which image (DESIGN contracts, hotplug <-> worker 5): keyed by (st_dev, st_ino) and
// by realpath (either matching means the same image); a read-write user excludes every other
// user, read-only users may share. The supervisor is the one authority; after a restart it
// rebuilds the table from the devices XenStore still lists. Identities come from the open file.
export interface ImageIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly realpath: string;
}

export interface Holder {
  readonly backend: string;
  readonly domid: number;
  readonly writable: boolean;
}

export class ExclusivityTable {
  private readonly entries = new Map<string, { id: ImageIdentity; holder: Holder }>();

  /** Records the use, or returns the holder it conflicts with. Re-acquiring is a no-op.
   * `mayShare`: a holder this one may share the image with all the same (a migration's source,
   * for its destination: the image lock orders the two). */
  acquire(id: ImageIdentity, holder: Holder, mayShare: (other: Holder) => boolean = () => false): Holder | undefined {
    for (const e of this.entries.values()) {
      if (e.holder.backend === holder.backend) continue;
      const same = (e.id.dev === id.dev && e.id.ino === id.ino) || e.id.realpath === id.realpath;
      if (same && (e.holder.writable || holder.writable) && !mayShare(e.holder)) return e.holder;
    }
    this.entries.set(holder.backend, { id, holder });
    return undefined;
  }

  release(backend: string): void {
    this.entries.delete(backend);
  }

  has(backend: string): boolean {
    return this.entries.has(backend);
  }

  get size(): number {
    return this.entries.size;
  }
}

export function conflictMessage(image: string, writable: boolean, other: Holder): string {
  return `${image} is already in use ${other.writable ? 'read-write' : 'read-only'} by domain ${other.domid}` +
    ` (${other.backend}); ${writable || other.writable ? 'a read-write image cannot be shared' : ''}` +
    `: detach it there first, or give both guests access=ro`;
}
