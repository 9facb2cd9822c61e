// What the engine needs from an image (src/image/image.ts implements it; tests may wrap it to
// delay or fail I/O). Callback style: no promise per request on the data path.
export type IoCallback = (err: NodeJS.ErrnoException | null) => void;

export interface BlockFile {
  /** Bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Hole punching works on this file system (probed at open). */
  readonly canDiscard: boolean;
  /**
   * cb may run before read() returns (a page-cache hit served inline by Image), but only with
   * null: errors always come later. The engine relies on neither order.
   */
  read(buf: Uint8Array, offset: number, cb: IoCallback): void;
  /**
   * Optional: reads into several buffers in order from offset (one READV). Never called with
   * foreign (guest-mapped) pages on an O_DIRECT file. Errors only through cb.
   */
  readv?(views: Uint8Array[], offset: number, cb: IoCallback): void;
  write(buf: Uint8Array, offset: number, cb: IoCallback): void;
  fsync(cb: IoCallback): void;
  /**
   * Optional batching (Image over io_uring): what read/write/fsync queue between cork() and
   * uncork() goes to the kernel in one submission at uncork(); callbacks of I/O that completed
   * at once may run inside uncork(), with errors too. Without them every call starts at once.
   */
  cork?(): void;
  uncork?(): void;
  /** Punches a hole (never zero-fills); cb(EOPNOTSUPP) where the file system has none. */
  discard(offset: number, length: number, cb: IoCallback): void;
  /**
   * Opens the same file again and uses the new open file from now on (after a failed fsync:
   * kAFS binds the key to the open file). Optional; I/O in flight finishes on the old one.
   */
  reopen?(cb: IoCallback): void;
}
