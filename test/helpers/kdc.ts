// A real MIT KDC for tests (Debian krb5-kdc, krb5-admin-server, krb5-user), private to one test
// file: its own KRB5_CONFIG and KRB5_KDC_PROFILE in a temp dir, realm TEST.LOCAL on a free
// loopback port, principals with short lifetimes so expiry and renewal happen in seconds.
// clockskew = 1: with the default 5 minutes, an expired ticket would still be accepted.
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { tempDir } from './exe';

export const REALM = 'TEST.LOCAL';

export function haveKdcTools(): boolean {
  return ['/usr/sbin/krb5kdc', '/usr/sbin/kdb5_util', '/usr/sbin/kadmin.local', '/usr/bin/kinit'].every((p) =>
    fs.existsSync(p),
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`KDC did not listen on ${port} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export class TestKdc {
  private proc: ChildProcess | undefined;
  private constructor(readonly dir: string, readonly port: number, private readonly cleanupDir: () => void) {}

  /** Environment for every Kerberos tool of the test (and for renew): the private config. */
  get env(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      KRB5_CONFIG: path.join(this.dir, 'krb5.conf'),
      KRB5_KDC_PROFILE: path.join(this.dir, 'kdc.conf'),
      LC_ALL: 'C',
    };
  }

  get keytab(): string {
    return path.join(this.dir, 'test.keytab');
  }

  /** Creates the realm and `host/renew@TEST.LOCAL` in test.keytab; does not start the KDC. */
  static async create(): Promise<TestKdc> {
    const { dir, cleanup } = tempDir('afsfile-kdc-');
    const port = await freePort();
    const kdc = new TestKdc(dir, port, cleanup);
    try {
      kdc.init();
    } catch (err) {
      cleanup();
      throw err;
    }
    return kdc;
  }

  private init(): void {
    const { dir, port } = this;
    fs.writeFileSync(path.join(dir, 'krb5.conf'), [
      '[libdefaults]',
      `  default_realm = ${REALM}`,
      '  dns_lookup_kdc = false',
      '  dns_lookup_realm = false',
      '  rdns = false',
      '  clockskew = 1',
      // TCP only: a stopped KDC is then "connection refused" at once, not a UDP timeout.
      '  udp_preference_limit = 1',
      '  kdc_timeout = 1000',
      '  max_retries = 1',
      '[realms]',
      `  ${REALM} = {`,
      `    kdc = 127.0.0.1:${port}`,
      '  }',
      '',
    ].join('\n'));
    fs.writeFileSync(path.join(dir, 'kdc.conf'), [
      '[kdcdefaults]',
      `  kdc_ports = ${port}`,
      `  kdc_tcp_listen = 127.0.0.1:${port}`,
      `  kdc_listen = 127.0.0.1:${port}`,
      '[realms]',
      `  ${REALM} = {`,
      `    database_name = ${path.join(dir, 'principal')}`,
      `    key_stash_file = ${path.join(dir, 'stash')}`,
      `    acl_file = ${path.join(dir, 'kadm5.acl')}`,
      '    max_life = 1m',
      '    max_renewable_life = 5m',
      '  }',
      '[logging]',
      `  kdc = FILE:${path.join(dir, 'kdc.log')}`,
      '',
    ].join('\n'));
    fs.writeFileSync(path.join(dir, 'kadm5.acl'), '');
    execFileSync('kdb5_util', ['create', '-s', '-r', REALM, '-P', 'master-password-for-tests', '-W'], {
      env: this.env,
      stdio: 'pipe',
    });
    this.addPrincipal('host/renew', this.keytab);
  }

  kadmin(query: string): string {
    return execFileSync('kadmin.local', ['-r', REALM, '-q', query], {
      env: this.env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** A principal with a random key, 1 min max life, 5 min renewable, added to `keytab`. */
  addPrincipal(name: string, keytab: string): void {
    this.kadmin(`addprinc -randkey -maxlife 1m -maxrenewlife 5m ${name}`);
    this.kadmin(`ktadd -k ${keytab} ${name}`);
  }

  async start(): Promise<void> {
    if (this.proc) return;
    // -n: stay in the foreground, so the test owns the process and can stop it.
    this.proc = spawn('krb5kdc', ['-n', '-r', REALM], { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    this.proc.stderr!.on('data', (d) => (err += d));
    this.proc.on('exit', () => { this.proc = undefined; });
    try {
      await waitForPort(this.port, 10_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${err}`);
    }
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
    this.proc = undefined;
  }

  async destroy(): Promise<void> {
    await this.stop();
    this.cleanupDir();
  }
}
