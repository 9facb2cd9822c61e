// The token loop: one attempt (kinit, klist, aklog per cell, tokens) at a time, the next one
// scheduled by schedule.ts, a SIGALRM kick moving it earlier, and every change written to
// status/renew.json. It never throws: every failure is reported, recorded and retried.
import * as fs from 'node:fs';
import createDebug from 'debug';
import { type ClientHost, chooseClient, realClientHost, runAklog, withTicketExpiry } from './aklog';
import { AttemptError, getTicket } from './kerberos';
import { type RenewTiming, kickedAttemptAt, renewDelay, retryDelay } from './schedule';
import { type RenewError, type RenewStatus, writeRenewStatus } from './status';
import { type Priority, prio } from '../util/journal';

const debug = createDebug('afsfile:renew');

export interface RenewerConfig {
  readonly keytab: string;
  readonly principal: string | undefined;
  readonly cells: readonly string[];
  readonly lifetimeS: number;
  readonly timing: RenewTiming;
  readonly aklog: string;
  /** --afs-client: openafs, kafs, or auto (the loaded kernel module, else the aklog's name). */
  readonly afsClient: string;
  readonly ccache: string;
  readonly runDir: string;
  readonly pag: RenewStatus['pag'];
  /** Environment for kinit/aklog (KRB5_CONFIG and PATH matter); KRB5CCNAME is set per tool. */
  readonly env: NodeJS.ProcessEnv;
  readonly random?: () => number;
  /** Which kernel client is loaded (tests pass their own). */
  readonly clientHost?: () => ClientHost;
  /** Where administrators read what went wrong (stderr; the journal under systemd). */
  readonly say?: (line: string, level?: Priority) => void;
  /** The status file under <run-dir>/status (default renew.json; an identity's opener has its own). */
  readonly statusName?: string;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export class Renewer {
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private nextAt: number | undefined;
  private current: Promise<void> | undefined;
  private stopped = false;
  private readonly abort = new AbortController();
  private lastAttemptMs: number | undefined;
  private lastSuccessMs: number | undefined;
  private lastError: RenewError | null = null;
  private principal: string | undefined;
  private ticketExpiresMs: number | undefined;
  private tokens: Record<string, string> | undefined;
  private childPid: number | null = null;
  /** Successful attempts so far: the worker reopens its images when this grows (DESIGN "Durability"). */
  private renewals = 0;
  /** Settings changed during an attempt: run again when it ends. */
  private rerun = false;
  private readonly say: (line: string, level?: Priority) => void;

  constructor(private cfg: RenewerConfig) {
    this.principal = cfg.principal;
    // Under systemd the journal reads the priority prefix (src/util/journal.ts).
    this.say = cfg.say ?? ((l, level = 'info') => process.stderr.write(`${prio(level)}afsfile renew: ${l}\n`));
  }

  /** First attempt at once. */
  start(): void {
    this.scheduleAt(Date.now());
  }

  setChild(pid: number | null): void {
    this.childPid = pid;
    this.writeStatus();
  }

  /**
   * SIGHUP: new settings from the config file. The next attempt uses them and comes at once
   * (as a kick); failures so far no longer count, as they may be what the change fixes.
   */
  reconfigure(c: Pick<RenewerConfig, 'keytab' | 'principal' | 'cells' | 'lifetimeS' | 'timing' | 'aklog' | 'afsClient'>): void {
    this.cfg = { ...this.cfg, ...c };
    this.failures = 0;
    this.writeStatus();
    // An attempt under way used the old settings: another one follows it at once.
    if (this.current) this.rerun = true;
    else this.kick();
  }

  /** SIGALRM: refresh now, coalesced with an attempt already running or due, never past the backoff. */
  kick(): void {
    if (this.stopped) return;
    if (this.current) { debug('kick: an attempt is already running'); return; }
    const now = Date.now();
    const at = kickedAttemptAt(now, this.nextAt ?? now, this.lastAttemptMs, this.failures);
    debug('kick: next attempt in %d ms (was %d ms)', at - now, (this.nextAt ?? now) - now);
    if (at !== this.nextAt) this.scheduleAt(at);
  }

  /** Stops the loop (the child exited), cancels a running kinit/aklog, drops the cache. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.nextAt = undefined;
    this.abort.abort();
    await this.current;
    for (const f of [this.cfg.ccache, `${this.cfg.ccache}.new`]) fs.rmSync(f, { force: true });
    this.writeStatus('stopped');
  }

  private scheduleAt(at: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.nextAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.current = this.attempt().finally(() => this.attemptEnded());
    }, Math.max(0, at - Date.now()));
    this.writeStatus();
  }

  private attemptEnded(): void {
    this.current = undefined;
    if (!this.rerun) return;
    this.rerun = false;
    this.scheduleAt(Date.now());
  }

  private async attempt(): Promise<void> {
    const started = Date.now();
    this.lastAttemptMs = started;
    this.nextAt = undefined;
    const signal = this.abort.signal;
    try {
      const ticket = await getTicket({ keytab: this.cfg.keytab, principal: this.cfg.principal, lifetimeS: this.cfg.lifetimeS, ccache: this.cfg.ccache, env: this.cfg.env, signal });
      this.principal = ticket.principal;
      this.ticketExpiresMs = ticket.expiresMs;
      if (this.stopped) return;
      const client = chooseClient(this.cfg.afsClient, this.cfg.aklog, (this.cfg.clientHost ?? realClientHost)());
      const tokens = await runAklog(this.cfg.aklog, this.cfg.cells, client, this.cfg.ccache, this.cfg.env, signal);
      // A kAFS key made by aklog-kafs expires with the ticket it was made from (keyctl shows no
      // expiry): record that, so that the worker can tell an expired key (src/worker/token-gate.ts).
      this.tokens = withTicketExpiry(tokens, ticket.expiresMs);
      if (this.stopped) return;
      // kAFS binds the key to an open file: the worker reopens its images when it sees this grow.
      this.renewals++;
      const recovered = this.failures > 0 || this.lastSuccessMs === undefined;
      this.failures = 0;
      this.lastSuccessMs = Date.now();
      const delay = renewDelay(Date.now(), ticket.expiresMs, this.cfg.timing);
      const until = ticket.expiresMs === undefined ? 'an unknown time (klist output not understood)' : iso(ticket.expiresMs);
      const msg = `tickets for ${ticket.principal} valid until ${until}; tokens set; next renewal in ${Math.round(delay / 1000)} s`;
      if (recovered) this.say(msg); else debug(msg);
      this.scheduleAt(Date.now() + delay);
    } catch (e) {
      if (this.stopped) return;
      const err = e instanceof AttemptError ? e : new AttemptError(`unexpected: ${(e as Error).message}`, 'transient');
      this.failures++;
      const permanent = err.kind === 'permanent';
      this.lastError = { time: new Date(started).toISOString(), message: err.message, permanent };
      const delay = retryDelay(this.failures, permanent, this.cfg.timing, this.cfg.random ?? Math.random);
      const secs = Math.max(1, Math.round(delay / 1000));
      this.say(permanent
        ? `ERROR: ${err.message} (needs an administrator; retrying in ${secs} s)`
        : `${err.message} (attempt ${this.failures}; retrying in ${secs} s)`, permanent ? 'err' : 'warning');
      this.scheduleAt(Date.now() + delay);
    }
  }

  private writeStatus(state: RenewStatus['state'] = 'running'): void {
    try {
      writeRenewStatus(this.cfg.runDir, {
        managed: true,
        state,
        pag: this.cfg.pag,
        principal: this.principal ?? null,
        cells: this.cfg.cells,
        ticketExpires: iso(this.ticketExpiresMs),
        tokenExpires: this.tokens ?? null,
        renewals: this.renewals,
        lastAttempt: iso(this.lastAttemptMs),
        lastSuccess: iso(this.lastSuccessMs),
        lastError: this.lastError,
        failures: this.failures,
        nextAttempt: iso(this.nextAt),
        childPid: this.childPid,
      }, this.cfg.statusName);
    } catch (e) {
      debug('cannot write status: %s', (e as Error).message);
    }
  }
}
