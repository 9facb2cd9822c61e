// The seccomp wrapper of test/helpers/no-uring.c, compiled once per test process: runs a
// command with io_uring refused (EPERM), as a container runtime's default profile does.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../../..');
let built: string | undefined;

/** The wrapper's path (under a private temp dir, removed at exit). */
export function noUringWrapper(): string {
  if (built) return built;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'afsfile-no-uring-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const exe = path.join(dir, 'no-uring');
  const src = path.join(root, 'test/helpers/no-uring.c');
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', exe, src], { stdio: 'pipe' });
  built = exe;
  return exe;
}

export const repoRoot = root;
