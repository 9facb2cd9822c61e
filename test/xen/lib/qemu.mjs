// Start QEMU with Xen, dom0's kernel and initramfs, and hand back the serial
// console line by line. QEMU gets no network (-nic none); its stdin is the
// serial input, used only to send Xen debug keys on a hang.
import { spawn } from 'node:child_process';

const live = new Set(); // QEMU processes not yet exited

// QEMU runs under coreutils `timeout` in its own process group: killing the
// group ends both, and `timeout` ends QEMU by itself should this driver die
// without cleaning up (SIGKILL, OOM), so no QEMU outlives the run's budget.
const killGroup = (child) => {
  try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
};

/** Kill every QEMU this process started (for exit and signal handlers). */
export function killAllQemu() {
  for (const child of live) killGroup(child);
}

export const XEN_ARGS = [
  'console=com1', 'com1=115200,8n1', 'dom0_max_vcpus=2',
  'smap=0', 'smep=0', 'noreboot',
];
/** Memory the machine has beyond dom0's, for the guests (MiB). */
export const GUEST_ROOM_MIB = 1536;
export const DOM0_ARGS = ['console=hvc0', 'earlyprintk=xen'];

/** The QEMU argument vector. dom0Args are extra dom0 kernel arguments. */
export function qemuArgs({ xen, kernel, initrd, dom0Args = [], dom0MemMiB = 1024 }) {
  for (const p of [xen, kernel, initrd]) {
    if (p.includes(',')) throw new Error(`path must not contain a comma: ${p}`);
  }
  // -initrd takes "module args,module args"; a comma inside args is doubled.
  const dom0Cmdline = [...DOM0_ARGS, ...dom0Args].join(' ').replaceAll(',', ',,');
  return [
    '-machine', 'q35', '-accel', 'tcg,thread=multi', '-smp', '2', '-m', String(dom0MemMiB + GUEST_ROOM_MIB),
    '-cpu', 'qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt', // -cpu max crashes dom0 under TCG
    '-display', 'none', '-vga', 'none', '-monitor', 'none', '-parallel', 'none',
    '-serial', 'stdio', '-nic', 'none', '-no-reboot',
    '-kernel', xen, '-append', [...XEN_ARGS, `dom0_mem=${dom0MemMiB}M,max:${dom0MemMiB}M`].join(' '),
    '-initrd', `${kernel} ${dom0Cmdline},${initrd}`,
  ];
}

/**
 * Spawn QEMU, to be killed after limitS seconds at the latest. onLine(text,
 * seconds since start) gets every console line (\r removed).
 * Returns { child, kill(), send(text), now(), exited: Promise<{code, signal}> }.
 */
export function startQemu(args, onLine, { limitS, binary = 'qemu-system-x86_64' }) {
  const t0 = process.hrtime.bigint();
  const now = () => Number(process.hrtime.bigint() - t0) / 1e9;
  const child = spawn('timeout', ['-s', 'KILL', String(Math.ceil(limitS)), binary, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'], detached: true,
  });
  live.add(child);
  child.stdin.on('error', () => { /* QEMU gone */ });

  const splitter = (prefix) => {
    let buf = '';
    return {
      push(chunk) {
        buf += chunk.toString('latin1');
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          onLine(prefix + buf.slice(0, nl).replace(/\r/g, ''), now());
          buf = buf.slice(nl + 1);
        }
      },
      flush() { if (buf) onLine(prefix + buf.replace(/\r/g, ''), now()); buf = ''; },
    };
  };
  const out = splitter('');
  const err = splitter('[qemu stderr] ');
  child.stdout.on('data', (c) => out.push(c));
  child.stderr.on('data', (c) => err.push(c));

  const exited = new Promise((resolve) => {
    child.on('error', (e) => resolve({ code: null, signal: null, error: e }));
    child.on('close', (code, signal) => {
      live.delete(child);
      out.flush(); err.flush();
      resolve({ code, signal });
    });
  });

  const kill = () => { if (live.has(child)) killGroup(child); };
  const send = (text) => { if (child.stdin.writable) child.stdin.write(text); };
  return { child, kill, send, exited, now };
}
