// bench:scale --sides: what a side is (worker options or another executable), and bad lists.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSides } from '../../bench/scale-sides';

test('sides: NAME=WORKER-ARGS and NAME@EXE; fewer than two is refused', () => {
  assert.equal(parseSides('hosts=--isolation=identity,procs=--isolation=disk --max-inflight=8M,old@/tmp/a=b/afsfile'), [
    { name: 'hosts', workerArgs: ['--isolation=identity'] },
    { name: 'procs', workerArgs: ['--isolation=disk', '--max-inflight=8M'] },
    { name: 'old', workerArgs: [], exe: '/tmp/a=b/afsfile' },
  ]);
  assert.throws(() => parseSides('alone=--isolation=disk'), /two or more/);
});

test.run();
