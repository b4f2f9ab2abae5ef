/**
 * spotGuardian's state machine on the time-skipping test server, every activity stubbed (the
 * region's router runs too, as the guardian's child, and idles: nothing is guarded, no queue).
 * A notice for the guarded instance replaces it and continues as new; other notices are recorded
 * and ignored; a failed round is recorded and tried again a minute later.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import { guardianWorkflowId, migrationWorkflowId, routerWorkflowId, TAG_GUARDED } from '../../src/shared/constants';
import {
  guardianStatusQuery,
  interruptionSignal,
  stopGuardingSignal,
  type GuardianStatus,
  type InterruptionNotice,
} from '../../src/shared/spot';
import { ledgerAt } from '../../src/shared/ledger';
import type { spotGuardian } from '../../src/workflows/guardian';
import type { Plan } from '../../src/plan/schema';
import {
  IDS,
  gate,
  happyStubs,
  queryOf,
  recordStubs,
  startTimeSkipping,
  waitFor,
  withWorker,
  workflowBundle,
  workflowPlan,
  type Stubs,
} from './helpers';

/** The guarded instance (the migration's new one) and what the guardian does to replace it. */
const GUARDED = IDS.newInstance;
const REPLACEMENT_STEPS = [
  'markGuarded',
  'rankSpotPools',
  'launchInstance',
  'terminateLaunched',
  'runRemote',
  'checkServices',
  'voiceCloneTest',
  'associateAddress',
  'terminateInstance',
];
const replacementId = (n: number) => `i-0${n.toString(16).padStart(16, '0')}`;
const replacementIp = (n: number) => `203.0.113.${100 + n}`;

let env: TestWorkflowEnvironment;
beforeAll(() => workflowBundle(), 60_000);
// A server of its own for each test (see startTimeSkipping).
beforeEach(async () => {
  env = await startTimeSkipping();
}, 30_000);
afterEach(() => env?.teardown());

/** A Spot plan whose router polls rarely (it idles through the test). */
const spotPlan = () => workflowPlan({ target: { market: 'spot' }, spot: { pollInterval: '2m' } });

interface Launch {
  input: Parameters<Activities['launchInstance']>[0];
  /** When the server scheduled the attempt: the test server's (skipped) clock. */
  scheduledMs: number;
}

/**
 * The happy stubs, with a launch that gives replacementId(1), (2), … and remembers when each was
 * scheduled; `launch` may fail or hold a call (by its 1-based number).
 */
function guardianStubs(
  plan: Plan,
  launch: (n: number) => Promise<void> = async () => undefined,
  extra: Partial<Activities> = {},
) {
  const happy = { ...happyStubs(plan), ...extra };
  const launches: Launch[] = [];
  const stubs = recordStubs({
    ...happy,
    launchInstance: async (input) => {
      launches.push({ input, scheduledMs: Context.current().info.currentAttemptScheduledTimestampMs });
      const n = launches.length;
      await launch(n);
      const instanceId = replacementId(n);
      return {
        ...(await happy.launchInstance!(input)),
        instanceId,
        market: 'spot' as const,
        publicIp: replacementIp(n),
      };
    },
  } satisfies Partial<Activities>);
  return { stubs, launches };
}

async function startGuardian(
  taskQueue: string,
  plan: Plan,
  market?: 'spot' | 'on-demand',
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof spotGuardian>> {
  const handle = await env.client.workflow.start<typeof spotGuardian>('spotGuardian', {
    taskQueue,
    workflowId: guardianWorkflowId(plan.name),
    args: [
      {
        plan,
        instanceId: GUARDED,
        goldenImageId: IDS.goldenImage,
        migrationWorkflowId: migrationWorkflowId(plan.name),
        ...(market ? { market } : {}),
      },
    ],
  });
  return handle;
}

const guardianStatus = (handle: WorkflowHandle) => queryOf(handle, guardianStatusQuery);
const until = (handle: WorkflowHandle, what: string, ready: (s: GuardianStatus) => boolean) =>
  waitFor(what, () => guardianStatus(handle), ready);
/**
 * The run that followed `runId` (it continued as new), found with describe: a query that reaches
 * a run while it continues as new may never be answered by the test server.
 */
async function nextRun(handle: WorkflowHandle, runId: string): Promise<{ run: WorkflowHandle; runId: string }> {
  const latest = await waitFor(
    `the run after ${runId}`,
    () => handle.describe(),
    (d) => d.runId !== runId,
  );
  return { run: env.client.workflow.getHandle(handle.workflowId, latest.runId), runId: latest.runId };
}
const notice = (instanceId: string): InterruptionNotice => ({ instanceId, kind: 'interruption', source: 'queue' });

/**
 * Stops the guardian; returns its result, its last status, from its latest run (the test server
 * may never answer a result that follows the runs from the first one). The router it started
 * idles until the test's server goes.
 */
async function stopGuardian(handle: WorkflowHandle<typeof spotGuardian>): Promise<GuardianStatus> {
  await handle.signal(stopGuardingSignal);
  const { runId } = await handle.describe();
  return env.client.workflow.getHandle<typeof spotGuardian>(handle.workflowId, runId).result();
}

/** The calls of the guardian's first run: it tags `oldId`, then replaces it by launch number `n`. */
function expectReplacement(stubs: Stubs, plan: Plan, oldId: string, n: number): void {
  const newId = replacementId(n);
  expect(stubs.names(REPLACEMENT_STEPS)).toEqual([
    'markGuarded',
    'rankSpotPools',
    'launchInstance',
    'runRemote',
    'checkServices',
    'voiceCloneTest',
    'associateAddress',
    'checkServices',
    'terminateInstance',
  ]);
  const guardianId = guardianWorkflowId(plan.name);
  expect(stubs.inputs('markGuarded')).toEqual([
    expect.objectContaining({ region: plan.region, instanceId: oldId, guardianId }),
  ]);
  expect(stubs.inputs('rankSpotPools')).toEqual([
    expect.objectContaining({ region: plan.region, order: 'placement-score', avoid: [], interruptedInstanceId: oldId }),
  ]);
  expect(stubs.inputs('launchInstance')).toEqual([
    expect.objectContaining({
      workflowId: guardianId,
      step: `replace-${n}`,
      imageId: IDS.goldenImage,
      tags: { [TAG_GUARDED]: guardianId },
    }),
  ]);
  // The launch tries the Spot pools in the ranking's order.
  const [launch] = stubs.inputs('launchInstance');
  expect('spec' in launch ? launch.spec.spotPools : undefined).toEqual(
    [plan.target.instanceType, ...plan.target.fallbackInstanceTypes].flatMap((instanceType) =>
      plan.target.subnetIds.map((subnetId) => ({ instanceType, subnetId })),
    ),
  );
  expect(stubs.inputs('voiceCloneTest').map((i) => i.host)).toEqual([replacementIp(n)]);
  // From the golden image only the start step runs.
  expect(stubs.inputs('runRemote').map((i) => [i.instanceId, i.commands])).toEqual([[newId, plan.remote.start]]);
  expect(stubs.inputs('checkServices').map((i) => [i.instanceId, i.scope, i.host])).toEqual([
    [newId, 'all', replacementIp(n)],
    [newId, 'public', IDS.elasticIp],
  ]);
  expect(stubs.inputs('associateAddress')).toEqual([
    expect.objectContaining({ region: plan.region, allocationId: IDS.allocation, instanceId: newId }),
  ]);
  expect(stubs.inputs('terminateInstance')).toEqual([
    expect.objectContaining({ region: plan.region, instanceId: oldId }),
  ]);
}

test('a notice for the guarded instance: launch, start, checks, the Elastic IP moves, the old one is terminated, and the guardian continues as new', async () => {
  const plan = spotPlan();
  const { stubs } = guardianStubs(plan);
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan);
    const first = await until(handle, 'guarding', (s) => s.state === 'guarding');
    expect(first).toMatchObject({ instanceId: GUARDED, replacements: 0, run: 1, events: [] });

    await handle.signal(interruptionSignal, notice(GUARDED));
    const next = await until(
      (await nextRun(handle, handle.firstExecutionRunId)).run,
      'guarding',
      (s) => s.state === 'guarding',
    );
    expect(next.run).toBe(2);

    expect(next).toMatchObject({ instanceId: replacementId(1), replacements: 1, state: 'guarding', pending: [] });
    expect(next.events).toEqual([
      expect.objectContaining({
        kind: 'interruption',
        source: 'queue',
        oldInstanceId: GUARDED,
        newInstanceId: replacementId(1),
        market: 'spot',
        outcome: 'replaced',
      }),
    ]);
    expect(next.events[0].oldTerminatedAt).toEqual(expect.any(String));
    expectReplacement(stubs, plan, GUARDED, 1);
    const firstRun = await env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).describe();
    expect(firstRun.status.name).toBe('CONTINUED_AS_NEW');
    // The router it started idles: it watches, finds nothing guarded, and keeps running.
    expect(stubs.names(['watchRegion']).length).toBeGreaterThan(0);
    const router = await env.client.workflow.getHandle(routerWorkflowId(plan.region)).describe();
    expect(router.status.name).toBe('RUNNING');

    const last = await stopGuardian(handle);
    expect(last).toMatchObject({ state: 'stopped', replacements: 1, run: 2, instanceId: replacementId(1) });
  });
});

test('a notice for another instance, and a duplicate for the guarded one, are recorded and ignored', async () => {
  const plan = spotPlan();
  const held = gate();
  const { stubs } = guardianStubs(plan, held.passed);
  const other = 'i-0123456789abcdef9';
  await withWorker(env, stubs.activities, held.open, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan);
    await until(handle, 'guarding', (s) => s.state === 'guarding');

    await handle.signal(interruptionSignal, notice(other));
    const ignored = await until(handle, 'the notice ignored', (s) => s.ignored.length === 1);
    expect(ignored.ignored[0]).toMatchObject({
      reason: `${other} is not the guarded instance (${GUARDED})`,
      notice: notice(other),
    });
    expect(ignored).toMatchObject({ state: 'guarding', run: 1, replacements: 0, pending: [] });
    expect(stubs.names(['launchInstance'])).toEqual([]);

    // The guarded instance's notice starts a replacement; the same notice again changes nothing.
    await handle.signal(interruptionSignal, notice(GUARDED));
    await until(handle, 'replacing', (s) => s.state === 'replacing');
    await handle.signal(interruptionSignal, notice(GUARDED));
    const duplicate = await until(handle, 'the duplicate ignored', (s) => s.ignored.length === 2);
    expect(duplicate.ignored[1].reason).toBe(`duplicate notice for ${GUARDED}: already being replaced`);
    expect(duplicate.pending).toEqual([]);
    held.open();

    const next = await until(
      (await nextRun(handle, handle.firstExecutionRunId)).run,
      'guarding',
      (s) => s.state === 'guarding',
    );
    expect(next).toMatchObject({ run: 2, replacements: 1 });
    expect(next.ignored.map((i) => i.reason)).toEqual([ignored.ignored[0].reason, duplicate.ignored[1].reason]);
    // One replacement, the first launch of this guardian.
    expectReplacement(stubs, plan, GUARDED, 1);
    await stopGuardian(handle);
  });
});

test.each([
  { after: 'a minute later (the default)', retryRoundAfter: undefined, pauseMs: 60_000 },
  { after: 'spot.retryRoundAfter (5m) later', retryRoundAfter: '5m', pauseMs: 300_000 },
])(
  'a failed replacement round (every launch try fails) is recorded as failed and tried again $after',
  async ({ retryRoundAfter, pauseMs }) => {
    const plan = retryRoundAfter
      ? workflowPlan({ target: { market: 'spot' }, spot: { pollInterval: '2m', retryRoundAfter } })
      : spotPlan();
    const fourth = gate();
    const { stubs, launches } = guardianStubs(plan, async (n) => {
      if (n <= 3)
        throw ApplicationFailure.nonRetryable('no Spot capacity for g4dn.xlarge', 'InsufficientInstanceCapacity');
      await fourth.passed();
    });
    await withWorker(env, stubs.activities, fourth.open, async (taskQueue) => {
      const handle = await startGuardian(taskQueue, plan);
      await until(handle, 'guarding', (s) => s.state === 'guarding');
      await handle.signal(interruptionSignal, { ...notice(GUARDED), kind: 'rebalance' });

      // Three tries checks.interval (1 s) apart, then the pause: skipped, not waited. The
      // server's clock stands still while the fourth launch is held, so the skip ends after it.
      await waitFor(
        'the first try',
        async () => launches.length,
        (n) => n >= 1,
      );
      const skipped = env.sleep(pauseMs + 30_000);
      await waitFor(
        'the fourth launch',
        async () => launches.length,
        (n) => n >= 4,
      );
      const second = await nextRun(handle, handle.firstExecutionRunId);
      const retrying = await until(second.run, 'replacing', (s) => s.state === 'replacing');
      expect(retrying.run).toBe(2);

      expect(retrying.replacements).toBe(0);
      expect(retrying.instanceId).toBe(GUARDED);
      expect(retrying.events).toEqual([
        expect.objectContaining({
          kind: 'rebalance',
          oldInstanceId: GUARDED,
          outcome: 'failed',
          error: 'no Spot capacity for g4dn.xlarge',
        }),
      ]);
      expect(retrying.events[0].newInstanceId).toBeUndefined();
      // Each try had a step of its own, and its half-made launch was cleaned up by that step.
      expect(launches.map((l) => l.input.step)).toEqual(['replace-1', 'replace-2', 'replace-3', 'replace-4']);
      expect(stubs.inputs('terminateLaunched').map((i) => i.step)).toEqual(['replace-1', 'replace-2', 'replace-3']);
      const gaps = launches.slice(1).map((l, i) => l.scheduledMs - launches[i].scheduledMs);
      expect(gaps[0]).toBeGreaterThanOrEqual(1_000);
      expect(gaps[1]).toBeGreaterThanOrEqual(1_000);
      expect(gaps[2]).toBeGreaterThanOrEqual(pauseMs);
      expect(stubs.names(['associateAddress', 'terminateInstance'])).toEqual([]);

      fourth.open();
      await skipped;
      const replaced = await until(
        (await nextRun(handle, second.runId)).run,
        'guarding',
        (s) => s.state === 'guarding',
      );
      expect(replaced).toMatchObject({ run: 3, replacements: 1, instanceId: replacementId(4), pending: [] });
      expect(replaced.events.map((e) => [e.outcome, e.newInstanceId])).toEqual([
        ['failed', undefined],
        ['replaced', replacementId(4)],
      ]);
      expect(stubs.inputs('terminateInstance')).toEqual([
        expect.objectContaining({ region: plan.region, instanceId: GUARDED }),
      ]);
      await stopGuardian(handle);
    });
  },
);

test('notices that come while a round ends: one for the replacement is acted on next, others are ignored after the round', async () => {
  const plan = spotPlan();
  const held = gate();
  let terminating = false;
  const { stubs } = guardianStubs(plan, undefined, {
    terminateInstance: async ({ instanceId }) => {
      terminating = true;
      if (instanceId === GUARDED) await held.passed();
      return { instanceId, state: 'terminated' };
    },
  });
  const stranger = 'i-0123456789abcdef9';
  await withWorker(env, stubs.activities, held.open, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan);
    await until(handle, 'guarding', (s) => s.state === 'guarding');
    await handle.signal(interruptionSignal, notice(GUARDED));
    const ending = await until(handle, 'the old instance being terminated', (s) => s.instanceId === replacementId(1));
    expect(ending.state).toBe('replacing');
    await waitFor(
      'terminateInstance called',
      async () => terminating,
      (x) => x,
    );

    await handle.signal(interruptionSignal, { ...notice(replacementId(1)), kind: 'rebalance' });
    await handle.signal(interruptionSignal, notice(stranger));
    await handle.signal(interruptionSignal, notice(GUARDED));
    const during = await until(handle, 'the duplicate ignored', (s) => s.ignored.length === 1);
    expect(during.ignored[0].reason).toBe(`duplicate notice for ${GUARDED}: already being replaced`);
    expect(during.pending).toEqual([]);
    held.open();

    // Run 2 starts with the rebalance for replacement 1 pending, and replaces it at once.
    const second = await nextRun(handle, handle.firstExecutionRunId);
    const third = await until((await nextRun(handle, second.runId)).run, 'guarding', (s) => s.state === 'guarding');
    expect(third).toMatchObject({ run: 3, replacements: 2, instanceId: replacementId(2), pending: [] });
    expect(third.events.map((e) => [e.kind, e.oldInstanceId, e.newInstanceId, e.outcome])).toEqual([
      ['interruption', GUARDED, replacementId(1), 'replaced'],
      ['rebalance', replacementId(1), replacementId(2), 'replaced'],
    ]);
    expect(third.ignored.map((i) => i.reason)).toEqual([
      `duplicate notice for ${GUARDED}: already being replaced`,
      `${stranger} is not the guarded instance (${replacementId(1)})`,
    ]);
    expect(stubs.inputs('terminateInstance').map((i) => i.instanceId)).toEqual([GUARDED, replacementId(1)]);
    await stopGuardian(handle);
  });
});

test('a replacement whose voice clone is over the limit is never switched to: it is terminated and the round fails', async () => {
  // One check a try: the retries of a check are the plan's to pace, and not what this test is about.
  const plan = workflowPlan({
    target: { market: 'spot' },
    spot: { pollInterval: '2m' },
    checks: { attempts: 1, interval: '1s' },
  });
  const { stubs, launches } = guardianStubs(plan, undefined, {
    voiceCloneTest: async () => {
      throw ApplicationFailure.create({
        type: 'LimitExceeded',
        message: 'synthesis took 2.50 s, over the limit of 2 s',
      });
    },
  });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan);
    await until(handle, 'guarding', (s) => s.state === 'guarding');
    await handle.signal(interruptionSignal, { ...notice(GUARDED), kind: 'rebalance' });
    const failed = await until(handle, 'the round given up', (s) => s.events.length === 1);
    expect(failed.events[0]).toMatchObject({
      outcome: 'failed',
      oldInstanceId: GUARDED,
      error: 'synthesis took 2.50 s, over the limit of 2 s',
    });
    expect(failed).toMatchObject({ instanceId: GUARDED, replacements: 0 });
    // Three tries, each checked and then cleaned up; the Elastic IP never moved.
    expect(launches).toHaveLength(3);
    expect(stubs.inputs('terminateLaunched').map((i) => i.step)).toEqual(['replace-1', 'replace-2', 'replace-3']);
    expect(stubs.names(['associateAddress', 'terminateInstance'])).toEqual([]);
    await stopGuardian(handle);
  });
});

test('the pool of an interrupted instance is left out of the rounds within spot.avoidInterruptedPoolFor, and no longer after', async () => {
  const plan = workflowPlan({
    target: { market: 'spot' },
    spot: { pollInterval: '2m', avoidInterruptedPoolFor: '3m' },
  });
  const P1 = { instanceType: 'g4dn.xlarge', availabilityZone: 'eu-west-1a' };
  const P2 = { instanceType: 'g5.xlarge', availabilityZone: 'eu-west-1b' };
  const poolOf = new Map([
    [GUARDED, P1],
    [replacementId(1), P2],
  ]);
  const happy = happyStubs(plan);
  const { stubs } = guardianStubs(plan, undefined, {
    rankSpotPools: async (input) => {
      const interruptedPool = input.interruptedInstanceId ? poolOf.get(input.interruptedInstanceId) : undefined;
      return { ...(await happy.rankSpotPools!(input)), ...(interruptedPool ? { interruptedPool } : {}) };
    },
  });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan);
    await until(handle, 'guarding', (s) => s.state === 'guarding');
    // Notices without a time: the guardian stamps them with its own clock.
    await handle.signal(interruptionSignal, notice(GUARDED));
    const second = await nextRun(handle, handle.firstExecutionRunId);
    const two = await until(second.run, 'guarding', (s) => s.state === 'guarding');
    expect(two.events[0]).toMatchObject({
      outcome: 'replaced',
      interruptedPool: P1,
      pools: { order: 'placement-score', sources: { scores: 'GetSpotPlacementScores' } },
    });
    const firstAt = two.events[0].noticeAt;

    // Straight away, the replacement is interrupted too: the first pool is still left out.
    await second.run.signal(interruptionSignal, notice(replacementId(1)));
    const third = await nextRun(handle, second.runId);
    const three = await until(third.run, 'guarding', (s) => s.replacements === 2);
    const secondAt = three.events[1].noticeAt;
    expect(Date.parse(secondAt) - Date.parse(firstAt)).toBeLessThan(180_000);

    // Past both windows, nothing is left out any more.
    await env.sleep(200_000);
    await third.run.signal(interruptionSignal, notice(replacementId(2)));
    await until((await nextRun(handle, third.runId)).run, 'guarding', (s) => s.replacements === 3);

    expect(stubs.inputs('rankSpotPools').map((i) => [i.interruptedInstanceId, i.avoid])).toEqual([
      [GUARDED, []],
      [replacementId(1), [{ ...P1, at: firstAt }]],
      [replacementId(2), []],
    ]);
    await stopGuardian(handle);
  });
});

test('a ranking that cannot be had does not hold the recovery: the launch tries the plan order', async () => {
  const plan = spotPlan();
  const { stubs } = guardianStubs(plan, undefined, {
    rankSpotPools: async () => {
      throw ApplicationFailure.nonRetryable(
        'not authorized to perform ec2:GetSpotPlacementScores',
        'UnauthorizedOperation',
      );
    },
  });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan);
    await until(handle, 'guarding', (s) => s.state === 'guarding');
    await handle.signal(interruptionSignal, notice(GUARDED));
    const next = await until(
      (await nextRun(handle, handle.firstExecutionRunId)).run,
      'guarding',
      (s) => s.state === 'guarding',
    );
    expect(next).toMatchObject({ replacements: 1, instanceId: replacementId(1) });
    expect(next.events[0].pools).toBeUndefined();
    const [launch] = stubs.inputs('launchInstance');
    expect('spec' in launch ? launch.spec.spotPools : 'no spec').toBeUndefined();
    await stopGuardian(handle);
  });
});

test('on on-demand the guardian tries Spot every spot.revertAfter: a failed try changes nothing; a Spot instance, fully checked, takes the Elastic IP before the on-demand one goes', async () => {
  const plan = workflowPlan({ target: { market: 'spot' }, spot: { pollInterval: '2m', revertAfter: '1h' } });
  const { stubs, launches } = guardianStubs(plan, async (n) => {
    if (n === 1) throw ApplicationFailure.nonRetryable('no Spot capacity in any planned pool', 'NoCapacity');
  });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan, 'on-demand');
    const first = await until(handle, 'guarding', (s) => s.state === 'guarding');
    expect(first).toMatchObject({ market: 'on-demand', instanceId: GUARDED });
    const firstTry = Date.parse(first.nextSpotTryAt ?? '');
    expect(launches).toHaveLength(0);

    // An hour on: the try fails, and the on-demand instance goes on serving.
    await env.sleep(61 * 60_000);
    const second = await nextRun(handle, handle.firstExecutionRunId);
    const failed = await until(second.run, 'the try recorded', (s) => s.events.length === 1);
    expect(failed.events[0]).toMatchObject({ kind: 'back-to-spot', outcome: 'failed', oldInstanceId: GUARDED });
    expect(failed).toMatchObject({ market: 'on-demand', instanceId: GUARDED, replacements: 0 });
    expect(Date.parse(failed.nextSpotTryAt ?? '') - firstTry).toBeGreaterThanOrEqual(60 * 60_000);
    expect(stubs.names(['associateAddress', 'terminateInstance'])).toEqual([]);
    // Spot or nothing: no on-demand fallback on a return.
    const [attempt] = stubs.inputs('launchInstance');
    expect('spec' in attempt ? attempt.spec.onDemandFallback : 'no spec').toBe(false);
    expect(stubs.inputs('rankSpotPools')[0].interruptedInstanceId).toBeUndefined();

    // Another hour: the Spot instance is checked, takes the address, and only then the on-demand one goes.
    await env.sleep(61 * 60_000);
    const back = await until((await nextRun(handle, second.runId)).run, 'back on Spot', (s) => s.replacements === 1);
    expect(back).toMatchObject({ market: 'spot', instanceId: replacementId(2) });
    expect(back.nextSpotTryAt).toBeUndefined();
    expect(back.events[1]).toMatchObject({ kind: 'back-to-spot', outcome: 'replaced', market: 'spot' });
    const order = stubs.names(['checkServices', 'voiceCloneTest', 'associateAddress', 'terminateInstance']);
    expect(order).toEqual([
      'checkServices',
      'voiceCloneTest',
      'associateAddress',
      'checkServices',
      'terminateInstance',
    ]);
    expect(stubs.inputs('terminateInstance').map((i) => i.instanceId)).toEqual([GUARDED]);
    await stopGuardian(handle);
  });
});

test('a replacement that falls back to on-demand schedules the return to Spot; spot.revertAfter 0s never returns', async () => {
  for (const revertAfter of ['30m', '0s']) {
    const plan = workflowPlan({ target: { market: 'spot' }, spot: { pollInterval: '2m', revertAfter } });
    const happy = happyStubs(plan);
    const stubs = recordStubs({
      ...happy,
      launchInstance: async (input) => ({
        ...(await happy.launchInstance!(input)),
        instanceId: replacementId(1),
        publicIp: replacementIp(1),
        market: 'on-demand' as const,
      }),
    } satisfies Partial<Activities>);
    await withWorker(env, stubs.activities, async (taskQueue) => {
      const handle = await startGuardian(taskQueue, plan, 'spot');
      await until(handle, 'guarding', (s) => s.state === 'guarding');
      await handle.signal(interruptionSignal, notice(GUARDED));
      const next = await until(
        (await nextRun(handle, handle.firstExecutionRunId)).run,
        'guarding',
        (s) => s.state === 'guarding',
      );
      if (revertAfter === '0s') {
        expect(next.market).toBeUndefined();
        expect(next.nextSpotTryAt).toBeUndefined();
      } else {
        expect(next.market).toBe('on-demand');
        const at = Date.parse(next.nextSpotTryAt ?? '');
        expect(at - Date.parse(next.events[0].eipMovedAt ?? '')).toBeGreaterThanOrEqual(29 * 60_000);
      }
      await stopGuardian(handle);
    });
  }
});

test('each round is in the ledger (hours by market, cost against all-on-demand, interruptions per pool) with its timeline', async () => {
  const plan = spotPlan();
  const happy = happyStubs(plan);
  const pool = { instanceType: 'g4dn.xlarge', availabilityZone: 'us-east-1a' };
  const { stubs } = guardianStubs(plan, undefined, {
    rankSpotPools: async (input) => ({
      ...(await happy.rankSpotPools!(input)),
      ...(input.interruptedInstanceId === GUARDED ? { interruptedPool: pool } : {}),
      prices: {
        spot: { 'g4dn.xlarge@us-east-1a': 0.2, 'g4dn.2xlarge@us-east-1a': 0.3 },
        onDemand: { 'g4dn.xlarge': 0.526, 'g4dn.2xlarge': 0.752 },
      },
    }),
    runRemote: async (input) => ({ ...(await happy.runRemote!(input)), agentOnlineAt: new Date().toISOString() }),
  });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan, 'spot');
    const first = await until(handle, 'guarding', (s) => s.state === 'guarding');
    expect(first.ledger).toMatchObject({ interruptions: {}, current: { instanceId: GUARDED, market: 'spot' } });

    await handle.signal(interruptionSignal, notice(GUARDED));
    const next = await until(
      (await nextRun(handle, handle.firstExecutionRunId)).run,
      'guarding',
      (s) => s.state === 'guarding',
    );
    const e = next.events[0];
    const timeline = [e.noticeAt, e.launchedAt, e.runningAt, e.agentOnlineAt, e.startedAt, e.healthyAt, e.eipMovedAt];
    expect(timeline.every((t) => typeof t === 'string')).toBe(true);
    const ms = timeline.map((t) => Date.parse(t ?? ''));
    expect(ms.slice(2)).toEqual([...ms.slice(2)].sort((a, b) => a - b));
    // The stub launches g4dn.xlarge in us-east-1a on Spot at 0.2 $/h.
    expect(e).toMatchObject({ instanceType: 'g4dn.xlarge', market: 'spot', pricePerHour: 0.2 });

    const ledger = next.ledger!;
    expect(ledger.interruptions).toEqual({ 'g4dn.xlarge@us-east-1a': 1 });
    expect(ledger.current).toMatchObject({
      instanceId: replacementId(1),
      market: 'spot',
      since: e.eipMovedAt,
      pricePerHour: 0.2,
      onDemandPerHour: 0.526,
    });
    // The guarded instance's segment learnt its pool and price from the round that replaced it.
    expect(ledger.unpricedHours).toBe(0);

    // An hour on Spot: 0.2 $ against 0.526 $ on-demand.
    await env.sleep(3_600_000);
    const later = await guardianStatus((await nextRun(handle, handle.firstExecutionRunId)).run);
    // The query answers at the workflow's clock (its last task); a reader counts on to its own now.
    const now = ledgerAt(later.ledgerBook!, await env.currentTimeMs());
    expect(now.hours.spot).toBeGreaterThanOrEqual(1);
    expect(now.costUsd.saved).toBeGreaterThan(0.3);
    expect(now.unpricedHours).toBe(0);
    await stopGuardian(handle);
  });
});

test('a warm spare: one that fails its periodic check is replaced by another; one that fails its quick check on a notice is dropped, and a launch answers the notice', async () => {
  const plan = workflowPlan({
    target: { market: 'spot' },
    spot: { pollInterval: '2m', standby: 'warm', standbyCheckInterval: '1m' },
    checks: { attempts: 1, interval: '1s' },
  });
  const slowVoice = new Set<string>();
  const deadServices = new Set<string>();
  const happy = happyStubs(plan);
  const { stubs, launches } = guardianStubs(plan, undefined, {
    voiceCloneTest: async (input) => {
      if (slowVoice.has(input.host))
        throw ApplicationFailure.create({ type: 'LimitExceeded', message: 'synthesis took 2.50 s, over the limit' });
      return happy.voiceCloneTest!(input);
    },
    checkServices: async (input) => {
      if (deadServices.has(input.instanceId))
        throw ApplicationFailure.create({ type: 'ServiceUnhealthy', message: 'backend: connection refused' });
      return happy.checkServices!(input);
    },
  });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan);
    const first = await until(handle, 'a spare', (s) => s.spare?.instanceId === replacementId(1));
    expect(first).toMatchObject({ instanceId: GUARDED, standby: 'warm', replacements: 0 });
    expect(launches[0].input).toMatchObject({ step: 'spare-1', imageId: IDS.goldenImage });
    expect('spec' in launches[0].input && launches[0].input.spec.onDemandFallback).toBe(false);

    // Its check a minute later fails: it goes, and another is made.
    slowVoice.add(replacementIp(1));
    await env.sleep(61_000);
    const second = await until(handle, 'a second spare', (s) => s.spare?.instanceId === replacementId(2));
    expect(second.spareEvents?.map((e) => e.what)).toEqual(['ready', 'check failed', 'ready']);
    expect(stubs.inputs('terminateInstance').map((i) => i.instanceId)).toEqual([replacementId(1)]);

    // A notice while the spare does not answer: the spare goes, a launch replaces the instance.
    deadServices.add(replacementId(2));
    await handle.signal(interruptionSignal, notice(GUARDED));
    const next = await until(
      (await nextRun(handle, handle.firstExecutionRunId)).run,
      'replaced by a launch, and a new spare',
      (s) => s.replacements === 1 && s.spare !== undefined,
    );
    expect(next.instanceId).toBe(replacementId(3));
    expect(next.events[0]).toMatchObject({ outcome: 'replaced', newInstanceId: replacementId(3) });
    expect(next.events[0].viaSpare).toBeUndefined();
    expect(launches.map((l) => l.input.step)).toEqual(['spare-1', 'spare-2', 'replace-1', 'spare-3']);
    expect(stubs.inputs('associateAddress').map((i) => i.instanceId)).toEqual([replacementId(3)]);
    expect(stubs.inputs('terminateInstance').map((i) => i.instanceId)).toEqual([
      replacementId(1),
      replacementId(2),
      GUARDED,
    ]);
    // Stopped: the spare goes with it.
    const last = await stopGuardian(handle);
    expect(last.spare).toBeUndefined();
    expect(stubs.inputs('terminateInstance').map((i) => i.instanceId)).toContain(replacementId(4));
  });
});

test("a month of guarding: it wakes every day for a fresh run, a recovery on day 20 replaces the instance, and no run's history nears 10,240 events", async () => {
  const DAY_MS = 24 * 3600_000;
  const plan = spotPlan();
  expect(plan.spot.wakeEvery).toBe('1d');
  // No router: a month of its polls would only slow the test server.
  const { stubs } = guardianStubs(plan, undefined, { ensureRouter: async () => ({ routerId: 'none' }) });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startGuardian(taskQueue, plan);
    await until(handle, 'guarding', (s) => s.state === 'guarding');

    await env.sleep(20 * DAY_MS - 3600_000);
    const { runId } = await handle.describe();
    const day20 = env.client.workflow.getHandle(handle.workflowId, runId);
    const before = await until(day20, 'guarding on day 20', (s) => s.state === 'guarding');
    // One run a day: the first, and one after each daily wake.
    expect(before.run).toBe(20);
    expect(before).toMatchObject({ replacements: 0, instanceId: GUARDED });

    await day20.signal(interruptionSignal, notice(GUARDED));
    const after = await until(
      (await nextRun(handle, runId)).run,
      'the replacement',
      (s) => s.replacements === 1 && s.state === 'guarding',
    );
    expect(after.instanceId).toBe(replacementId(1));

    await env.sleep(10 * DAY_MS);
    const end = await handle.describe();
    const last = await until(
      env.client.workflow.getHandle(handle.workflowId, end.runId),
      "guarding at the month's end",
      (s) => s.state === 'guarding',
    );
    expect(last).toMatchObject({ replacements: 1, instanceId: replacementId(1) });
    // 20 daily runs; the recovery's run, an hour before day 20 ended; then one a day after it:
    // nine more wake-ups by the month's end (day 30 less an hour).
    expect(last.run).toBe(30);

    // Every run of the chain is small: its history far below Temporal's 10,240-event warning.
    const sizes: number[] = [];
    for (let id: string | undefined = handle.firstExecutionRunId; id;) {
      const history: Awaited<ReturnType<WorkflowHandle['fetchHistory']>> = await env.client.workflow
        .getHandle(handle.workflowId, id)
        .fetchHistory();
      const events = history.events ?? [];
      sizes.push(events.length);
      id = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    }
    expect(sizes).toHaveLength(last.run);
    expect(Math.max(...sizes)).toBeLessThan(10_240);
    await handle.terminate('test over');
  });
});
