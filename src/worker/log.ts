// Lines an administrator must see go to stderr (journald keeps them), prefixed with the
// program name; everything else goes through `debug` namespaces (afsfile:worker, ...).
export function stderrLine(line: string): void {
  process.stderr.write(`afsfile worker[${process.pid}]: ${line}\n`);
}
