// Lines an administrator must see go to stderr (journald keeps them), prefixed with the
// program name; everything else goes through `debug` namespaces (afsfile:worker, ...).
// Under systemd the priority prefix says which are errors (util/journal.ts).
import { type Priority, prio } from '../util/journal';

export function stderrLine(line: string, level: Priority = 'info'): void {
  process.stderr.write(`${prio(level)}afsfile worker[${process.pid}]: ${line}\n`);
}
