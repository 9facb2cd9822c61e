// The data-buffer allocator over the one grant-copy pool of a device: 4 KiB pages, first fit
// from the lowest address, tracked in a byte map. Fixed size, so memory is bounded whatever a
// guest sends; no allocation per request. Lowest address first keeps the pages in use packed
// at the start of the pool, so the pool's resident memory (it is mapped lazily) follows the
// most that was in flight at once, not the pool's size.
import { PAGE_SIZE } from '../blkif/constants';

export class PagePool {
  /** Pages in the pool. */
  readonly pages: number;
  /** 1 = in use, per page. */
  private readonly used: Uint8Array;
  /** No page below this one is free. */
  private lowestFree = 0;
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

  /** Allocates n contiguous pages, the lowest run that fits; returns the byte offset, or -1
   * when no run is free now. */
  alloc(n: number): number {
    if (n <= 0 || n > this.pages - this.usedPages) return -1;
    const used = this.used;
    const total = this.pages;
    let start = this.lowestFree;
    while (start < total && used[start] === 1) start++;
    if (start > this.lowestFree) this.lowestFree = start;
    while (start + n <= total) {
      let run = 0;
      while (run < n && used[start + run] === 0) run++;
      if (run === n) {
        used.fill(1, start, start + n);
        this.usedPages += n;
        if (start === this.lowestFree) this.lowestFree = start + n;
        return start * PAGE_SIZE;
      }
      start += run + 1;
      while (start < total && used[start] === 1) start++;
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
    if (start < this.lowestFree) this.lowestFree = start;
  }
}
