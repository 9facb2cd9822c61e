// Whether Linux's xen-blkback is loaded in this dom0. It registers the xenbus backend driver
// "vbd" (drivers/block/xen-blkback/xenbus.c, xen_blkif_xenbus_init) and so probes every
// backend/vbd device, whatever its script: it maps the ring and binds the event channel as
// soon as the frontend is Initialised (connect_ring), so a second backend on the same device
// cannot. backend/vbd3 (libxl's backendtype=tap, Xen >= 4.19) it never looks at.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const BLKBACK_MARKERS = ['/sys/module/xen_blkback', '/sys/bus/xen-backend/drivers/vbd'] as const;

/** The markers present under `root` ('/' normally; a test's directory otherwise). */
export function kernelBlkbackMarkers(root: string): string[] {
  return BLKBACK_MARKERS.filter((m) => fs.existsSync(path.join(root, m)));
}

/** What a disk under backend/vbd gets while kernel blkback is loaded (xl shows it as hotplug-error). */
export const BLKBACK_HOLDS_VBD =
  "kernel xen-blkback is loaded and serves every backend/vbd device, this one too; on Xen >= 4.19 give the disk "
  + 'backendtype=tap,script=block-afsfile (backend/vbd3, which blkback never looks at), else unload xen-blkback '
  + '(afsfile check says which applies)';
