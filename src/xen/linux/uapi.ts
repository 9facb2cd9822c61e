// Linux UAPI of /dev/xen/evtchn and /dev/xen/gntdev: ioctl numbers, struct sizes and field
// offsets, x86_64 (and any LP64 little-endian kernel). Sources: include/uapi/xen/evtchn.h and
// include/uapi/xen/gntdev.h (Debian linux-libc-dev 6.1), xen.git xen/include/public/
// grant_table.h for GNTCOPY_*. test/linux/uapi.test.ts compiles a C probe
// against the installed headers and asserts every value here equal to it.
//
// The structs are encoded here and passed to the addon's generic ioctl as bytes; no other
// module knows an offset.

/** _IOC(_IOC_NONE, type, nr, size): on x86 and arm _IOC_NONE is 0 (dir bits 30-31 stay 0). */
function ioc(type: string, nr: number, size: number): number {
  return ((size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
}

/** struct sizes (bytes). MAP_GRANT_REF is declared with refs[1]; the real size is 16 + 8*count. */
export const SIZEOF = {
  ioctl_evtchn_bind_virq: 4,
  ioctl_evtchn_bind_interdomain: 8,
  ioctl_evtchn_bind_unbound_port: 4,
  ioctl_evtchn_unbind: 4,
  ioctl_evtchn_notify: 4,
  ioctl_evtchn_restrict_domid: 2,
  ioctl_gntdev_grant_ref: 8,
  ioctl_gntdev_map_grant_ref: 24,
  ioctl_gntdev_unmap_grant_ref: 16,
  ioctl_gntdev_get_offset_for_vaddr: 24,
  ioctl_gntdev_set_max_grants: 4,
  ioctl_gntdev_unmap_notify: 16,
  gntdev_grant_copy_segment: 24,
  ioctl_gntdev_grant_copy: 16,
  // gntalloc (include/uapi/xen/gntalloc.h): only the dom0 self-test uses it, to grant itself pages.
  ioctl_gntalloc_alloc_gref: 24,
  ioctl_gntalloc_dealloc_gref: 16,
  ioctl_gntalloc_unmap_notify: 16,
} as const;

/** Field offsets, named struct.field as in the headers. */
export const OFFSETOF = {
  'ioctl_evtchn_bind_virq.virq': 0,
  'ioctl_evtchn_bind_unbound_port.remote_domain': 0,
  'ioctl_evtchn_restrict_domid.domid': 0,
  'ioctl_evtchn_bind_interdomain.remote_domain': 0,
  'ioctl_evtchn_bind_interdomain.remote_port': 4,
  'ioctl_evtchn_unbind.port': 0,
  'ioctl_evtchn_notify.port': 0,
  'ioctl_gntdev_grant_ref.domid': 0,
  'ioctl_gntdev_grant_ref.ref': 4,
  'ioctl_gntdev_map_grant_ref.count': 0,
  'ioctl_gntdev_map_grant_ref.index': 8,
  'ioctl_gntdev_map_grant_ref.refs': 16,
  'ioctl_gntdev_unmap_grant_ref.index': 0,
  'ioctl_gntdev_unmap_grant_ref.count': 8,
  'ioctl_gntdev_get_offset_for_vaddr.vaddr': 0,
  'ioctl_gntdev_get_offset_for_vaddr.offset': 8,
  'ioctl_gntdev_get_offset_for_vaddr.count': 16,
  'ioctl_gntdev_set_max_grants.count': 0,
  'ioctl_gntdev_unmap_notify.index': 0,
  'ioctl_gntdev_unmap_notify.action': 8,
  'ioctl_gntdev_unmap_notify.event_channel_port': 12,
  'gntdev_grant_copy_segment.source': 0,
  'gntdev_grant_copy_segment.source.foreign.ref': 0,
  'gntdev_grant_copy_segment.source.foreign.offset': 4,
  'gntdev_grant_copy_segment.source.foreign.domid': 6,
  'gntdev_grant_copy_segment.dest': 8,
  'gntdev_grant_copy_segment.dest.foreign.ref': 8,
  'gntdev_grant_copy_segment.dest.foreign.offset': 12,
  'gntdev_grant_copy_segment.dest.foreign.domid': 14,
  'gntdev_grant_copy_segment.len': 16,
  'gntdev_grant_copy_segment.flags': 18,
  'gntdev_grant_copy_segment.status': 20,
  'ioctl_gntdev_grant_copy.count': 0,
  'ioctl_gntdev_grant_copy.segments': 8,
  'ioctl_gntalloc_alloc_gref.domid': 0,
  'ioctl_gntalloc_alloc_gref.flags': 2,
  'ioctl_gntalloc_alloc_gref.count': 4,
  'ioctl_gntalloc_alloc_gref.index': 8,
  'ioctl_gntalloc_alloc_gref.gref_ids': 16,
  'ioctl_gntalloc_dealloc_gref.index': 0,
  'ioctl_gntalloc_dealloc_gref.count': 8,
} as const;

export const IOCTL = {
  EVTCHN_BIND_VIRQ: ioc('E', 0, SIZEOF.ioctl_evtchn_bind_virq),
  EVTCHN_BIND_INTERDOMAIN: ioc('E', 1, SIZEOF.ioctl_evtchn_bind_interdomain),
  EVTCHN_BIND_UNBOUND_PORT: ioc('E', 2, SIZEOF.ioctl_evtchn_bind_unbound_port),
  EVTCHN_UNBIND: ioc('E', 3, SIZEOF.ioctl_evtchn_unbind),
  EVTCHN_NOTIFY: ioc('E', 4, SIZEOF.ioctl_evtchn_notify),
  EVTCHN_RESET: ioc('E', 5, 0),
  EVTCHN_RESTRICT_DOMID: ioc('E', 6, SIZEOF.ioctl_evtchn_restrict_domid),
  GNTDEV_MAP_GRANT_REF: ioc('G', 0, SIZEOF.ioctl_gntdev_map_grant_ref),
  GNTDEV_UNMAP_GRANT_REF: ioc('G', 1, SIZEOF.ioctl_gntdev_unmap_grant_ref),
  GNTDEV_GET_OFFSET_FOR_VADDR: ioc('G', 2, SIZEOF.ioctl_gntdev_get_offset_for_vaddr),
  GNTDEV_SET_MAX_GRANTS: ioc('G', 3, SIZEOF.ioctl_gntdev_set_max_grants),
  GNTDEV_SET_UNMAP_NOTIFY: ioc('G', 7, SIZEOF.ioctl_gntdev_unmap_notify),
  GNTDEV_GRANT_COPY: ioc('G', 8, SIZEOF.ioctl_gntdev_grant_copy),
  GNTALLOC_ALLOC_GREF: ioc('G', 5, SIZEOF.ioctl_gntalloc_alloc_gref),
  GNTALLOC_DEALLOC_GREF: ioc('G', 6, SIZEOF.ioctl_gntalloc_dealloc_gref),
  /** The same number as GNTDEV_SET_UNMAP_NOTIFY; a different device. */
  GNTALLOC_SET_UNMAP_NOTIFY: ioc('G', 7, SIZEOF.ioctl_gntalloc_unmap_notify),
} as const;

export const GNTALLOC_FLAG_WRITABLE = 1;

/** xen.git xen/include/public/grant_table.h */
export const GNTCOPY_source_gref = 1 << 0;
export const GNTCOPY_dest_gref = 1 << 1;

export const EVTCHN_DEVICE = '/dev/xen/evtchn';
export const GNTDEV_DEVICE = '/dev/xen/gntdev';
export const GNTALLOC_DEVICE = '/dev/xen/gntalloc';

// --- codecs (little-endian: every Xen host architecture Linux supports as dom0 is) ---

export function encodeBindInterdomain(out: DataView, remoteDomid: number, remotePort: number): void {
  out.setUint32(OFFSETOF['ioctl_evtchn_bind_interdomain.remote_domain'], remoteDomid, true);
  out.setUint32(OFFSETOF['ioctl_evtchn_bind_interdomain.remote_port'], remotePort, true);
}

/** ioctl_evtchn_unbind and ioctl_evtchn_notify: one u32 port. */
export function encodePort(out: DataView, port: number): void {
  out.setUint32(0, port, true);
}

/** ioctl_gntdev_map_grant_ref with count refs, all from one domain; index is filled by the kernel. */
export function encodeMapGrantRef(domid: number, grefs: readonly number[]): Uint8Array {
  const refsAt = OFFSETOF['ioctl_gntdev_map_grant_ref.refs'];
  // The kernel copies sizeof(struct) (one ref) in and out whatever the count: never less.
  const bytes = new Uint8Array(
    Math.max(SIZEOF.ioctl_gntdev_map_grant_ref, refsAt + SIZEOF.ioctl_gntdev_grant_ref * grefs.length),
  );
  const v = new DataView(bytes.buffer);
  v.setUint32(OFFSETOF['ioctl_gntdev_map_grant_ref.count'], grefs.length, true);
  grefs.forEach((ref, i) => {
    const at = refsAt + SIZEOF.ioctl_gntdev_grant_ref * i;
    v.setUint32(at + OFFSETOF['ioctl_gntdev_grant_ref.domid'], domid, true);
    v.setUint32(at + OFFSETOF['ioctl_gntdev_grant_ref.ref'], ref, true);
  });
  return bytes;
}

export function decodeMapIndex(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(OFFSETOF['ioctl_gntdev_map_grant_ref.index'], true);
}

export function encodeUnmapGrantRef(index: bigint, count: number): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.ioctl_gntdev_unmap_grant_ref);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(OFFSETOF['ioctl_gntdev_unmap_grant_ref.index'], index, true);
  v.setUint32(OFFSETOF['ioctl_gntdev_unmap_grant_ref.count'], count, true);
  return bytes;
}

export function encodeGetOffsetForVaddr(vaddr: bigint): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.ioctl_gntdev_get_offset_for_vaddr);
  new DataView(bytes.buffer).setBigUint64(OFFSETOF['ioctl_gntdev_get_offset_for_vaddr.vaddr'], vaddr, true);
  return bytes;
}

export function decodeGetOffsetForVaddr(bytes: Uint8Array): { offset: bigint; count: number } {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  return {
    offset: v.getBigUint64(OFFSETOF['ioctl_gntdev_get_offset_for_vaddr.offset'], true),
    count: v.getUint32(OFFSETOF['ioctl_gntdev_get_offset_for_vaddr.count'], true),
  };
}

/** ioctl_gntdev_grant_copy {count, segments pointer}. */
export function encodeGrantCopy(out: DataView, count: number, segmentsAddress: number): void {
  out.setUint32(OFFSETOF['ioctl_gntdev_grant_copy.count'], count, true);
  out.setUint32(4, 0, true);
  setU64(out, OFFSETOF['ioctl_gntdev_grant_copy.segments'], segmentsAddress);
}

/**
 * Writes a user virtual address (a Number: x86_64 user addresses are below 2^47, exact in a
 * double) as a little-endian u64 without allocating a BigInt on the hot path.
 */
export function setU64(out: DataView, at: number, value: number): void {
  const hi = Math.floor(value / 0x1_0000_0000);
  out.setUint32(at, value - hi * 0x1_0000_0000, true);
  out.setUint32(at + 4, hi, true);
}

/** ioctl_gntalloc_alloc_gref for count pages shared with domid; the kernel fills index and gref_ids. */
export function encodeAllocGref(domid: number, count: number, writable: boolean): Uint8Array {
  // The kernel writes back sizeof(struct) (24) before the gref_ids: never less than that.
  const bytes = new Uint8Array(
    Math.max(SIZEOF.ioctl_gntalloc_alloc_gref, OFFSETOF['ioctl_gntalloc_alloc_gref.gref_ids'] + 4 * count),
  );
  const v = new DataView(bytes.buffer);
  v.setUint16(OFFSETOF['ioctl_gntalloc_alloc_gref.domid'], domid, true);
  v.setUint16(OFFSETOF['ioctl_gntalloc_alloc_gref.flags'], writable ? GNTALLOC_FLAG_WRITABLE : 0, true);
  v.setUint32(OFFSETOF['ioctl_gntalloc_alloc_gref.count'], count, true);
  return bytes;
}

export function decodeAllocGref(bytes: Uint8Array, count: number): { index: bigint; grefs: number[] } {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  const at = OFFSETOF['ioctl_gntalloc_alloc_gref.gref_ids'];
  return {
    index: v.getBigUint64(OFFSETOF['ioctl_gntalloc_alloc_gref.index'], true),
    grefs: Array.from({ length: count }, (_, i) => v.getUint32(at + 4 * i, true)),
  };
}

export function encodeDeallocGref(index: bigint, count: number): Uint8Array {
  const bytes = new Uint8Array(SIZEOF.ioctl_gntalloc_dealloc_gref);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(OFFSETOF['ioctl_gntalloc_dealloc_gref.index'], index, true);
  v.setUint32(OFFSETOF['ioctl_gntalloc_dealloc_gref.count'], count, true);
  return bytes;
}
