// Virtual disk names as libxl numbers them (xvda = 51712, ...): the toolstack writes them and
// `afsfile detach` accepts them.

/** libxl__device_disk_dev_number for the xvd and numeric forms. */
export function vdevToDevid(vdev: string): number {
  const m = /^xvd([a-z]+)(\d*)$/.exec(vdev);
  if (m) {
    let disk = -1;
    for (const ch of m[1]!) disk = (disk + 1) * 26 + (ch.charCodeAt(0) - 97);
    const part = m[2] ? Number(m[2]) : 0;
    return disk <= 15 && part <= 15 ? (202 << 8) | (disk << 4) | part : (1 << 28) | (disk << 8) | part;
  }
  const d = /^d(\d+)p(\d+)$/.exec(vdev);
  if (d) {
    const disk = Number(d[1]);
    const part = Number(d[2]);
    return disk <= 15 && part <= 15 ? (202 << 8) | (disk << 4) | part : (1 << 28) | (disk << 8) | part;
  }
  if (/^\d+$/.test(vdev)) return Number(vdev);
  throw new Error(`vdev ${vdev}: not a virtual disk name libxl understands (xvda, d0p1, or a number)`);
}

function diskLetters(disk: number): string {
  let s = '';
  for (let n = disk + 1; n > 0; n = Math.floor((n - 1) / 26)) s = String.fromCharCode(97 + ((n - 1) % 26)) + s;
  return s;
}

/** The xvd name of a devid (the inverse of vdevToDevid for the xvd forms), else the number. */
export function devidToVdev(devid: number): string {
  if ((devid & ~0xffff) === 0 && devid >> 8 === 202) {
    const disk = (devid >> 4) & 15;
    const part = devid & 15;
    return `xvd${diskLetters(disk)}${part ? part : ''}`;
  }
  if (devid >>> 28 === 1) {
    const disk = (devid >> 8) & 0xfffff;
    const part = devid & 0xff;
    return `xvd${diskLetters(disk)}${part ? part : ''}`;
  }
  return String(devid);
}
