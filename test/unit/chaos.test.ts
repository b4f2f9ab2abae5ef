/**
 * The chaos runner's pure parts: the seeded schedule (the same seed gives the same faults, so a
 * run is replayed), its arguments, and the invariant checker over observations.
 */
import { Checker, type FinalState } from '../../chaos/invariants';
import type { RunResult } from '../../chaos/driver';
import { outageLine, parseArgs, summarize, UsageError } from '../../chaos/run';
import { drawRun, INSTANCE_FAULTS } from '../../chaos/schedule';

describe('the schedule', () => {
  test('the same seed and run give the same schedule; another run or seed another', () => {
    expect(drawRun(7, 3)).toEqual(drawRun(7, 3));
    expect(drawRun(7, 3, { quick: true })).toEqual(drawRun(7, 3, { quick: true }));
    const others = [drawRun(7, 4), drawRun(8, 3)].map((r) => JSON.stringify({ ...r, seed: 0, run: 0 }));
    expect(others).not.toContain(JSON.stringify({ ...drawRun(7, 3), seed: 0, run: 0 }));
  });

  test('faults are numbered in order, migration before life, each stage by moment; their parameters fit their kind', () => {
    for (let run = 1; run <= 60; run++) {
      const spec = drawRun(11, run);
      expect(spec.faults.map((f) => f.index)).toEqual(spec.faults.map((_, i) => i));
      const keys = spec.faults.map((f) => [f.stage === 'migration' ? 0 : 1, f.atMs]);
      expect(keys).toEqual([...keys].sort((a, b) => a[0] - b[0] || a[1] - b[1]));
      for (const f of spec.faults) {
        if (f.kind === 'aws-unreachable') expect(f.durationMs).toBeGreaterThanOrEqual(5_000);
        if (f.kind === 'aws-unreachable') expect(f.durationMs).toBeLessThanOrEqual(90_000);
        if (f.kind === 'worker-kill') expect(f.worker).toBeLessThan(spec.workers);
        if (INSTANCE_FAULTS.includes(f.kind)) expect(f.victim).toBeDefined();
        if (f.kind === 'interruption') expect(f.warningMs).toBeGreaterThan(0);
        if (f.kind === 'capacity') expect(f.instanceTypes?.length).toBeGreaterThan(0);
        if (f.victim === 'spare') expect(spec.warmSpare).toBe(true);
      }
      // On-demand: no Spot notices, no Spot life, no spare.
      if (spec.market === 'on-demand') {
        expect(spec.faults.filter((f) => f.kind === 'interruption' || f.kind === 'rebalance')).toEqual([]);
        expect(spec.lifeMs).toBe(0);
        expect(spec.warmSpare).toBe(false);
      }
      if (spec.lifeMs > 0)
        expect(spec.faults.filter((f) => f.stage === 'life' && f.victim).length).toBeGreaterThanOrEqual(2);
    }
  });

  test('over many runs every kind of fault, victim and decision is drawn; the quick set keeps outages short', () => {
    const specs = Array.from({ length: 50 }, (_, i) => drawRun(20261207, i + 1));
    const kinds = new Set(specs.flatMap((s) => s.faults.map((f) => f.kind)));
    expect([...kinds].sort()).toEqual(
      [
        'aws-unreachable',
        'capacity',
        'interruption',
        'rebalance',
        'server-error-burst',
        'server-restart',
        'silent-termination',
        'throttle-burst',
        'worker-kill',
      ].sort(),
    );
    expect(new Set(specs.flatMap((s) => s.faults.map((f) => f.victim)).filter(Boolean))).toEqual(
      new Set(['target', 'starting', 'serving', 'spare']),
    );
    expect(new Set(specs.map((s) => s.decision))).toEqual(new Set(['approve', 'reject', 'timeout']));
    expect(specs.some((s) => s.workers === 2)).toBe(true);
    const quick = Array.from({ length: 30 }, (_, i) => drawRun(1, i + 1, { quick: true }));
    for (const f of quick.flatMap((s) => s.faults))
      if (f.kind === 'aws-unreachable') expect(f.durationMs).toBeLessThanOrEqual(20_000);
  });
});

describe('the arguments', () => {
  test('defaults, the quick set, one run to replay', () => {
    expect(parseArgs([])).toMatchObject({ runs: 50, quick: false });
    expect(parseArgs(['--quick'])).toMatchObject({ runs: 3, quick: true });
    expect(parseArgs(['--seed', '5', '--run', '7', '--out', 'x.json'])).toMatchObject({
      seed: 5,
      run: 7,
      out: 'x.json',
    });
  });

  test.each([
    [['--runs', '0'], /--runs: expected a whole number ≥ 1, got '0'/],
    [['--seed', 'abc'], /--seed: expected a whole number ≥ 0, got 'abc'/],
    [['--run'], /--run: expected a whole number ≥ 1, got nothing/],
    [['--fast'], /unknown argument '--fast'/],
  ])('%j is refused, naming the argument', (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
    expect(() => parseArgs(argv)).toThrow(message);
  });
});

const options = {
  boundMs: 10_000,
  catchUpMs: 5_000,
  outcomes: ['completed', 'rolled back'],
  warmSpare: false,
  guarded: true,
};
const settled = (over: Partial<FinalState> = {}): FinalState => ({
  atMs: 100_000,
  migration: { outcome: 'completed', compensations: [] },
  guardian: { before: 'guarding', after: 'stopped' },
  live: ['i-new'],
  serves: true,
  holder: 'i-new',
  holderState: 'running',
  oldInstanceId: 'i-old',
  leftovers: [],
  queued: 0,
  ...over,
});

/** A run's result with nothing in it, for the report's lines. */
const result = (): RunResult => ({
  spec: drawRun(3, 2),
  outcome: 'completed',
  violations: [],
  faults: [],
  notices: 0,
  replacements: 0,
  longestDownMs: 0,
  durationMs: 1,
});

describe('the invariant checker', () => {
  test('a clean run breaks nothing', () => {
    const c = new Checker({ ...options });
    c.sample({ atMs: 0, serves: true, holder: 'i-old', holderState: 'running' });
    c.oldStopped({ atMs: 5_000, approvedAtMs: 4_000, holder: 'i-new', holderState: 'running', serves: true });
    c.sample({ atMs: 6_000, serves: true, holder: 'i-new', holderState: 'running' });
    expect(
      c.finish(settled(), [
        { messageId: 'm', instanceId: 'i-x', sentAtMs: 1, record: { outcome: 'routed' }, taken: true },
      ]),
    ).toEqual([]);
  });

  test('the old instance stopped without approval, or while nothing checked holds the address', () => {
    const c = new Checker({ ...options });
    c.oldStopped({ atMs: 5_000, holder: 'i-new', holderState: 'running', serves: true });
    c.oldStopped({ atMs: 6_000, approvedAtMs: 1_000, holder: 'old', holderState: 'running', serves: true });
    c.oldStopped({ atMs: 7_000, approvedAtMs: 1_000, holder: 'i-new', holderState: 'pending', serves: false });
    expect(c.violations.map((v) => [v.invariant, v.atMs, v.detail])).toEqual([
      ['old-stopped-early', 5_000, 'the old instance was stopped while no person had approved'],
      ['old-stopped-early', 6_000, 'the old instance was stopped while the Elastic IP was on old'],
      [
        'old-stopped-early',
        7_000,
        'the old instance was stopped while its holder i-new was pending, the service did not answer on the Elastic IP',
      ],
    ]);
  });

  test('time without service beyond the bound breaks the recovery bound, once; blocked time does not count', () => {
    const c = new Checker({ ...options });
    for (let t = 0; t <= 20_000; t += 1_000) c.sample({ atMs: t, serves: t === 0 });
    expect(c.violations.map((v) => [v.invariant, v.atMs])).toEqual([['recovery-bound', 12_000]]);

    const blocked = new Checker({ ...options });
    blocked.block({ fromMs: 2_000, toMs: 8_000, why: 'AWS unreachable' });
    for (let t = 0; t <= 20_000; t += 1_000) blocked.sample({ atMs: t, serves: t === 0 || t === 20_000 });
    // 19 s without service, 11 s of it blocked (6 s and 5 s to catch up): 8 s counted.
    expect(blocked.violations).toEqual([]);
    expect(blocked.longestDownMs).toBe(8_000);
    expect(blocked.blockedWithin(0, 20_000)).toBe(11_000);
  });

  test('each spell without service is kept with its blocked share, for the report', () => {
    const c = new Checker({ ...options, catchUpMs: 1_000 });
    c.block({ fromMs: 11_000, toMs: 13_000, why: 'server restart' });
    const serving = new Set([0, 1_000, 4_000, 5_000, 6_000, 15_000]);
    for (let t = 0; t <= 15_000; t += 1_000) c.sample({ atMs: t, serves: serving.has(t) });
    c.finish(settled({ atMs: 15_000 }), []);
    expect(c.outages).toEqual([
      { fromMs: 2_000, toMs: 4_000, blockedMs: 0 },
      { fromMs: 7_000, toMs: 15_000, blockedMs: 3_000 },
    ]);
    expect(c.longestDownMs).toBe(5_000);
    expect(outageLine([{ ...result(), outages: c.outages }])).toBe(
      'Outages longer than 1 s: 2 in 1 run(s); longest 8.0 s (3.0 s of it blocked); 2 held against the bound (longest counted 5.0 s), 0 wholly within blocked time.',
    );
    expect(outageLine([{ ...result(), outages: [{ fromMs: 0, toMs: 5_000, blockedMs: 5_000 }] }])).toMatch(
      /1 in 1 run\(s\); .* 0 held against the bound .* 1 wholly within blocked time\.$/,
    );
    expect(outageLine([result()])).toBe('Outages: not recorded by these runs.');
  });

  test('the last look decides how the run ends: a sample from before the recovery is not an outage at the end', () => {
    // The sampler's last sample was taken just before the replacement got the Elastic IP; the
    // world had recovered when the run ended (seed 20261207, run 14).
    const recovered = new Checker({ ...options });
    recovered.sample({ atMs: 0, serves: true, holder: 'i-new', holderState: 'running' });
    recovered.sample({ atMs: 95_000, serves: false });
    expect(recovered.finish(settled({ atMs: 100_000, holder: 'i-next' }), [])).toEqual([]);
    expect(recovered.outages).toEqual([{ fromMs: 95_000, toMs: 100_000, blockedMs: 0 }]);

    const down = new Checker({ ...options });
    down.sample({ atMs: 95_000, serves: true, holder: 'i-new', holderState: 'running' });
    const { holder: _, holderState: __, ...noHolder } = settled({ atMs: 100_000, serves: false, live: [] });
    expect(down.finish(noHolder, []).map((v) => [v.invariant, v.atMs, v.detail])).toEqual([
      ['recovery-bound', 100_000, 'at the end, no serving instance behind the Elastic IP for 0.0 s; holder none'],
    ]);
  });

  test('overlapping blocked windows are counted once', () => {
    const c = new Checker({ ...options, catchUpMs: 0 });
    c.block({ fromMs: 1_000, toMs: 5_000, why: 'a' });
    c.block({ fromMs: 3_000, toMs: 9_000, why: 'b' });
    expect(c.blockedWithin(0, 10_000)).toBe(8_000);
    expect(c.blockedWithin(4_000, 6_000)).toBe(2_000);
  });

  test('the final state: too many live instances, leftovers, notices without a trail, the end state', () => {
    const c = new Checker({ ...options });
    const violations = c.finish(
      settled({
        live: ['i-new', 'i-other'],
        leftovers: ['image ami-1 (a golden image of no guardian)'],
        queued: 1,
        migration: { outcome: 'failed', compensations: [{ name: 'terminate the new instance', state: 'failed' }] },
        guardian: { before: 'replacing', after: 'guarding' },
      }),
      [
        { messageId: 'a', instanceId: 'i-1', sentAtMs: 1 },
        { messageId: 'b', instanceId: 'i-2', sentAtMs: 1, record: { outcome: 'dropped' } },
        {
          messageId: 'c',
          instanceId: 'i-3',
          sentAtMs: 1,
          record: { outcome: 'routed', guardianId: 'g' },
          taken: false,
        },
        { messageId: 'd', instanceId: 'i-4', sentAtMs: 1, deletedAtMs: 50 },
      ],
    );
    expect(violations.map((v) => `${v.invariant}: ${v.detail}`)).toEqual([
      'one-serving: 2 live instances of the plan once settled: i-new, i-other (at most 1)',
      'one-serving: the migration ended failed, and i-new, i-other still live',
      'orphans: cleanup would list: image ami-1 (a golden image of no guardian)',
      'notices: the i-1 notice (message a) has no record at the router',
      'notices: the i-2 notice (message b) was dropped without a reason',
      'notices: the i-3 notice (message c) was routed to g, which shows nothing of it',
      'notices: the i-4 notice (message d) has no record at the router',
      'notices: the i-4 notice (message d) was deleted before it was recorded',
      'notices: 1 message(s) still on the queue',
      'end-state: the migration ended failed; expected completed or rolled back',
      'end-state: compensations not done: terminate the new instance (failed)',
      'end-state: the guardian was replacing once settled',
      'end-state: the guardian ended guarding when told to stop',
    ]);
  });

  test('a warm spare is allowed beside the serving instance', () => {
    const c = new Checker({ ...options, warmSpare: true });
    expect(c.finish(settled({ live: ['i-new', 'i-spare'], spare: 'i-spare' }), [])).toEqual([]);
  });

  test('after an approval that timed out the new instance serves on; after a rollback nothing of the plan runs', () => {
    const timedOut = new Checker({ ...options, outcomes: ['approval timed out'], warmSpare: true });
    const migration = { outcome: 'approval timed out', compensations: [] };
    expect(timedOut.finish(settled({ migration, live: ['i-new', 'i-spare'], spare: 'i-spare' }), [])).toEqual([]);
    const rolledBack = new Checker({ ...options, guarded: false });
    const violations = rolledBack.finish(
      settled({ migration: { outcome: 'rolled back', compensations: [] }, live: ['i-new'], guardian: undefined }),
      [],
    );
    expect(violations.map((v) => v.detail)).toEqual(['the migration ended rolled back, and i-new still live']);
  });
});

test('the summary counts faults by kind and violations by invariant, and tells how to replay a failing run', () => {
  const spec = drawRun(3, 2);
  const text = summarize({ runs: 1, first: 1, seed: 3, quick: false }, [
    {
      spec,
      outcome: 'completed',
      violations: [{ invariant: 'orphans', atMs: 90_000, detail: 'cleanup would list: image ami-1' }],
      faults: spec.faults.map((fault, i) => ({ fault, ...(i === 0 ? { atMs: 1_000 } : { skipped: 'x' }) })),
      notices: 2,
      replacements: 1,
      longestDownMs: 4_000,
      durationMs: 100_000,
      firstViolation: {
        violation: { invariant: 'orphans', atMs: 90_000, detail: 'cleanup would list: image ami-1' },
        faultsBefore: ['#0 worker-kill'],
      },
    },
  ]);
  expect(text).toContain(`| ${spec.faults[0].kind} | `);
  expect(text).toContain('| orphans | 1 |');
  expect(text).toContain('Violations: 1.');
  expect(text).toContain('npm run chaos -- --seed 3 --run 2');
  expect(text).toContain('  before it: #0 worker-kill');
});
