// The native addon's surface, as seen from TypeScript. Errors thrown by any function carry
// `errno` (a number) and `syscall`; wrap calls in withErrnoCode to get `code` as well.

export interface NativeAddon {
  readonly abiVersion: number;
  /** fallocate(2); mode bits from <linux/falloc.h>. */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /** Whether the file system of fd can punch holes; changes nothing in the file. */
  canPunchHole(fd: number): boolean;
  /** A MAP_SHARED mapping of the file as an ArrayBuffer, unmapped when collected. */
  mapFile(fd: number, length: number, offset: number, writable: boolean): ArrayBuffer;
  /** Zeroed memory at an aligned address (O_DIRECT buffers), freed when collected. */
  allocAligned(length: number, alignment: number): ArrayBuffer;
}

/** <linux/falloc.h> */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
