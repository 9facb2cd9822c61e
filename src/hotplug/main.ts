import type { CommandContext } from '../cli/commands';
import { FatalError } from '../cli/errors';
import type { ParsedArgs } from '../cli/parse';

export async function hotplugMain(_args: ParsedArgs, _ctx: CommandContext): Promise<number> {
  throw new FatalError('hotplug/main is not built yet');
}
