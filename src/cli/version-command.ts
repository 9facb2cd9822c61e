// `afsfile version [--verbose]`
import type { ParsedArgs } from './parse';
import { VERSION } from '../version';
import { UsageError } from './errors';

export async function versionMain(args: ParsedArgs): Promise<number> {
  if (args.positional.length) throw new UsageError('version takes no arguments');
  let text = `afsfile ${VERSION}\n`;
  if (args.bool('verbose')) {
    const { native } = await import('../native/addon');
    let sea = false;
    try {
      sea = (require('node:sea') as { isSea(): boolean }).isSea();
    } catch {
      sea = false;
    }
    text += `node ${process.version} (${sea ? 'single executable' : 'source tree'})\nnative addon: abi ${native().abiVersion}\n`;
  }
  process.stdout.write(text);
  return 0;
}
