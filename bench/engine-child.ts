// One engine round in its own process (started by engine.ts): UV_THREADPOOL_SIZE comes from
// the environment before the first fs call, and RSS and CPU time are the engine's alone.
// Spec as JSON in argv[2]; the result as one JSON line on stdout.
import { type EngineRunSpec, runEngine } from './engine-guest';
import { runRawPool } from './raw-pool';

const spec = JSON.parse(process.argv[2] ?? '') as EngineRunSpec & { raw?: boolean };
(spec.raw ? runRawPool(spec) : runEngine(spec)).then(
  (r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`bench engine: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
