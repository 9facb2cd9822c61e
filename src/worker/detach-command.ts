import type { CommandContext } from '../cli/commands';
import { FatalError } from '../cli/errors';
import type { ParsedArgs } from '../cli/parse';

export async function detachMain(_args: ParsedArgs, _ctx: CommandContext): Promise<number> {
  throw new FatalError('worker/detach-command is not built yet');
}
