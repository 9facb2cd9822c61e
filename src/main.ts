// The afsfile executable's entry point: hotplug script, worker, renew loop and tools in one.
// First import: sizes libuv's thread pool before anything can start it.
import './engine/threadpool-size';
import { dispatch } from './cli/dispatch';

// SIGUSR1 would open Node's inspector: never in any role (the executable is also started with
// --disable-sigusr1; this covers running from the source tree).
process.on('SIGUSR1', () => {});

function exitWith(code: number): void {
  // Let stdout/stderr drain, then leave even if handles (timers, sockets) remain.
  process.exitCode = code;
  setImmediate(() => process.exit(code));
}

dispatch(process.argv0, process.argv.slice(2), process.env).then(
  (code) => {
    exitWith(code);
  },
  (err: unknown) => {
    process.stderr.write(`afsfile: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    exitWith(70);
  },
);
