// Reads and checks the transport parameters a frontend publishes (facts §2.4) before any of them
// is used: every value comes from the guest, so each one is parsed strictly and a bad one gives a
// message naming the key, the value and what was expected.
import { abiForProtocol } from '../blkif/abi';
import type { XenStoreOps } from '../xen/xenstore';

export interface FrontendRing {
  readonly ringRefs: readonly number[];
  readonly eventChannel: number;
}

export interface FrontendParams {
  readonly protocol: string | undefined;
  readonly ringPageOrder: number;
  readonly queues: readonly FrontendRing[];
}

export class FrontendParamError extends Error {}

const U32 = /^\s*\d{1,10}\s*$/;

function show(v: string): string {
  return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
}

function u32(key: string, v: string | undefined, required: boolean): number | undefined {
  if (v === undefined) {
    if (required) throw new FrontendParamError(`frontend ${key} is missing`);
    return undefined;
  }
  if (!U32.test(v) || Number(v) > 0xffffffff) throw new FrontendParamError(`frontend ${key}=${show(v)} is not a number`);
  return Number(v);
}

export async function readFrontendParams(
  xs: XenStoreOps, frontend: string, limits: { maxRingPageOrder: number; maxQueues: number },
): Promise<FrontendParams> {
  const get = (k: string): Promise<string | undefined> => xs.tryRead(`${frontend}/${k}`);
  const protocol = await get('protocol');
  try {
    abiForProtocol(protocol);
  } catch (e) {
    throw new FrontendParamError(`frontend protocol: ${(e as Error).message}`);
  }
  const nq = u32('multi-queue-num-queues', await get('multi-queue-num-queues'), false) ?? 1;
  if (nq < 1 || nq > limits.maxQueues) {
    throw new FrontendParamError(`frontend multi-queue-num-queues=${nq} is outside 1..${limits.maxQueues} (multi-queue-max-queues)`);
  }
  const order = u32('ring-page-order', await get('ring-page-order'), false);
  if (order !== undefined && order > limits.maxRingPageOrder) {
    throw new FrontendParamError(`frontend ring-page-order=${order} exceeds max-ring-page-order=${limits.maxRingPageOrder}`);
  }
  const queues: FrontendRing[] = [];
  for (let q = 0; q < nq; q++) {
    const dir = nq > 1 ? `queue-${q}/` : '';
    const ringRefs: number[] = [];
    if (order === undefined) {
      ringRefs.push(u32(`${dir}ring-ref`, await get(`${dir}ring-ref`), true)!);
    } else {
      for (let i = 0; i < 1 << order; i++) ringRefs.push(u32(`${dir}ring-ref${i}`, await get(`${dir}ring-ref${i}`), true)!);
    }
    const eventChannel = u32(`${dir}event-channel`, await get(`${dir}event-channel`), true)!;
    queues.push({ ringRefs, eventChannel });
  }
  return { protocol, ringPageOrder: order ?? 0, queues };
}
