import type { CommandContext } from '../cli/commands';
import { FatalError } from '../cli/errors';
import type { ParsedArgs } from '../cli/parse';

export async function statusMain(_args: ParsedArgs, _ctx: CommandContext): Promise<number> {
  throw new FatalError('worker/status-command is not built yet');
}
