// xen-hotplug.log style output: Xen's own block scripts send their stderr there, one line per
// decision. Never secrets (there are none in this role: it holds no tokens).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export class HotplugLog {
  private fd: number | undefined;

  /** `syslog`: the logger command (xen-hotplug-common.sh's log() runs logger too), or none. */
  constructor(file: string, private readonly tag: string, private readonly syslog = 'none') {
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      this.fd = fs.openSync(file, 'a', 0o644);
    } catch {
      this.fd = undefined; // a read-only /var/log must not stop a guest from starting
    }
  }

  line(msg: string): void {
    const text = `${new Date().toISOString()} block-afsfile[${process.pid}] ${this.tag}: ${msg}\n`;
    if (this.fd !== undefined) {
      try {
        fs.writeSync(this.fd, text);
      } catch {
        /* logging must never fail the script */
      }
    }
    // libxl shows the script's stderr in its own log (xl -v); keep it one line per decision.
    process.stderr.write(text);
    if (this.syslog !== 'none') {
      const level = /^(error|busy):/.test(msg) ? 'err' : 'notice';
      try {
        const argv = ['-t', 'block-afsfile', '-p', `daemon.${level}`, '--', `${this.tag}: ${msg}`];
        const child = spawn(this.syslog, argv, { stdio: 'ignore' });
        child.on('error', () => undefined); // no logger: the hotplug log has the line
        child.unref();
      } catch {
        /* logging must never fail the script */
      }
    }
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
