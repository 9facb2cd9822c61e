// SIGHUP's reach into running device processes: the supervisor sends the reloaded timings over
// the IPC channel it keeps with each child (a child's options come as flags, which its own
// re-read of the config file would not override).
export interface DeviceRetune {
  readonly holdTimeoutS: number;
  readonly fsyncIntervalS: number;
}

export interface RetuneMessage {
  readonly retune: DeviceRetune;
}

export function retuneMessage(t: DeviceRetune): RetuneMessage {
  return { retune: { holdTimeoutS: t.holdTimeoutS, fsyncIntervalS: t.fsyncIntervalS } };
}

/** The timings in an IPC message, or undefined for anything else. */
export function parseRetune(m: unknown): DeviceRetune | undefined {
  if (typeof m !== 'object' || m === null || !('retune' in m)) return undefined;
  const t = (m as { retune: unknown }).retune;
  if (typeof t !== 'object' || t === null) return undefined;
  const { holdTimeoutS, fsyncIntervalS } = t as Record<string, unknown>;
  const ok = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  return ok(holdTimeoutS) && ok(fsyncIntervalS) ? { holdTimeoutS, fsyncIntervalS } : undefined;
}
