/**
 * What one chaos run does, drawn from its seed: the world (market, warm spare, workers), the
 * person's decision, and the faults with their moments. The same seed and run number give the
 * same schedule, so a failing run is replayed with `--seed S --run K`.
 *
 * Moments are offsets from the start of a stage: `migration` from the migration's start,
 * `life` from the moment the migration completed (the Spot life that follows). A fault aimed
 * at an instance in a given role (`victim`) is armed at its moment and strikes the first time
 * an instance holds that role, or is recorded as not applicable when none does in time.
 */
import { mulberry32 } from '../test/harness/random';

/** FNV-1a of the parts: one 32-bit seed per (seed, run). */
export function mix(...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const ch of parts.join('/')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** A whole number in [lo, hi]. */
  int(lo: number, hi: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

export function rng(seed: number): Rng {
  const next = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next,
    int,
    pick: (items) => items[int(0, items.length - 1)],
    chance: (p) => next() < p,
  };
}

export type Stage = 'migration' | 'life';

/** Which instance a notice or a termination hits. */
export type Victim =
  /** The new instance of the migration, before the person decided. */
  | 'target'
  /**
   * The next instance launched, while it starts: in the migration its launch or a relaunch; in
   * the Spot life the replacement of the serving instance, which an interruption takes first.
   */
  | 'starting'
  /** The instance behind the Elastic IP. */
  | 'serving'
  /** The warm spare. */
  | 'spare';

export type FaultKind =
  | 'worker-kill'
  | 'server-restart'
  | 'aws-unreachable'
  | 'throttle-burst'
  | 'server-error-burst'
  | 'capacity'
  | 'interruption'
  | 'rebalance'
  | 'silent-termination';

export const FAULT_KINDS: readonly FaultKind[] = [
  'worker-kill',
  'server-restart',
  'aws-unreachable',
  'throttle-burst',
  'server-error-burst',
  'capacity',
  'interruption',
  'rebalance',
  'silent-termination',
];

/** Faults that take an instance away or warn of it. */
export const INSTANCE_FAULTS: readonly FaultKind[] = ['interruption', 'rebalance', 'silent-termination'];

export interface Fault {
  /** Its place in the run's schedule (0-based), for the report. */
  index: number;
  stage: Stage;
  /** Offset from the start of its stage. */
  atMs: number;
  kind: FaultKind;
  /** How long it lasts (outages, bursts, capacity) or how long the process is down (kill, restart). */
  durationMs?: number;
  /** The share of calls a burst hits. */
  rate?: number;
  /** The worker process it kills (0-based). */
  worker?: number;
  /** The instance types without capacity (`capacity`). */
  instanceTypes?: string[];
  /** Which instance (`interruption`, `rebalance`, `silent-termination`). */
  victim?: Victim;
  /** An interruption warning's lead time before the instance is terminated (compressed from 2 min). */
  warningMs?: number;
}

export type Decision = 'approve' | 'reject' | 'timeout';

export interface RunSpec {
  seed: number;
  run: number;
  market: 'spot' | 'on-demand';
  /** `spot.standby: warm` (Spot only). */
  warmSpare: boolean;
  /** Worker processes sharing the task queues. */
  workers: 1 | 2;
  decision: Decision;
  /** How long the person takes once approval is asked. */
  decisionAfterMs: number;
  /** How long the Spot life lasts after a completed migration (0: none). */
  lifeMs: number;
  faults: Fault[];
}

export interface DrawOptions {
  /** The short set: fewer faults, shorter lives and outages. */
  quick?: boolean;
  /** The target's instance types, for capacity faults (the plan's own order). */
  instanceTypes?: readonly string[];
}

const DEFAULT_TYPES = ['g4dn.xlarge', 'g4dn.2xlarge', 'g5.xlarge'];

/** The schedule of run `run` of seed `seed`. */
export function drawRun(seed: number, run: number, options: DrawOptions = {}): RunSpec {
  const r = rng(mix('chaos', seed, run));
  const quick = options.quick ?? false;
  const types = options.instanceTypes ?? DEFAULT_TYPES;
  const market = r.chance(0.75) ? 'spot' : 'on-demand';
  const warmSpare = market === 'spot' && r.chance(0.35);
  const workers = r.chance(0.4) ? 2 : 1;
  const roll = r.next();
  const decision: Decision = roll < 0.7 ? 'approve' : roll < 0.85 ? 'reject' : 'timeout';
  const decisionAfterMs = r.int(0, quick ? 5_000 : 20_000);
  const lifeMs =
    market === 'spot' && decision === 'approve' ? (quick ? r.int(30_000, 45_000) : r.int(60_000, 120_000)) : 0;

  const faults: Omit<Fault, 'index'>[] = [];
  const outage = (): number => (quick ? r.int(5_000, 20_000) : r.int(5_000, 90_000));
  const general = (stage: Stage, span: number): Omit<Fault, 'index'> => {
    const atMs = r.int(0, span);
    const kind = r.pick<FaultKind>([
      'worker-kill',
      'worker-kill',
      'server-restart',
      'aws-unreachable',
      'throttle-burst',
      'server-error-burst',
      ...(market === 'spot' ? (['capacity'] as const) : []),
    ]);
    switch (kind) {
      case 'worker-kill':
        return { stage, atMs, kind, worker: r.int(0, workers - 1), durationMs: r.int(500, 10_000) };
      case 'server-restart':
        return { stage, atMs, kind, durationMs: r.int(500, 5_000) };
      case 'aws-unreachable':
        return { stage, atMs, kind, durationMs: outage() };
      case 'throttle-burst':
        return { stage, atMs, kind, durationMs: r.int(3_000, 30_000), rate: r.int(3, 9) / 10 };
      case 'server-error-burst':
        return { stage, atMs, kind, durationMs: r.int(3_000, 20_000), rate: r.int(2, 6) / 10 };
      default: {
        const unavailable = types.filter(() => r.chance(0.5));
        return {
          stage,
          atMs,
          kind: 'capacity',
          durationMs: r.int(10_000, 60_000),
          instanceTypes: unavailable.length ? unavailable : [types[0]],
        };
      }
    }
  };
  const loss = (stage: Stage, span: number, victims: readonly Victim[]): Omit<Fault, 'index'> => {
    const kind = market === 'spot' ? r.pick(INSTANCE_FAULTS) : 'silent-termination';
    const victim = r.pick(victims);
    return {
      stage,
      // The migration's own launch comes within its first seconds: armed before it.
      atMs: stage === 'migration' && victim === 'starting' ? r.int(0, 1_000) : r.int(0, span),
      kind,
      victim,
      ...(kind === 'interruption' ? { warningMs: r.int(2_000, 8_000) } : {}),
    };
  };

  // The migration: a few faults of any kind while it runs, and maybe the loss of its new
  // instance before the decision, or of one that is starting.
  const migrationSpan = 25_000;
  for (let i = r.int(quick ? 1 : 2, quick ? 2 : 4); i > 0; i--) faults.push(general('migration', migrationSpan));
  if (r.chance(market === 'spot' ? 0.6 : 0.25)) faults.push(loss('migration', migrationSpan, ['target', 'starting']));
  // The Spot life: several interruptions, and other faults among them.
  if (lifeMs > 0) {
    const victims: Victim[] = warmSpare
      ? ['serving', 'serving', 'starting', 'spare']
      : ['serving', 'serving', 'starting'];
    for (let i = r.int(2, quick ? 2 : 4); i > 0; i--) faults.push(loss('life', lifeMs - 10_000, victims));
    for (let i = r.int(quick ? 1 : 1, quick ? 1 : 3); i > 0; i--) faults.push(general('life', lifeMs - 10_000));
  }
  const stageOrder = (f: Omit<Fault, 'index'>) => (f.stage === 'migration' ? 0 : 1);
  faults.sort((a, b) => stageOrder(a) - stageOrder(b) || a.atMs - b.atMs);
  return {
    seed,
    run,
    market,
    warmSpare,
    workers,
    decision,
    decisionAfterMs,
    lifeMs,
    faults: faults.map((f, index) => ({ index, ...f })),
  };
}

/** One line for a fault, as the report lists it. */
export function describeFault(f: Fault): string {
  const parts: string[] = [`#${f.index} ${f.kind}`, `${f.stage}+${(f.atMs / 1000).toFixed(1)}s`];
  if (f.victim) parts.push(`victim=${f.victim}`);
  if (f.worker !== undefined) parts.push(`worker=${f.worker}`);
  if (f.durationMs !== undefined) parts.push(`for ${(f.durationMs / 1000).toFixed(1)}s`);
  if (f.rate !== undefined) parts.push(`rate=${f.rate}`);
  if (f.instanceTypes) parts.push(`types=${f.instanceTypes.join(',')}`);
  if (f.warningMs !== undefined) parts.push(`warning=${(f.warningMs / 1000).toFixed(1)}s`);
  return parts.join(' ');
}
