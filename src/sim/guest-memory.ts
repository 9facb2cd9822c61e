// A simulated guest's memory and grant table, in one file that both the guest side and the
// backend map (MAP_SHARED through the addon's mapFile), in one process or across processes.
//
// File layout (all little-endian u32):
//   page 0                 header: magic, version, domid, nrPages, maxGrants, grantPages
//   pages 1..grantPages    grant table: maxGrants entries of 16 bytes
//                          { flags (1 = permit access, 2 = read-only), grantee domid, guest page, 0 }
//   then nrPages pages     guest memory ("guest page n" lives at file page 1 + grantPages + n)
//
// The backend maps ring pages as a second mapping of the same file range, so the ring is the
// same bytes, never a copy. That needs the ring's pages to be consecutive guest pages; the
// simulated frontend allocates them so (allocContiguous), and mapRing refuses anything else.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from '../native/addon';
import { PAGE_SIZE } from '../xen/grant-table';

const MAGIC = 0x4d495341; // "ASIM"
const VERSION = 1;
export const GRANT_ENTRY_SIZE = 16;
export const GTF_permit_access = 1;
export const GTF_readonly = 2;
/** Linux keeps the first grant references for the toolstack (GNTTAB_NR_RESERVED_ENTRIES). */
export const FIRST_GREF = 8;

export interface GuestLayout {
  readonly domid: number;
  readonly nrPages: number;
  readonly maxGrants: number;
  readonly grantPages: number;
}

export function fileBytes(l: GuestLayout): number {
  return (1 + l.grantPages + l.nrPages) * PAGE_SIZE;
}

/** File offset of guest page n. */
export function pageOffset(l: GuestLayout, page: number): number {
  return (1 + l.grantPages + page) * PAGE_SIZE;
}

/** A mapping of a guest memory file: grant table and pages, as either side sees them. */
export class GuestMemoryView {
  readonly bytes: Uint8Array;
  private readonly words: Uint32Array;

  constructor(readonly fd: number, readonly buffer: ArrayBuffer, readonly layout: GuestLayout) {
    this.bytes = new Uint8Array(buffer);
    this.words = new Uint32Array(buffer);
  }

  /** Maps an existing guest memory file (the backend side). */
  static open(file: string): GuestMemoryView {
    const fd = fs.openSync(file, 'r+');
    try {
      const head = Buffer.alloc(24);
      fs.readSync(fd, head, 0, 24, 0);
      if (head.readUInt32LE(0) !== MAGIC || head.readUInt32LE(4) !== VERSION)
        throw new Error(`${file}: not a simulated guest memory file`);
      const layout: GuestLayout = {
        domid: head.readUInt32LE(8),
        nrPages: head.readUInt32LE(12),
        maxGrants: head.readUInt32LE(16),
        grantPages: head.readUInt32LE(20),
      };
      return new GuestMemoryView(fd, native().mapFile(fd, fileBytes(layout), 0, true), layout);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /**
   * Creates the file (the guest side). With no path, a file in /dev/shm (else the temp dir)
   * that is unlinked at once: only this process and its in-process backend ever see it.
   */
  static create(domid: number, nrPages: number, maxGrants: number, file?: string): GuestMemoryView {
    const grantPages = Math.ceil((maxGrants * GRANT_ENTRY_SIZE) / PAGE_SIZE);
    const layout: GuestLayout = { domid, nrPages, maxGrants, grantPages };
    const target =
      file ??
      path.join(
        fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(),
        `afsfile-sim-${process.pid}-${domid}-${Math.random().toString(36).slice(2)}`,
      );
    const fd = fs.openSync(target, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      if (!file) fs.unlinkSync(target);
      fs.ftruncateSync(fd, fileBytes(layout));
      const view = new GuestMemoryView(fd, native().mapFile(fd, fileBytes(layout), 0, true), layout);
      const w = view.words;
      w[0] = MAGIC;
      w[1] = VERSION;
      w[2] = domid;
      w[3] = nrPages;
      w[4] = maxGrants;
      w[5] = grantPages;
      return view;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** A second mapping of `count` consecutive guest pages: the same bytes as the guest's. */
  mapPages(first: number, count: number): ArrayBuffer {
    return native().mapFile(this.fd, count * PAGE_SIZE, pageOffset(this.layout, first), true);
  }

  /** The bytes of guest page n (a view, no copy). */
  page(n: number): Uint8Array {
    return this.bytes.subarray(pageOffset(this.layout, n), pageOffset(this.layout, n) + PAGE_SIZE);
  }

  private entryWord(gref: number): number {
    return (PAGE_SIZE + gref * GRANT_ENTRY_SIZE) / 4;
  }

  setGrant(gref: number, grantee: number, page: number, readonly: boolean): void {
    const i = this.entryWord(gref);
    this.words[i + 1] = grantee;
    this.words[i + 2] = page;
    // Flags last, so a concurrent reader never sees a valid entry with a stale page.
    Atomics.store(this.words, i, GTF_permit_access | (readonly ? GTF_readonly : 0));
  }

  clearGrant(gref: number): void {
    Atomics.store(this.words, this.entryWord(gref), 0);
  }

  /**
   * The grant as the hypervisor's copy checks it, without allocating (once per segment):
   * the guest page number, or a GNTST-style negative code: -3 (bad_gntref) when not valid for
   * `grantee`, -8 (permission_denied) when `write` and the grant is read-only.
   */
  grantedPage(gref: number, grantee: number, write: boolean): number {
    if (!(gref >= 0 && gref < this.layout.maxGrants) || gref !== (gref | 0)) return -3;
    const i = (PAGE_SIZE + gref * GRANT_ENTRY_SIZE) >> 2;
    const flags = Atomics.load(this.words, i);
    if (!(flags & GTF_permit_access) || this.words[i + 1] !== grantee) return -3;
    const page = this.words[i + 2]!;
    if (page >= this.layout.nrPages) return -3;
    if (write && flags & GTF_readonly) return -8;
    return page;
  }

  /** Byte offset of guest page n in `bytes`. */
  pageByteOffset(n: number): number {
    return (1 + this.layout.grantPages + n) * PAGE_SIZE;
  }

  /** The grant as the hypervisor checks it: undefined when not valid for `grantee`. */
  lookupGrant(gref: number, grantee: number): { page: number; readonly: boolean } | undefined {
    if (!Number.isInteger(gref) || gref < 0 || gref >= this.layout.maxGrants) return undefined;
    const i = this.entryWord(gref);
    const flags = Atomics.load(this.words, i);
    if (!(flags & GTF_permit_access) || this.words[i + 1] !== grantee) return undefined;
    const page = this.words[i + 2]!;
    if (page >= this.layout.nrPages) return undefined;
    return { page, readonly: (flags & GTF_readonly) !== 0 };
  }

  close(): void {
    // The mappings go away when their ArrayBuffers are collected (the addon's finalizer).
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }
}
