// A migration to this same host, as xl does it (tools/xl/xl_migrate.c): the receiving domain is
// named `<name>--incoming` until the stream is in, the sending one is renamed
// `<name>--migratedaway` before it is destroyed, and both are the same VM (libxl writes the same
// /vm/<uuid> path for both). While both exist, the destination may share its source's images:
// it takes the image lock only when its guest connects, after the source let go.
import type { XenStoreOps } from './xenstore';

/** What xl calls a domain while it receives a migration (xl_migrate.c migrate_receive). */
export const INCOMING_SUFFIX = '--incoming';
/** What xl calls the sending domain once the stream is sent (xl_migrate.c migrate_domain). */
export const MIGRATED_AWAY_SUFFIX = '--migratedaway';

/**
 * The domains a migration destination (domain `domid` named `name`) may share its images with
 * until its guest connects: its source, the same VM (its `vm` path) under the name or under
 * the name xl gives it once the stream is sent. Empty when `name` is not a destination's.
 */
export async function migrationSources(
  xs: Pick<XenStoreOps, 'tryRead' | 'directory'>, domid: number, name: string | undefined,
): Promise<Set<number>> {
  const found = new Set<number>();
  if (!name?.endsWith(INCOMING_SUFFIX)) return found;
  const base = name.slice(0, -INCOMING_SUFFIX.length);
  const vm = await xs.tryRead(`/local/domain/${domid}/vm`);
  const doms = await xs.directory('/local/domain').catch(() => [] as string[]);
  for (const d of doms) {
    if (!/^\d+$/.test(d) || Number(d) === domid) continue;
    const [n, v] = await Promise.all([xs.tryRead(`/local/domain/${d}/name`), xs.tryRead(`/local/domain/${d}/vm`)]);
    if ((n === base || n === `${base}${MIGRATED_AWAY_SUFFIX}`) && (vm === undefined || v === vm)) found.add(Number(d));
  }
  return found;
}
