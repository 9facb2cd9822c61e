// The TypeScript UAPI tables against the real headers: a C probe compiled here with gcc against
// linux-libc-dev's xen/evtchn.h and xen/gntdev.h (and libxen-dev's grant_table.h for GNTCOPY_*
// when installed) prints every size, offset and ioctl number; each must equal ours.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  GNTALLOC_FLAG_WRITABLE, GNTCOPY_dest_gref, GNTCOPY_source_gref, IOCTL, OFFSETOF, SIZEOF, decodeAllocGref, decodeGetOffsetForVaddr,
  decodeMapIndex, encodeAllocGref, encodeBindInterdomain, encodeGetOffsetForVaddr, encodeGrantCopy, encodeMapGrantRef, encodeUnmapGrantRef,
} from '../../src/xen/linux/uapi';
import { withTempDir } from '../helpers/temp';

const HEADERS = '/usr/include/xen';
const haveXenPublic = fs.existsSync(path.join(HEADERS, 'grant_table.h')) && fs.existsSync(path.join(HEADERS, 'xen.h'));

function probeSource(): string {
  const lines: string[] = [];
  const entry = (key: string, expr: string) =>
    lines.push(`  printf("%s\\"${key}\\": %lu", first ? "" : ",\\n", (unsigned long)(${expr})); first = 0;`);
  for (const name of Object.keys(SIZEOF)) entry(`sizeof ${name}`, `sizeof(struct ${name})`);
  for (const key of Object.keys(OFFSETOF)) {
    const [struct, ...field] = key.split('.');
    entry(`offsetof ${key}`, `offsetof(struct ${struct}, ${field.join('.')})`);
  }
  for (const name of Object.keys(IOCTL)) entry(`IOCTL_${name}`, `IOCTL_${name}`);
  if (haveXenPublic) {
    entry('GNTCOPY_source_gref', 'GNTCOPY_source_gref');
    entry('GNTCOPY_dest_gref', 'GNTCOPY_dest_gref');
  }
  entry('GNTALLOC_FLAG_WRITABLE', 'GNTALLOC_FLAG_WRITABLE');
  return `#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
${haveXenPublic ? '#include <xen/xen.h>\n#include <xen/grant_table.h>' : '/* gntdev.h uses these Xen types without defining them */\ntypedef uint32_t grant_ref_t;\ntypedef uint16_t domid_t;'}
#include <xen/evtchn.h>
#include <xen/gntdev.h>
#include <xen/gntalloc.h>
int main(void) {
  int first = 1;
  printf("{");
${lines.join('\n')}
  printf("}\\n");
  return 0;
}
`;
}

let probed: Record<string, number> | undefined;
function probe(): Record<string, number> {
  if (probed) return probed;
  return withTempDir((tmp) => {
    const src = path.join(tmp, 'probe.c');
    const exe = path.join(tmp, 'probe');
    fs.writeFileSync(src, probeSource());
    execFileSync('gcc', ['-Wall', '-Werror', '-o', exe, src], { stdio: 'pipe' });
    probed = JSON.parse(execFileSync(exe, { encoding: 'utf8' })) as Record<string, number>;
    return probed;
  }, 'afsfile-uapi-');
}

test('the UAPI headers are installed (apt install linux-libc-dev)', () => {
  assert.ok(fs.existsSync(path.join(HEADERS, 'evtchn.h')), 'xen/evtchn.h');
  assert.ok(fs.existsSync(path.join(HEADERS, 'gntdev.h')), 'xen/gntdev.h');
});

test('struct sizes equal the headers', () => {
  const c = probe();
  for (const [name, size] of Object.entries(SIZEOF)) assert.is(size, c[`sizeof ${name}`], `sizeof(struct ${name})`);
});

test('field offsets equal the headers (segment: 0/8/16/18/20)', () => {
  const c = probe();
  for (const [key, off] of Object.entries(OFFSETOF)) assert.is(off, c[`offsetof ${key}`], `offsetof ${key}`);
  assert.is(c['offsetof gntdev_grant_copy_segment.len'], 16);
  assert.is(c['offsetof gntdev_grant_copy_segment.flags'], 18);
  assert.is(c['offsetof gntdev_grant_copy_segment.status'], 20);
});

test('ioctl numbers equal the headers', () => {
  const c = probe();
  for (const [name, value] of Object.entries(IOCTL)) assert.is(value, c[`IOCTL_${name}`], `IOCTL_${name}`);
  // Independent of both: the numbers as computed by hand from _IOC() (x86_64).
  assert.is(IOCTL.EVTCHN_BIND_INTERDOMAIN, 0x00084501);
  assert.is(IOCTL.EVTCHN_RESET, 0x00004505);
  assert.is(IOCTL.GNTDEV_MAP_GRANT_REF, 0x00184700);
  assert.is(IOCTL.GNTDEV_GET_OFFSET_FOR_VADDR, 0x00184702);
  assert.is(IOCTL.GNTDEV_GRANT_COPY, 0x00104708);
});

test('every evtchn and gntdev ioctl of the headers is in the table (DMABUF ones are unused)', () => {
  assert.is(GNTALLOC_FLAG_WRITABLE, probe().GNTALLOC_FLAG_WRITABLE);
  const text = ['evtchn.h', 'gntdev.h', 'gntalloc.h']
    .map((h) => fs.readFileSync(path.join(HEADERS, h), 'utf8'))
    .join('\n');
  const names = [...text.matchAll(/#define IOCTL_([A-Z_]+)/g)].map((m) => m[1]).filter((n) => !n.includes('DMABUF'));
  assert.ok(names.length >= 12, names.join(' '));
  for (const n of names) assert.ok(n in IOCTL, `IOCTL_${n} missing from uapi.ts`);
});

test('GNTCOPY flags equal Xen\'s grant_table.h (libxen-dev)', () => {
  assert.is(GNTCOPY_source_gref, 1);
  assert.is(GNTCOPY_dest_gref, 2);
  if (!haveXenPublic) {
    console.log('  (libxen-dev not installed: GNTCOPY_* checked against our own table only)');
    return;
  }
  const c = probe();
  assert.is(GNTCOPY_source_gref, c.GNTCOPY_source_gref);
  assert.is(GNTCOPY_dest_gref, c.GNTCOPY_dest_gref);
});

test('codecs: the bytes of each ioctl argument', () => {
  const bi = new Uint8Array(8);
  encodeBindInterdomain(new DataView(bi.buffer), 0x01020304, 9);
  assert.equal([...bi], [4, 3, 2, 1, 9, 0, 0, 0]);
  const map = encodeMapGrantRef(7, [0x11, 0x22]);
  assert.equal(
    [...map],
    [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0x11, 0, 0, 0, 7, 0, 0, 0, 0x22, 0, 0, 0],
  );
  assert.is(encodeMapGrantRef(7, [1]).length, 24, 'one ref: exactly sizeof, which the kernel copies back');
  new DataView(map.buffer).setBigUint64(8, 0x12345000n, true);
  assert.is(decodeMapIndex(map), 0x12345000n);
  assert.equal([...encodeUnmapGrantRef(0x1000n, 3)], [0, 0x10, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
  const q = encodeGetOffsetForVaddr(0x7f0000001000n);
  assert.equal([...q.subarray(0, 8)], [0, 0x10, 0, 0, 0, 0x7f, 0, 0]);
  new DataView(q.buffer).setBigUint64(8, 0x3000n, true);
  new DataView(q.buffer).setUint32(16, 2, true);
  assert.equal(decodeGetOffsetForVaddr(q), { offset: 0x3000n, count: 2 });
  const gc = new Uint8Array(16).fill(0xee);
  encodeGrantCopy(new DataView(gc.buffer), 5, 0x7f12_3456_7000);
  assert.equal([...gc], [5, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x70, 0x56, 0x34, 0x12, 0x7f, 0, 0]);
  const alloc = encodeAllocGref(3, 1, true);
  assert.is(alloc.length, 24, 'at least sizeof: the kernel writes the whole struct back');
  assert.equal([...alloc.subarray(0, 8)], [3, 0, 1, 0, 1, 0, 0, 0]);
  const alloc3 = encodeAllocGref(0, 3, false);
  assert.is(alloc3.length, 28);
  new DataView(alloc3.buffer).setUint32(16, 100, true);
  new DataView(alloc3.buffer).setUint32(24, 102, true);
  new DataView(alloc3.buffer).setBigUint64(8, 0x2000n, true);
  assert.equal(decodeAllocGref(alloc3, 3), { index: 0x2000n, grefs: [100, 0, 102] });
});

test.run();
