/**
 * `npm run bench [-- --quick] [-- --out DIR] [-- --only a,b]`: the benchmarks of
 * BENCHMARKS.md against a local stack of their own (Temporal dev server, moto, the app's
 * stand-ins, a worker in its own process). Prints a table, writes `bench/results.json` (or
 * DIR/results.json) and the figures of BENCHMARKS.md (DIR/BENCHMARKS.md with --out).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { machineFacts, renderTable, updateBenchmarksMd, type Results } from './report';
import { benchFleet } from './sections/fleet';
import { benchLongLife } from './sections/long-life';
import { benchMigration } from './sections/migration';
import { benchRecovery } from './sections/recovery';
import { benchWarning } from './sections/warning';
import { startStack } from './stack';

const SECTIONS = ['recovery', 'warning', 'migration', 'fleet', 'longLife'] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  quick: boolean;
  out?: string;
  only: Section[];
  /** Fleet sizes (migrations, guardians) instead of the mode's. */
  fleet?: [number, number];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, only: [...SECTIONS] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--out') args.out = argv[++i];
    else if (a === '--only') {
      const names = (argv[++i] ?? '').split(',').filter(Boolean);
      const bad = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
      if (bad.length || names.length === 0)
        throw new UsageError(`--only takes a comma-separated list of ${SECTIONS.join(', ')}; got '${argv[i] ?? ''}'`);
      args.only = names as Section[];
    } else if (a === '--fleet') {
      const m = /^(\d+),(\d+)$/.exec(argv[++i] ?? '');
      if (!m || Number(m[1]) < 1 || Number(m[2]) < 1)
        throw new UsageError(`--fleet takes MIGRATIONS,GUARDIANS (e.g. 200,1000); got '${argv[i] ?? ''}'`);
      args.fleet = [Number(m[1]), Number(m[2])];
    } else if (a === '--help') throw new UsageError('');
    else throw new UsageError(`unknown argument '${a}'`);
  }
  if (args.out === '') throw new UsageError('--out needs a directory');
  return args;
}

class UsageError extends Error {}

const root = resolve(__dirname, '..');

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const log = (s: string) => process.stderr.write(`${s}\n`);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const started = Date.now();
  const results: Results = {
    mode: args.quick ? 'quick' : 'full',
    startedAt: new Date(started).toISOString(),
    machine: await machineFacts(),
    sections: {},
  };
  log(
    `bench: ${results.mode} run on ${results.machine.cpus} × ${results.machine.cpuModel}, load ${results.machine.loadAverage.join(' ')}`,
  );
  log('bench: starting the local stack (Temporal dev server, moto, workflow bundle)');
  const stack = await startStack();
  const closeOnSignal = () => void stack.close().finally(() => process.exit(130));
  process.once('SIGINT', closeOnSignal);
  process.once('SIGTERM', closeOnSignal);
  try {
    const q = args.quick;
    for (const section of args.only) {
      const t0 = Date.now();
      log(`bench: ${section}`);
      switch (section) {
        case 'recovery':
          results.sections.recovery = await benchRecovery(stack, { recoveries: q ? 3 : 20, log });
          break;
        case 'warning':
          results.sections.warning = await benchWarning(stack, { repeats: q ? 1 : 4, quick: q, log });
          break;
        case 'migration':
          // A quick run only proves the section runs: no warm-up round.
          results.sections.migration = await benchMigration(stack, { runs: q ? 1 : 10, warmUp: !q, log });
          break;
        case 'fleet':
          results.sections.fleet = await benchFleet(stack, {
            migrations: args.fleet?.[0] ?? (q ? 5 : 200),
            guardians: args.fleet?.[1] ?? (q ? 50 : 1000),
            quick: q,
            log,
          });
          break;
        case 'longLife':
          results.sections.longLife = await benchLongLife(stack, {
            watches: q ? 2 : 24,
            watchesPerRun: q ? 1 : 4,
            recoveries: q ? 2 : 10,
            log,
          });
          break;
      }
      log(`bench: ${section} took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  } finally {
    process.off('SIGINT', closeOnSignal);
    process.off('SIGTERM', closeOnSignal);
    await stack.close();
  }
  results.durationSeconds = Math.round((Date.now() - started) / 1000);
  results.machine.loadAverageAtEnd = (await machineFacts()).loadAverage;

  const outDir = args.out ? resolve(args.out) : join(root, 'bench');
  await mkdir(outDir, { recursive: true });
  const resultsFile = join(outDir, 'results.json');
  await writeFile(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${renderTable(results)}\n`);
  log(`bench: results in ${resultsFile}`);
  if (args.out || !args.quick) {
    const md = args.out ? join(outDir, 'BENCHMARKS.md') : join(root, 'BENCHMARKS.md');
    await updateBenchmarksMd(md, results, join(root, 'BENCHMARKS.md'));
    log(`bench: figures written to ${md}`);
  } else {
    log('bench: a --quick run does not rewrite BENCHMARKS.md (use --out DIR to get one)');
  }
  log(`bench: done in ${results.durationSeconds} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(
        `${err.message ? `bench: ${err.message}\n` : ''}usage: npm run bench [-- --quick] [-- --out DIR] [-- --only ${SECTIONS.join(',')}] [-- --fleet MIGRATIONS,GUARDIANS]\n`,
      );
      process.exit(2);
    }
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
