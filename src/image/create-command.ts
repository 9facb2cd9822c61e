// `afsfile create PATH --size N [--preallocate] [--json]`
import { FatalError, UsageError } from '../cli/errors';
import type { ParsedArgs } from '../cli/parse';
import { formatBytes } from '../util/units';
import { createImage } from './create';
import { createPreallocated } from './create-safe';
import { ImageError } from './image';

export async function createMain(args: ParsedArgs): Promise<number> {
  if (args.positional.length !== 1) throw new UsageError('create needs exactly one PATH');
  const size = args.optionalNumber('size');
  if (size === undefined) throw new UsageError('create needs --size (e.g. --size 10G)');
  const path = args.positional[0]!;
  const preallocate = args.bool('preallocate');
  try {
    if (preallocate) await createPreallocated(path, size, args.bool('json'));
    else createImage(path, { size, preallocate, quiet: args.bool('json') });
  } catch (err) {
    if (err instanceof ImageError) throw new FatalError(err.message);
    throw err;
  }
  if (args.bool('json')) process.stdout.write(`${JSON.stringify({ path, size, preallocated: preallocate })}\n`);
  else {
    const how = preallocate ? 'preallocated' : 'sparse';
    process.stderr.write(`created ${path}: ${formatBytes(size)} (${size} bytes), ${how}\n`);
  }
  return 0;
}
