// One boot of Xen + dom0 under QEMU: feed the console lines to the marker
// parser, watch for crashes and hangs, and end QEMU when dom0 is done.
import { startQemu } from './qemu.mjs';
import { applyMarker, parseMarker } from './stages.mjs';

const FATAL = [
  [/Kernel panic - not syncing/, 'dom0 kernel panic'],
  [/\(XEN\) Panic on CPU/, 'Xen panic'],
  [/\(XEN\) Hardware Dom0 crashed/, 'dom0 crashed'],
  [/^\[qemu stderr\] .*(error|cannot|failed|Could not)/i, 'QEMU error'],
];

// Xen debug keys sent on a hang, after CTRL-a x3 switches the serial input to
// Xen: r = run queues, d = registers and stacks of every CPU, 0 = dom0's vCPUs.
const DEBUG_KEYS = '\x01\x01\x01rd0';

/**
 * Boot once. stages: fresh stage objects (readStages). log(line, t) gets every
 * console line; say(text) gets what the user should see live.
 * Resolves to the run state: { stages, bootAt, doneAt, fatal, bootHung, unknown }.
 */
export async function bootOnce({ args, stages, timeoutS, bootTimeoutS, log, say, verbose }) {
  const state = { stages, bootAt: null, doneAt: null, doneInfo: null, fatal: null, bootHung: false, unknown: [] };
  const ts = (t) => `[${t.toFixed(1).padStart(6)}]`;
  let endTimer = null;
  let qemu = null;
  const finishSoon = (ms) => { endTimer ??= setTimeout(() => qemu.kill(), ms); };

  const onLine = (line, t) => {
    log(line, t);
    if (verbose) say(`${ts(t)} ${line}`);
    const m = parseMarker(line);
    if (m) {
      applyMarker(state, m, t);
      if (!verbose && m.kind !== 'METRIC') say(`${ts(t)} ${line.trim()}`);
      if (m.kind === 'DONE') finishSoon(1500);
    } else if (!verbose && /^xentest: /.test(line)) {
      say(`${ts(t)} ${line}`);
    }
    for (const [re, what] of FATAL) {
      if (!state.fatal && re.test(line)) {
        state.fatal = `${what}: ${line.trim()}`;
        say(`${ts(t)} FATAL ${state.fatal}`);
        finishSoon(3000); // keep a few more lines of the crash
      }
    }
  };
  qemu = startQemu(args, onLine, { limitS: timeoutS + 30 });

  // Watchdog: the wall clock, dom0's boot, and a stage that overruns the
  // timeout dom0 should have enforced (a hung dom0). On a hang, ask Xen for
  // stacks before killing QEMU.
  const hang = (why) => {
    state.fatal = why;
    say(`${ts(qemu.now())} FATAL ${why}; asking Xen for a register/stack dump`);
    qemu.send(DEBUG_KEYS);
    finishSoon(5000);
  };
  const watchdog = setInterval(() => {
    if (state.fatal || state.doneAt != null) return;
    const t = qemu.now();
    const running = stages.find((s) => s.status === 'running');
    if (t > timeoutS) hang(`wall-clock timeout after ${timeoutS}s`);
    else if (state.bootAt == null && t > bootTimeoutS) {
      state.bootHung = true;
      hang(`dom0 did not reach /init within ${bootTimeoutS}s`);
    } else if (running && t - running.begin > running.timeout + 60) {
      hang(`stage ${running.name} hung (over ${running.timeout + 60}s)`);
    }
  }, 1000);

  const exit = await qemu.exited;
  clearInterval(watchdog);
  if (endTimer) clearTimeout(endTimer);
  if (exit.error) throw new Error(`cannot start QEMU: ${exit.error.message}`);
  if (state.doneAt == null && !state.fatal) {
    state.fatal = `QEMU exited before XENTEST DONE (code ${exit.code}, signal ${exit.signal})`;
  }
  return { state, kill: qemu.kill };
}
