// The supervisor's per-domain identities (DESIGN "Identities and openers"): which identity a
// domain's disks are served with, and one opener process per configured identity.
//
// A domain's identity is chosen from its name when its disk is attached and kept for that
// device's life. A reload (SIGHUP) starts openers of new identities, gives changed ones their
// new settings (they refresh at once), and retires removed ones: their running devices keep
// being served, and renewed, until they detach; the opener then stops. Attaches from then on
// follow the new bindings.
import { HOST_IDENTITY, type IdentitySpec, identityFor } from '../cli/identity-config';
import { type RenewStatus, identityStatusName, readRenewStatus } from '../renew/status';
import type { OpenerConfig } from './opener-link';
import { OpenerHandle } from './opener-handle';
import { stderrLine } from './log';

/** renew's settings that every identity shares unless its line says otherwise (cell, lifetime, margin,
 * retry-cap). */
export interface IdentityDefaults extends Omit<OpenerConfig, 'label' | 'keytab' | 'principal'> {
  readonly pagWrapper: string;
}

export interface IdentitySettings {
  readonly specs: readonly IdentitySpec[];
  /** Domains no line binds: the host identity, or refused. */
  readonly fallback: 'host' | 'required';
  readonly defaults: IdentityDefaults;
}

export type Binding = { readonly label: string } | { readonly refused: string };

interface Opener {
  readonly handle: OpenerHandle;
  spec: IdentitySpec;
  /** Removed from the config: stops once its last device is gone. */
  retiring: boolean;
}

export class Identities {
  private readonly openers = new Map<string, Opener>();
  private settings: IdentitySettings;

  constructor(
    settings: IdentitySettings,
    private readonly o: { env: NodeJS.ProcessEnv; runDir: string; spareArgs: readonly string[]; onChange: () => void;
      /** How many devices (with or without a process) use this identity now. */
      inUse: (label: string) => number },
  ) {
    this.settings = settings;
  }

  /** Starts the openers of the configured identities (with the worker, never in a hotplug wait). */
  begin(): void {
    this.sync();
  }

  reconfigure(s: IdentitySettings): string[] {
    this.settings = s;
    return this.sync();
  }

  /** The identity a domain's new disk is served with. */
  bind(domainName: string | undefined): Binding {
    const spec = domainName === undefined ? undefined : identityFor(this.settings.specs, domainName);
    if (spec) return { label: spec.label };
    if (this.settings.fallback === 'host') return { label: HOST_IDENTITY };
    const name = domainName ?? '(no name in XenStore)';
    return {
      refused: `identity-required: domain ${name} is bound to no identity and identity-default is required ` +
        `(bind it in afsfile.conf: identity.LABEL = keytab=FILE domains=${domainName ?? 'NAME'})`,
    };
  }

  /** The opener serving `label` (undefined: the host identity, or a label no longer known). */
  opener(label: string): OpenerHandle | undefined {
    return this.openers.get(label)?.handle;
  }

  /** A device of `label` is gone: a retiring identity stops with its last one. */
  released(label: string): void {
    const op = this.openers.get(label);
    if (!op || !op.retiring || this.o.inUse(label) > 0) return;
    stderrLine(`identity ${label}: its last device is gone; stopping its process (it was removed from the config)`);
    this.openers.delete(label);
    void op.handle.stop().then(() => this.o.onChange());
  }

  /** The principal of an identity, for the worker's log only (never for guests' keys). */
  principal(label: string): string | undefined {
    const op = this.openers.get(label);
    if (!op) return undefined;
    const r = readRenewStatus(this.o.runDir, identityStatusName(label));
    return op.spec.principal ?? (r.kind === 'ok' ? r.status.principal ?? undefined : undefined) ??
      `the first of ${op.spec.keytab}`;
  }

  status(): Array<Record<string, unknown>> {
    return [...this.openers.values()].map((op) => ({
      label: op.spec.label, domains: op.spec.domains, pid: op.handle.pid, retiring: op.retiring || undefined,
      problem: op.handle.problem,
    }));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.openers.values()].map((op) => op.handle.stop()));
  }

  private configOf(spec: IdentitySpec): OpenerConfig {
    const d = this.settings.defaults;
    return {
      label: spec.label, keytab: spec.keytab, principal: spec.principal, cells: spec.cells ?? d.cells,
      lifetimeS: spec.lifetimeS ?? d.lifetimeS, marginS: spec.marginS ?? d.marginS,
      retryCapS: spec.retryCapS ?? d.retryCapS, aklog: d.aklog, afsClient: d.afsClient,
    };
  }

  /** Brings the openers in line with the settings; says what changed. */
  private sync(): string[] {
    const said: string[] = [];
    const wanted = new Map(this.settings.specs.map((s) => [s.label, s]));
    for (const [label, spec] of wanted) {
      const op = this.openers.get(label);
      if (!op) {
        const handle = new OpenerHandle(label, this.configOf(spec), {
          env: this.o.env, runDir: this.o.runDir, spareArgs: this.o.spareArgs,
          pagWrapper: this.settings.defaults.pagWrapper, onChange: this.o.onChange,
        });
        this.openers.set(label, { handle, spec, retiring: false });
        handle.begin();
        said.push(`identity ${label} added (domains ${spec.domains.join(', ')})`);
        continue;
      }
      const was = JSON.stringify(this.configOf(op.spec));
      const retiring = op.retiring;
      op.spec = spec;
      op.retiring = false;
      if (JSON.stringify(this.configOf(spec)) !== was) {
        op.handle.configure(this.configOf(spec));
        said.push(`identity ${label} changed: renewing with its new settings now`);
      } else if (retiring) {
        said.push(`identity ${label} is configured again`);
      }
    }
    for (const [label, op] of this.openers) {
      if (wanted.has(label) || op.retiring) continue;
      op.retiring = true;
      const n = this.o.inUse(label);
      const what = n ? `its ${n} running device(s) keep it until they detach` : 'stopping it';
      said.push(`identity ${label} removed: ${what}`);
      this.released(label);
    }
    return said;
  }
}

export type { RenewStatus };
