/**
 * `npm run chaos -- [--runs N] [--first K] [--seed S] [--run K] [--quick] [--out FILE]`
 *
 * Runs N seeded chaos runs (or only run K of seed S, to replay it), one after the other, on a
 * stack of its own (a Temporal dev server on a database file, moto), and prints a table: runs,
 * faults drawn by kind, invariants checked, violations. For a run with a violation it names the
 * first invariant broken, when, and the faults before it. Exit code 1 when any run broke one,
 * 2 for bad arguments.
 */
import { writeFile } from 'node:fs/promises';
import { runOnce, type RunResult } from './driver';
import { INVARIANTS, type Outage } from './invariants';
import { drawRun, FAULT_KINDS, type FaultKind } from './schedule';
import { startChaosStack } from './stack';

export interface ChaosArgs {
  runs: number;
  seed: number;
  run?: number;
  /** The first run of the set (default 1): `--first 11 --runs 10` runs 11–20. */
  first: number;
  quick: boolean;
  out?: string;
}

export class UsageError extends Error {}

const USAGE = 'usage: npm run chaos -- [--runs N] [--first K] [--seed S] [--run K] [--quick] [--out FILE]';

/** Full set: 50 runs; quick: 3. */
export const DEFAULT_RUNS = { full: 50, quick: 3 };
export const DEFAULT_SEED = 20261207;
/** The short set CI runs (test/chaos/chaos.test.ts): the quick schedule of these runs. */
export const CI_SET = { seed: DEFAULT_SEED, runs: 2 };

export function parseArgs(argv: readonly string[]): ChaosArgs {
  const out: Partial<ChaosArgs> & { quick: boolean } = { quick: false };
  const whole = (flag: string, value: string | undefined, min: number): number => {
    const n = Number(value);
    if (value === undefined || !Number.isInteger(n) || n < min)
      throw new UsageError(
        `${flag}: expected a whole number ≥ ${min}, got ${value === undefined ? 'nothing' : `'${value}'`}\n${USAGE}`,
      );
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') out.quick = true;
    else if (a === '--runs') out.runs = whole('--runs', argv[++i], 1);
    else if (a === '--seed') out.seed = whole('--seed', argv[++i], 0);
    else if (a === '--run') out.run = whole('--run', argv[++i], 1);
    else if (a === '--first') out.first = whole('--first', argv[++i], 1);
    else if (a === '--out') {
      const v = argv[++i];
      if (!v) throw new UsageError(`--out: expected a file name\n${USAGE}`);
      out.out = v;
    } else throw new UsageError(`unknown argument '${a}'\n${USAGE}`);
  }
  return {
    runs: out.runs ?? (out.quick ? DEFAULT_RUNS.quick : DEFAULT_RUNS.full),
    seed: out.seed ?? DEFAULT_SEED,
    first: out.first ?? 1,
    quick: out.quick,
    ...(out.run !== undefined ? { run: out.run } : {}),
    ...(out.out ? { out: out.out } : {}),
  };
}

/** The table docs/reliability.md keeps: runs, faults by kind, invariants, violations, seeds. */
export function summarize(args: ChaosArgs, results: readonly RunResult[]): string {
  const struck: Record<FaultKind, number> = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<
    FaultKind,
    number
  >;
  const drawn: Record<FaultKind, number> = { ...struck };
  for (const r of results)
    for (const f of r.faults) {
      drawn[f.fault.kind]++;
      if (f.atMs !== undefined) struck[f.fault.kind]++;
    }
  const violations = results.reduce((n, r) => n + r.violations.length, 0);
  const byInvariant = Object.keys(INVARIANTS).map(
    (name) => [name, results.reduce((n, r) => n + r.violations.filter((v) => v.invariant === name).length, 0)] as const,
  );
  const outcomes = new Map<string, number>();
  for (const r of results) outcomes.set(r.outcome, (outcomes.get(r.outcome) ?? 0) + 1);
  const lines = [
    `Chaos: ${results.length} run(s), seed ${args.seed}${args.quick ? ' (quick set)' : ''}${args.run ? `, run ${args.run} only` : ''}`,
    '',
    '| fault | drawn | struck |',
    '|---|---:|---:|',
    ...FAULT_KINDS.map((k) => `| ${k} | ${drawn[k]} | ${struck[k]} |`),
    '',
    '| invariant | violations |',
    '|---|---:|',
    ...byInvariant.map(([name, n]) => `| ${name} | ${n} |`),
    '',
    `Outcomes: ${[...outcomes].map(([o, n]) => `${o} ${n}`).join(', ')}. Notices put on queues: ${results.reduce((n, r) => n + r.notices, 0)}; replacements: ${results.reduce((n, r) => n + r.replacements, 0)}; longest time without service (less blocked time): ${(Math.max(0, ...results.map((r) => r.longestDownMs)) / 1000).toFixed(1)} s.`,
    outageLine(results),
    `Violations: ${violations}.`,
  ];
  for (const r of results.filter((x) => x.firstViolation)) {
    const f = r.firstViolation!;
    lines.push(
      '',
      `Run ${r.spec.run} (replay: npm run chaos -- --seed ${r.spec.seed} --run ${r.spec.run}${args.quick ? ' --quick' : ''}): first broken: ${f.violation.invariant} at +${(f.violation.atMs / 1000).toFixed(1)} s: ${f.violation.detail}`,
      ...f.faultsBefore.map((x) => `  before it: ${x}`),
    );
  }
  return lines.join('\n');
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * The spells without service behind the Elastic IP, beyond a sampler's blink (1 s): how many,
 * the longest, and how many were wholly inside blocked time, so the bound did not judge them.
 */
export function outageLine(results: readonly RunResult[]): string {
  const recorded = results.filter((r) => r.outages !== undefined);
  if (recorded.length === 0) return 'Outages: not recorded by these runs.';
  const all = recorded.flatMap((r) => r.outages ?? []).filter((o) => lasted(o) > 1_000);
  if (all.length === 0) return `Outages longer than 1 s: none in ${recorded.length} run(s).`;
  const longest = all.reduce((a, b) => (lasted(b) > lasted(a) ? b : a));
  const judged = all.filter((o) => counted(o) > 0);
  const longestJudged = Math.max(0, ...judged.map(counted));
  return (
    `Outages longer than 1 s: ${all.length} in ${recorded.length} run(s); longest ${seconds(lasted(longest))} (${seconds(longest.blockedMs)} of it blocked); ` +
    `${judged.length} held against the bound (longest counted ${seconds(longestJudged)}), ${all.length - judged.length} wholly within blocked time.`
  );
}

/** How long an outage lasted, and how much of that the bound judges (the part not blocked). */
const lasted = (o: Outage) => o.toMs - o.fromMs;
const counted = (o: Outage) => lasted(o) - o.blockedMs;

async function main(): Promise<number> {
  let args: ChaosArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const runs = args.run !== undefined ? [args.run] : Array.from({ length: args.runs }, (_, i) => args.first + i);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  log(`chaos: seed ${args.seed}, ${runs.length} run(s)${args.quick ? ', quick' : ''}; starting the stack`);
  const stack = await startChaosStack();
  const results: RunResult[] = [];
  try {
    for (const k of runs) {
      const spec = drawRun(args.seed, k, { quick: args.quick });
      const result = await runOnce(stack, spec, log);
      results.push(result);
      log(
        `  run ${k}: ${result.outcome}; ${result.faults.filter((f) => f.atMs !== undefined).length}/${spec.faults.length} faults struck; ${result.violations.length} violation(s); ${(result.durationMs / 1000).toFixed(0)} s`,
      );
      for (const v of result.violations) log(`    ✘ ${v.invariant} at +${(v.atMs / 1000).toFixed(1)} s: ${v.detail}`);
    }
  } finally {
    await stack.close();
  }
  const table = summarize(args, results);
  log(`\n${table}`);
  if (args.out) await writeFile(args.out, JSON.stringify({ args, results }, null, 2));
  return results.some((r) => r.violations.length > 0) ? 1 : 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
