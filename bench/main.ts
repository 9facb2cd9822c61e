// `npm run bench`: every benchmark of the project, each against a baseline measured in the
// same run. Progress on stderr; a table (or --json) on stdout.
import minimist from 'minimist';
import { type Row, table } from './report';
import { benchControlPath } from './hotplug';
import { benchStartup } from './startup';

async function main(): Promise<void> {
  const argv = minimist(process.argv.slice(2), { boolean: ['json', 'quick'], string: ['only'] });
  const quick = argv.quick === true;
  const only = typeof argv.only === 'string' ? argv.only.split(',') : undefined;
  const want = (name: string) => !only || only.includes(name);
  const rows: Row[] = [];
  if (want('startup')) rows.push(...benchStartup(quick ? 10 : 40));
  if (want('control')) rows.push(...(await benchControlPath(quick ? 5 : 20)));
  if (argv.json) process.stdout.write(`${JSON.stringify({ rows }, null, 2)}\n`);
  else process.stdout.write(table(rows));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
