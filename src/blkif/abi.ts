// One interface for the two blkif ABIs (x86_64-abi, x86_32-abi): everything above this module
// reads and writes ring slots through an Abi and never sees a byte offset.
// Layouts: xen.git xen/include/public/io/blkif.h, Linux drivers/block/xen-blkback/common.h;
// test/blkif/abi-c.test.ts checks them against the header compiled for each ABI.
import { PROTOCOL_ARM, PROTOCOL_X86_32, PROTOCOL_X86_64 } from './constants';
import type { BlkifRequest } from './request';
import { X86_32 } from './abi-x86_32';
import { X86_64 } from './abi-x86_64';

/** A response as the frontend reads it back. */
export interface BlkifResponse {
  id: bigint;
  operation: number;
  status: number;
}

export interface Abi {
  /** The `protocol` key value. */
  readonly name: string;
  readonly requestSize: number;
  readonly responseSize: number;
  /** Bytes per ring entry: the size of the request/response union. */
  readonly stride: number;
  /** Copies the request in the slot at slotOffset out of shared memory (read each byte once). */
  readRequest(bytes: Uint8Array, slotOffset: number): BlkifRequest;
  /** Writes id@0, operation@8, status@10 and no other byte of the slot. */
  writeResponse(bytes: Uint8Array, slotOffset: number, id: bigint, operation: number, status: number): void;
  /** Frontend side (simulator): writes a whole request (unused bytes zeroed). */
  writeRequest(bytes: Uint8Array, slotOffset: number, req: BlkifRequest): void;
  /** Frontend side (simulator). */
  readResponse(bytes: Uint8Array, slotOffset: number): BlkifResponse;
}

/** The codec for a frontend's `protocol` key; absent means native (x86_64, as QEMU does). */
export function abiForProtocol(protocol: string | undefined): Abi {
  if (protocol === undefined || protocol === PROTOCOL_X86_64) return X86_64;
  if (protocol === PROTOCOL_X86_32) return X86_32;
  if (protocol === PROTOCOL_ARM) throw new Error(`protocol "${PROTOCOL_ARM}" is not supported by this x86 backend`);
  throw new Error(
    `unknown protocol ${JSON.stringify(protocol.slice(0, 40))} (expected ${PROTOCOL_X86_64} or ${PROTOCOL_X86_32})`,
  );
}

export { X86_32, X86_64 };
