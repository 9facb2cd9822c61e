// Memory for the write data Durability keeps until an fsync covers it: one lazily mapped
// buffer used as a FIFO ring, so keeping a write is a memcpy and no allocation. A copy per
// write on the JavaScript heap (an ArrayBuffer each) made V8 collect garbage for the external
// memory, often with full mark-compacts (bench/README.md has the figures).
//
// Copies are taken at the tail and let go oldest first (Durability keeps them in completion
// order and releases a prefix after each good fsync); one let go out of order (the same range
// written again) is reclaimed when everything before it is. When the ring has no room for a
// copy, the caller keeps it on the heap instead: nothing kept is ever lost for want of room.

/** Where a copy lives: its start in the arena. */
export type ArenaSlot = number;

export interface ArenaMemory {
  /** Zeroed memory of `bytes`, mapped lazily (GrantTable.allocPool on Linux). */
  alloc(bytes: number): Uint8Array;
  /** Gives the whole pages of [offset, offset + length) back to the host; `busy`: while other
   * copies are alive (a cheaper release). */
  release(mem: Uint8Array, offset: number, length: number, busy?: boolean): void;
}

export class KeepArena {
  private mem: Uint8Array | null = null;
  /** Start of the oldest copy that may still be alive; the next copy goes at tail. */
  private head = 0;
  private tail = 0;
  /** Copies alive in the arena. */
  private live = 0;
  /** Highest byte written since the pages were last given back. */
  private touched = 0;

  constructor(readonly size: number, private readonly memory: ArenaMemory) {}

  /** A copy of data in the arena, as [slot, view], or null when there is no room now. */
  copy(data: Uint8Array): [ArenaSlot, Uint8Array] | null {
    const n = data.length;
    if (n === 0 || n > this.size) return null;
    let at: number;
    if (this.live > 0 && this.tail <= this.head) {
      // Wrapped: free is [tail, head) (nothing when they meet).
      if (this.head - this.tail >= n) at = this.tail;
      else return null;
    } else if (this.size - this.tail >= n) {
      // Alive is [head, tail): free is [tail, size) and [0, head).
      at = this.tail;
    } else if (this.head >= n) {
      at = 0; // the end stays unused until head wraps too
    } else {
      return null;
    }
    this.mem ??= this.memory.alloc(this.size);
    const view = this.mem.subarray(at, at + n);
    view.set(data);
    this.tail = at + n;
    if (this.tail > this.touched) this.touched = this.tail;
    this.live++;
    return [at, view];
  }

  /** Bytes of the ring between the oldest copy that may be alive and the newest: what stays
   * resident for the copies alive (holes of copies let go out of order included). */
  span(): number {
    if (this.live <= 0) return 0;
    return this.tail > this.head ? this.tail - this.head : this.size - this.head + this.tail;
  }

  /** A copy was let go. */
  drop(): void {
    if (--this.live <= 0) this.clear();
  }

  /**
   * After letting go a prefix: the oldest copy still alive starts at `slot`. The pages the
   * prefix held go back to the host at once (one madvise per fsync), so the arena's resident
   * part follows what is kept (bounded by the process's kept-data budget), not the whole ring
   * a steady flow walks through.
   */
  advance(slot: ArenaSlot): void {
    if (this.live <= 0) return;
    this.head = slot;
    const mem = this.mem;
    if (mem === null) return;
    // Everything outside what is alive is free (whole pages only go back: a page shared with
    // a copy alive stays).
    if (this.tail > slot) {
      // Alive is [slot, tail).
      if (slot > 0) this.memory.release(mem, 0, slot, true);
      if (this.touched > this.tail) this.memory.release(mem, this.tail, this.touched - this.tail, true);
    } else if (slot > this.tail) {
      // Wrapped: alive is [slot, end) and [0, tail).
      this.memory.release(mem, this.tail, slot - this.tail, true);
    }
  }

  /** Nothing is alive: start again at 0. */
  clear(): void {
    this.live = 0;
    this.head = 0;
    this.tail = 0;
  }

  /** After an fsync let every copy go: the pages written go back (the device is busy, so the
   * malloc arenas are left alone), as advance() does for a prefix. */
  emptied(): void {
    if (this.live > 0 || this.mem === null || this.touched === 0) return;
    // Nothing is alive: the whole arena may go (the page `touched` ends in included).
    this.memory.release(this.mem, 0, this.size, true);
    this.touched = 0;
  }

  /** Gives the pages written so far back to the host; only while nothing is alive. */
  releaseMemory(): void {
    if (this.live > 0 || this.mem === null || this.touched === 0) return;
    this.memory.release(this.mem, 0, this.touched);
    this.touched = 0;
  }
}
