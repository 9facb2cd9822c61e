// Readiness for systemd (sd_notify(3)): `systemctl start afsfile` returns once the worker
// watches XenStore. The message is a datagram on the AF_UNIX socket in NOTIFY_SOCKET; Node
// cannot send one (net is stream-only, dgram is UDP only), so systemd-notify(1) sends it. It
// is a separate process and the worker is renew's child, not the unit's main pid: the unit
// sets NotifyAccess=all. systemd-notify follows its message with BARRIER=1 (systemd >= 246)
// and waits until systemd has read it, so the sender's exit cannot race the message.
import { spawn } from 'node:child_process';

export function notifyReady(env: NodeJS.ProcessEnv, status: string, log: (line: string) => void): void {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return;
  const child = spawn('systemd-notify', ['--ready', `--status=${status}`], {
    env: { NOTIFY_SOCKET: socket, PATH: env.PATH ?? '/usr/bin:/bin' },
    stdio: 'ignore',
  });
  child.on('error', (e) => log(`cannot tell systemd the worker is ready (systemd-notify: ${e.message}); systemctl start waits until its timeout`));
  child.on('exit', (code) => { if (code) log(`systemd-notify --ready exited ${String(code)}`); });
}
