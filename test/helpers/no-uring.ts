// The seccomp wrappers of test/helpers/no-uring.c, compiled once per test process: run a
// command with io_uring refused (EPERM), as a container runtime's default profile does; or
// with execveat refused (the lock keeper's start).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../../..');
const built = new Map<string, string>();

function wrapper(name: string, defines: string[]): string {
  const had = built.get(name);
  if (had) return had;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `afsfile-${name}-`));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const exe = path.join(dir, name);
  const src = path.join(root, 'test/helpers/no-uring.c');
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', ...defines, '-o', exe, src], { stdio: 'pipe' });
  built.set(name, exe);
  return exe;
}

/** The io_uring wrapper's path (under a private temp dir, removed at exit). */
export function noUringWrapper(): string {
  return wrapper('no-uring', []);
}

/** The execveat wrapper's path. */
export function noExecveatWrapper(): string {
  return wrapper('no-execveat', ['-DREFUSE_EXECVEAT']);
}

export const repoRoot = root;
