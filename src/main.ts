// The afsfile executable's entry point: hotplug script, worker, renew loop and tools in one.
// First import: sizes libuv's thread pool before anything can start it.
import './engine/threadpool-size';
import { dispatch } from './cli/dispatch';
import { startCpuProfileFromEnv } from './util/cpu-profile';
import { installJournalPriorities, prio } from './util/journal';

// SIGUSR1 would open Node's inspector: never in any role (the executable is also started with
// --disable-sigusr1; this covers running from the source tree).
process.on('SIGUSR1', () => {});

function exitWith(code: number): void {
  // Let stdout/stderr drain, then leave even if handles (timers, sockets) remain.
  process.exitCode = code;
  setImmediate(() => process.exit(code));
}

// A log that cannot be written (a full /var/log file system, a closed journal pipe: ENOSPC,
// EPIPE) must never take a role down with it: the line is lost, the guests' disks go on. Without
// a listener, Node throws the stream's 'error' event as an uncaught exception.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

installJournalPriorities(process.env);
startCpuProfileFromEnv(process.env, process.argv[2] ?? '');
dispatch(process.argv0, process.argv.slice(2), process.env).then(
  (code) => {
    exitWith(code);
  },
  (err: unknown) => {
    const text = err instanceof Error ? err.stack ?? err.message : String(err);
    process.stderr.write(`${prio('err')}afsfile: internal error: ${text}\n`);
    exitWith(70);
  },
);
