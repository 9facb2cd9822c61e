// Memory for the write data Durability keeps until an fsync covers it: one lazily mapped
// buffer used as a ring, so keeping a write costs no allocation, and (reserve()) the engine
// grant-copies a write's data straight into the place it will be kept in: no copy at all once
// the write completes. A copy per write on the JavaScript heap (an ArrayBuffer each) made V8
// collect garbage for the external memory; a copy from the engine's buffer into the arena, with
// the arena's pages given back at every fsync, was most of a large write's cost on the host
// (memcpy and the page faults of the fresh pages; bench/README.md has the figures).
//
// Slots are taken at the tail in reservation order and reclaimed from the head: one let go out
// of order (a write that failed, the same range written again, a write that completed after a
// later one) is reclaimed when every slot before it is. When the ring has no room, reserve()
// says so and the caller keeps the data elsewhere: nothing kept is ever lost for want of room.
//
// Pages: the arena's pages up to `warm` stay resident while the device is busy, and the ring
// starts again at 0 rather than walk on past `warm` when the start is free: a steady flow of
// writes reuses the same pages instead of faulting fresh ones in (and zeroing them) after every
// fsync, which cost more than all the rest of a large write (bench/README.md). `warm` follows
// what the device needed: the furthest its ring reached in the last two fsync intervals, so under a small
// process budget of kept data (each device fsyncs early) the resident part stays that small.
// Free pages past it go back to the host at each trim() (once per fsync), all of them at
// releaseMemory() (the device is clean and idle).

export interface ArenaMemory {
  /** Zeroed memory of `bytes`, mapped lazily (GrantTable.allocPool on Linux). */
  alloc(bytes: number): Uint8Array;
  /** Gives the whole pages of [offset, offset + length) back to the host; `busy`: while other
   * copies are alive (a cheaper release). */
  release(mem: Uint8Array, offset: number, length: number, busy?: boolean): void;
}

/** A place in the arena: [at, at + length), its bytes `view`. */
export interface ArenaSlot {
  readonly at: number;
  readonly length: number;
  readonly view: Uint8Array;
  /** Let go; reclaimed once every slot before it is. */
  dead: boolean;
}

export class KeepArena {
  private mem: Uint8Array | null = null;
  /** Slots not yet reclaimed (alive or dead behind an alive one), in reservation order, from `first`. */
  private slots: ArenaSlot[] = [];
  private first = 0;
  /** Start of the oldest slot not reclaimed; the next slot goes at tail. */
  private head = 0;
  private tail = 0;
  /** While wrapped: where the slots before the wrap end. */
  private wrapEnd = 0;
  /** Highest byte reserved since the pages past `warm` were last given back. */
  private touched = 0;
  /** Bytes at the start that stay resident while busy (see the top of the file). */
  private warm = 0;
  /** The furthest tail since the last trim(), and in the interval before it. */
  private peak = 0;
  private lastPeak = 0;

  /** keepWarm false: every free page goes back at trim() (as before the warm part existed). */
  constructor(readonly size: number, private readonly memory: ArenaMemory, private readonly keepWarm = true) {}

  /** Bytes at the start of the arena kept resident while busy. */
  get warmBytes(): number {
    return this.warm;
  }

  /** The memory slots live in (to grant-copy into), allocated on first use. */
  memoryOf(): Uint8Array {
    this.mem ??= this.memory.alloc(this.size);
    return this.mem;
  }

  /** `n` bytes at the tail, or null when there is no room now. */
  reserve(n: number): ArenaSlot | null {
    if (n <= 0 || n > this.size) return null;
    const at = this.placeFor(n);
    if (at < 0) return null;
    const mem = this.memoryOf();
    const slot: ArenaSlot = { at, length: n, view: mem.subarray(at, at + n), dead: false };
    if (this.first === this.slots.length) this.head = at;
    else if (at < this.tail) this.wrapEnd = this.tail;
    this.slots.push(slot);
    this.tail = at + n;
    if (this.tail > this.touched) this.touched = this.tail;
    if (this.tail > this.peak) this.peak = this.tail;
    return slot;
  }

  /** A copy of data in the arena, or null when there is no room now. */
  copy(data: Uint8Array): ArenaSlot | null {
    const slot = this.reserve(data.length);
    if (slot) slot.view.set(data);
    return slot;
  }

  /** Where n bytes go, or -1. */
  private placeFor(n: number): number {
    if (this.first === this.slots.length) return 0;
    const head = this.head;
    const tail = this.tail;
    if (tail <= head) return head - tail >= n ? tail : -1; // wrapped: free is [tail, head)
    // Alive is [head, tail): free is [tail, size) and [0, head). Past the warm part, start
    // again at 0 when there is room there; the end is used only when the start is taken.
    // (Not into a small gap at the start: the ring would be full at once, the end unused.)
    if (tail + n <= this.warm) return tail;
    if (head >= n && head >= this.warm / 2) return 0;
    if (tail + n <= this.size) return tail;
    return head >= n ? 0 : -1; // the end stays unused until head wraps too
  }

  /** Lets a slot go. */
  free(slot: ArenaSlot): void {
    if (slot.dead) return;
    slot.dead = true;
    const slots = this.slots;
    while (this.first < slots.length && slots[this.first].dead) this.first++;
    // The newest let go (a write that failed): its room is the tail's again.
    while (slots.length > this.first && slots[slots.length - 1].dead) slots.pop();
    if (this.first === slots.length) {
      // Nothing alive: start again at 0.
      this.slots = [];
      this.first = 0;
      this.head = 0;
      this.tail = 0;
      return;
    }
    this.head = slots[this.first].at;
    const last = slots[slots.length - 1];
    this.tail = last.at + last.length;
    if (this.first > 64 && this.first * 2 > slots.length) {
      this.slots = slots.slice(this.first);
      this.first = 0;
    }
  }

  /** Slots not yet reclaimed. */
  get count(): number {
    return this.slots.length - this.first;
  }

  /** Bytes of the ring between the oldest slot not reclaimed and the newest: what stays resident
   * for the slots alive (holes of slots let go out of order included). */
  span(): number {
    if (this.first === this.slots.length) return 0;
    return this.tail > this.head ? this.tail - this.head : this.wrapEnd - this.head + this.tail;
  }

  /**
   * Gives the free pages past `warm` back to the host (whole pages only: one shared with a
   * slot alive stays). Called once per fsync, so the resident part follows what is kept (bounded
   * by the process's kept-data budget) plus the warm part, not the whole ring a flow walks through.
   */
  trim(): void {
    const warm = this.keepWarm ? Math.max(this.peak, this.lastPeak) : 0;
    this.warm = warm;
    this.lastPeak = this.peak;
    this.peak = this.tail;
    const mem = this.mem;
    if (mem === null) return;
    const release = (from: number, to: number) => {
      from = Math.max(from, warm);
      if (to > from) this.memory.release(mem, from, to - from, true);
    };
    if (this.first === this.slots.length) {
      release(warm, this.touched);
    } else if (this.tail > this.head) {
      release(0, this.head);
      release(this.tail, this.touched);
    } else {
      release(this.tail, this.head);
      return;
    }
    if (this.touched > Math.max(this.tail, warm)) this.touched = Math.max(this.tail, warm);
  }

  /** Gives the pages written so far back to the host; only while nothing is alive. */
  releaseMemory(): void {
    if (this.first !== this.slots.length || this.mem === null || this.touched === 0) return;
    this.memory.release(this.mem, 0, this.touched);
    this.touched = 0;
    this.warm = 0;
    this.peak = 0;
    this.lastPeak = 0;
  }
}
