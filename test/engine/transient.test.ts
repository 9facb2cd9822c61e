// Which errors hold a request: the AFS ones of both clients, by name, also when libuv knows no
// name for the errno (Node then says code "UNKNOWN": kAFS's key errors and ETIME).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isTransient } from '../../src/engine/transient';
import { nameLinuxErrno } from '../../src/util/linux-errno';

// The shape of a libuv failure Node could not name (lib/internal/errors.js uvException).
const unnamed = (errno: number): NodeJS.ErrnoException => Object.assign(new Error('unknown error'), { errno: -errno, code: 'UNKNOWN', syscall: 'fsync' });

test('kAFS key errnos and ETIME get their Linux names; named and unlisted ones stay as they are', () => {
  assert.is(nameLinuxErrno(unnamed(127)).code, 'EKEYEXPIRED');
  assert.is(nameLinuxErrno(unnamed(126)).code, 'ENOKEY');
  assert.is(nameLinuxErrno(unnamed(129)).code, 'EKEYREJECTED');
  assert.is(nameLinuxErrno(unnamed(128)).code, 'EKEYREVOKED');
  assert.is(nameLinuxErrno(unnamed(62)).code, 'ETIME');
  assert.is(nameLinuxErrno(unnamed(200)).code, 'UNKNOWN');
  // The fs callbacks' shape (node's C++ UVException): what fdatasync gave on a FUSE file over quota.
  const quota = Object.assign(new Error('x'), { errno: -122, code: 'Unknown system error -122' });
  assert.is(nameLinuxErrno(quota).code, 'EDQUOT');
  assert.is(nameLinuxErrno(Object.assign(new Error('x'), { errno: -13, code: 'EACCES' })).code, 'EACCES');
  assert.is(nameLinuxErrno(null), null);
});

test('held (transient) on both clients: tokens, servers down, quota; EIO only for reads and writes', () => {
  const network = ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH'];
  for (const code of ['EACCES', 'EKEYEXPIRED', 'ENOKEY', 'EKEYREJECTED', 'EKEYREVOKED', 'EDESTADDRREQ', 'ETIME', 'ETIMEDOUT', 'EDQUOT', 'ENOSPC', ...network]) {
    for (const op of ['read', 'write', 'fsync'] as const) assert.ok(isTransient(code, op), `${code} at ${op}`);
  }
  assert.ok(isTransient('EIO', 'write'));
  assert.not.ok(isTransient('EIO', 'fsync'));
  assert.not.ok(isTransient('UNKNOWN', 'fsync'));
  assert.not.ok(isTransient('EROFS', 'write'));
  assert.not.ok(isTransient(undefined, 'write'));
});

test.run();
