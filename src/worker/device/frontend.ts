// Reading a frontend's transport parameters (blkif.h "Multi-page rings",
// "Multi-queue"). Everything here is written by the guest: each value is parsed strictly and
// checked against what we advertised; anything wrong becomes a FrontendError with a message
// for afsfile-error, never an exception from deeper down.
import { abiForProtocol, type Abi } from '../../blkif/abi';
import type { XenStoreOps } from '../../xen/xenstore';
import type { ClaimLimits } from './claim';
import { parseU32 } from './params';

export class FrontendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrontendError';
  }
}

export interface QueueParams {
  /** Grant references of the ring pages, in order (1 << order of them). */
  readonly grefs: number[];
  /** The frontend's unbound event channel port. */
  readonly eventChannel: number;
}

export interface FrontendParams {
  readonly abi: Abi;
  readonly ringPageOrder: number;
  readonly queues: QueueParams[];
  /** feature-persistent: the frontend reuses its grants if the backend offers it too (blkif.h). */
  readonly persistent: boolean;
}

export async function readFrontend(xs: XenStoreOps, fe: string, limits: ClaimLimits): Promise<FrontendParams> {
  const protocol = await xs.tryRead(`${fe}/protocol`);
  let abi: Abi;
  try {
    abi = abiForProtocol(protocol === undefined ? undefined : protocol.trim());
  } catch (err) {
    throw new FrontendError((err as Error).message);
  }
  const nqText = await xs.tryRead(`${fe}/multi-queue-num-queues`);
  let nq = 1;
  if (nqText !== undefined) {
    const n = parseU32(nqText);
    if (n === undefined) throw new FrontendError(`multi-queue-num-queues is not a number: ${show(nqText)}`);
    if (n === 0 || n > limits.maxQueues) throw new FrontendError(`guest requested ${n} queues, the maximum is ${limits.maxQueues}`);
    nq = n;
  }
  // ring-page-order is per device (top level), even with several queues.
  const orderText = await xs.tryRead(`${fe}/ring-page-order`);
  let order = 0;
  let multiPage = false;
  if (orderText !== undefined) {
    const o = parseU32(orderText);
    if (o === undefined) throw new FrontendError(`ring-page-order is not a number: ${show(orderText)}`);
    if (o > limits.maxRingPageOrder) throw new FrontendError(`ring-page-order ${o} exceeds max-ring-page-order ${limits.maxRingPageOrder}`);
    order = o;
    multiPage = true;
  }
  const queues: QueueParams[] = [];
  for (let q = 0; q < nq; q++) {
    const dir = nq === 1 ? fe : `${fe}/queue-${q}`;
    queues.push(await readQueue(xs, dir, order, multiPage));
  }
  // As Linux blkback's connect_ring: anything but a number other than 0 means no.
  const persistent = (parseU32((await xs.tryRead(`${fe}/feature-persistent`)) ?? '0') ?? 0) !== 0;
  return { abi, ringPageOrder: order, queues, persistent };
}

async function readQueue(xs: XenStoreOps, dir: string, order: number, multiPage: boolean): Promise<QueueParams> {
  const grefs: number[] = [];
  const pages = 1 << order;
  if (!multiPage) {
    grefs.push(await readNumber(xs, `${dir}/ring-ref`));
  } else {
    for (let i = 0; i < pages; i++) grefs.push(await readNumber(xs, `${dir}/ring-ref${i}`));
  }
  const eventChannel = await readNumber(xs, `${dir}/event-channel`);
  return { grefs, eventChannel };
}

async function readNumber(xs: XenStoreOps, path: string): Promise<number> {
  const text = await xs.tryRead(path);
  if (text === undefined) throw new FrontendError(`${path} is missing`);
  const n = parseU32(text);
  if (n === undefined) throw new FrontendError(`${path} is not a number: ${show(text)}`);
  return n;
}

function show(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}
