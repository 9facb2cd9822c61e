// The data-buffer allocator over the one grant-copy pool of a device: 4 KiB pages, first fit
// from a rotating cursor, tracked in a byte map. Fixed size, so memory is bounded whatever a
// guest sends; no allocation per request.
import { PAGE_SIZE } from '../blkif/constants';

export class PagePool {
  /** Pages in the pool. */
  readonly pages: number;
  /** 1 = in use, per page. */
  private readonly used: Uint8Array;
  private cursor = 0;
  private usedPages = 0;

  constructor(bytes: number) {
    this.pages = Math.floor(bytes / PAGE_SIZE);
    this.used = new Uint8Array(this.pages);
  }

  get bytesInUse(): number {
    return this.usedPages * PAGE_SIZE;
  }

  /** Pages needed for `bytes`. */
  static pagesFor(bytes: number): number {
    return Math.ceil(bytes / PAGE_SIZE);
  }

  /** Allocates n contiguous pages; returns the byte offset, or -1 when no run is free now. */
  alloc(n: number): number {
    if (n <= 0 || n > this.pages - this.usedPages) return -1;
    const total = this.pages;
    let start = this.cursor;
    let scanned = 0;
    while (scanned < total) {
      if (start + n > total) {
        scanned += total - start;
        start = 0;
        continue;
      }
      let run = 0;
      while (run < n && this.used[start + run] === 0) run++;
      if (run === n) {
        this.used.fill(1, start, start + n);
        this.usedPages += n;
        this.cursor = start + n === total ? 0 : start + n;
        return start * PAGE_SIZE;
      }
      scanned += run + 1;
      start += run + 1;
      if (start >= total) start = 0;
    }
    return -1;
  }

  free(offset: number, n: number): void {
    const start = offset / PAGE_SIZE;
    for (let i = start; i < start + n; i++) {
      if (this.used[i] !== 1) throw new Error(`PagePool: double free of page ${i}`);
      this.used[i] = 0;
    }
    this.usedPages -= n;
  }
}
