// The release half of a lazily mapped grant-copy pool, shared by the Linux and simulated grant
// tables: whole pages only (madvise works on pages; a partial page may hold live data). The
// device is idle when this runs (unless `trim` is false), so the malloc arenas' free memory goes
// back too.
import { native } from '../native/addon';
import type { NativeAddon } from '../native/types';
import { PAGE_SIZE } from './grant-table';

export function releaseWholePages(
  pool: Uint8Array, offset: number, length: number, addon: NativeAddon = native(), trim = true,
): void {
  const start = Math.ceil((pool.byteOffset + offset) / PAGE_SIZE) * PAGE_SIZE;
  const end = Math.floor(Math.min(pool.byteOffset + offset + length, pool.buffer.byteLength) / PAGE_SIZE) * PAGE_SIZE;
  if (end > start) addon.releasePages(pool.buffer as ArrayBuffer, start, end - start);
  if (trim) addon.trimMalloc();
}
