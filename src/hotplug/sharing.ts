// The sharing check block-common.sh's check_sharing makes, over every backend kind in this
// domain: a file given rw to one guest is given to no other, and a file another guest has rw is
// given to nobody. It sees loop (phy), qdisk and tap users of the same file too. The supervisor
// keeps the authoritative table (by device and inode, inside the PAG); this is the early check
// that lets xl print `busy` before the worker is even asked.
//
// Paths are compared as strings (normalized), never stat'ed: the script runs outside the PAG,
// and a stat of another guest's image on a file server that is down blocks past libxl's 40 s.
// Two names of one file are caught by the supervisor, whose refusal also reaches xl as busy.
import * as path from 'node:path';
import { migrationSources } from '../xen/migration';
import type { XenStoreOps } from '../xen/xenstore';
import { imagePath } from './params';

export interface Conflict {
  backendPath: string;
  domid: string;
  mode: string;
}

const KINDS = ['vbd', 'vbd3', 'qdisk'];

function sameFile(a: string, b: string): boolean {
  return path.normalize(a) === path.normalize(b);
}

async function children(xs: XenStoreOps, p: string): Promise<string[]> {
  try {
    return await xs.directory(p);
  } catch {
    return [];
  }
}

/** Other devices using `image` in a way that conflicts with `mode`. */
export async function findConflicts(xs: XenStoreOps, backendBase: string, self: string, image: string, mode: 'r' | 'w'): Promise<Conflict[]> {
  const found: Conflict[] = [];
  // A migration to this host: the destination shares its source's images until its guest
  // connects (the worker then takes the image lock, after the source let go).
  const selfDomid = Number(self.split('/').at(-2));
  let sources: Set<number> | undefined;
  const isSource = async (domid: string): Promise<boolean> => {
    sources ??= await migrationSources(xs, selfDomid, await xs.tryRead(`/local/domain/${selfDomid}/name`));
    return sources.has(Number(domid));
  };
  for (const kind of KINDS) {
    for (const domid of await children(xs, `${backendBase}/${kind}`)) {
      for (const devid of await children(xs, `${backendBase}/${kind}/${domid}`)) {
        const be = `${backendBase}/${kind}/${domid}/${devid}`;
        if (be === self) continue;
        const params = await xs.tryRead(`${be}/params`);
        if (!params) continue;
        const other = imagePath(params);
        if (!sameFile(other, image)) continue;
        const otherMode = (await xs.tryRead(`${be}/mode`)) ?? 'w';
        const state = await xs.tryRead(`${be}/state`);
        if (state === '6' || state === '5') continue; // going away
        // Only a device that holds the file counts, as check_sharing looks only at devices that
        // got a physical-device: another afsfile device waiting for (or refused by) the worker
        // does not block this one — the supervisor decides between concurrent adds.
        const holds = (await xs.tryRead(`${be}/hotplug-status`)) === 'connected' ||
          (await xs.tryRead(`${be}/afsfile-status`)) === 'opened' ||
          (await xs.tryRead(`${be}/physical-device`)) !== undefined;
        if (!holds) continue;
        if (mode !== 'w' && otherMode === 'r') continue;
        if (await isSource(domid)) continue;
        found.push({ backendPath: be, domid, mode: otherMode });
      }
    }
  }
  return found;
}
