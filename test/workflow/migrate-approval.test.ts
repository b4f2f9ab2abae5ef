/**
 * The approval step of migrateToGpu on the time-skipping test server, every activity stubbed:
 * approved by signal and by update, rejected (the rollback runs), the plan's default timeout of
 * seven days (in seconds of real time), and messages that are ignored without deciding.
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { defineQuery } from '@temporalio/workflow';
import { migrationWorkflowId } from '../../src/shared/constants';
import { ErrorType } from '../../src/shared/errors';
import type { MigrationReport } from '../../src/shared/report';
import type { migrateToGpu } from '../../src/workflows';
import {
  approveSignal,
  decideUpdate,
  rejectSignal,
  type ApprovePayload,
  type MigrationStatus,
  type PhaseName,
  type RejectPayload,
} from '../../src/shared/migration';
import {
  IDS,
  awaitingApproval,
  failureOf,
  heldAfterCutOver,
  happyStubs,
  migrationStatus as status,
  phaseOf,
  queryOf,
  recordStubs,
  startMigration,
  startTimeSkipping,
  waitFor,
  withWorker,
  workflowBundle,
  workflowPlan,
  type Stubs,
} from './helpers';

const DAY = 24 * 3600 * 1000;
/** What the Web UI reads: the run's current details among its metadata. */
const workflowMetadataQuery = defineQuery<{ currentDetails: string }>('__temporal_workflow_metadata');
/** What a rollback and the cut-over do; the approval decides which of them runs. */
const DECIDED_BY_APPROVAL = ['stopInstance', 'createImage', 'startInstance', 'undoIngress', 'terminateLaunched'];
/** The calls of DECIDED_BY_APPROVAL so far, but the golden image, which is made during the wait. */
const decided = (stubs: Stubs) =>
  stubs.calls
    .filter((c) => DECIDED_BY_APPROVAL.includes(c.name) && !(c.name === 'createImage' && c.input.step === 'golden'))
    .map((c) => c.name);

let env: TestWorkflowEnvironment;
beforeAll(() => workflowBundle(), 60_000);
// A server of its own for each test (see startTimeSkipping).
beforeEach(async () => {
  env = await startTimeSkipping();
}, 30_000);
afterEach(() => env?.teardown());

const start = (taskQueue: string, plan: Parameters<typeof startMigration>[2]) => startMigration(env, taskQueue, plan);

/**
 * The cut-over ran: the old instance stopped and imaged, nothing undone; the new one imaged while
 * the person decided.
 */
function expectCutOver(stubs: Stubs): void {
  expect(decided(stubs)).toEqual(['stopInstance', 'createImage']);
  expect(stubs.inputs('stopInstance')).toEqual([
    expect.objectContaining({ region: IDS.region, instanceId: IDS.oldInstance }),
  ]);
  expect(stubs.inputs('createImage').map((i) => [i.step, i.instanceId])).toEqual([
    ['golden', IDS.newInstance],
    ['backup', IDS.oldInstance],
  ]);
  expect(stubs.names()).not.toContain('discardImages');
}

test('approved by the approve signal: the old instance is stopped after its backup, and the run completes', async () => {
  const plan = workflowPlan();
  const stubs = recordStubs(happyStubs(plan));
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    const waiting = await awaitingApproval(handle);
    expect(waiting.approval).toBeUndefined();
    expect(phaseOf(waiting, 'stop-old')?.state).toBe('pending');
    expect(decided(stubs)).toEqual([]);

    await handle.signal(approveSignal, { by: 'alice', comment: 'numbers look good' });
    const report = await handle.result();

    expect(report.outcome).toBe('completed');
    expect(report.approval).toMatchObject({
      decision: 'approved',
      by: 'alice',
      comment: 'numbers look good',
      via: 'signal',
    });
    expect(report.images).toMatchObject({ backup: IDS.backupImage, golden: IDS.goldenImage });
    expect(report.compensations).toEqual([]);
    // Monthly prices come from the prices activity, with its table's date: no table in workflow code.
    expect(report.cost).toMatchObject({ priceTableDate: '2026-01-15', hoursPerMonth: 720 });
    expect(report.cost.rows.find((r) => r.label === 'after' && r.market === 'spot')?.perMonth).toEqual({
      value: 144,
      unit: 'USD',
      source: 'measured',
    });
    expectCutOver(stubs);
    expect(stubs.notifications.map((n) => n.kind)).toEqual(['awaiting-approval', 'approved', 'completed']);

    const done = await status(handle);
    expect(done.phase).toBe('completed');
    expect(phaseOf(done, 'stop-old')?.state).toBe('succeeded');
  });
});

test('approved by the decide update: it answers with the record at once, and the run completes', async () => {
  const plan = workflowPlan({ approval: { approvers: ['bob'] } });
  const stubs = recordStubs(happyStubs(plan));
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    await awaitingApproval(handle);

    // Someone not in approval.approvers: the validator refuses, nothing is recorded.
    const refused = await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'mallory' }] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
    expect((refused as WorkflowUpdateFailedError).cause?.message).toContain('mallory is not an approver');
    const unchanged = await status(handle);
    expect(unchanged.phase).toBe('awaiting-approval');
    expect(unchanged.approval).toBeUndefined();

    const record = await handle.executeUpdate(decideUpdate, {
      args: [{ decision: 'approve', by: ' bob ', comment: 'ship it' }],
    });
    expect(record).toMatchObject({ decision: 'approved', by: 'bob', comment: 'ship it', via: 'update' });
    const report = await handle.result();
    expect(report.outcome).toBe('completed');
    expect(report.approval).toEqual(record);
    expectCutOver(stubs);
  });
});

/** Waits until the run awaits a decision and has made the golden image it makes meanwhile. */
async function waitingWithGolden(handle: WorkflowHandle<typeof migrateToGpu>): Promise<void> {
  await awaitingApproval(handle);
  await waitFor(
    'the golden image, made during the wait',
    () => status(handle),
    (s) => s.golden?.state === 'made',
  );
}

test('the new instance lost during the wait (terminated silently, the Elastic IP gone with it): after the approval the old instance is not stopped, and the run rolls back onto it', async () => {
  const plan = workflowPlan({ target: { market: 'on-demand' } });
  const happy = happyStubs(plan);
  let lost = false;
  const stubs = recordStubs({
    ...happy,
    getInstance: async (input) =>
      lost && input.instanceId === IDS.newInstance
        ? { ...(await happy.getInstance!(input)), state: 'terminated' }
        : happy.getInstance!(input),
  });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    await waitingWithGolden(handle);
    lost = true;
    await handle.signal(approveSignal, { by: 'alice' });
    const { failure, report } = await failureOf(handle);

    expect(failure.type).toBe(ErrorType.InstanceNotRunning);
    expect(failure.message).toContain(
      `the new instance ${IDS.newInstance} is terminated after the decision: the old instance ${IDS.oldInstance} is not stopped`,
    );
    expect(report.outcome).toBe('rolled back');
    expect(report.approval).toMatchObject({ decision: 'approved', by: 'alice' });
    // Never stopped, nor imaged as a backup; the Elastic IP back on it.
    expect(stubs.inputs('stopInstance')).toEqual([]);
    expect(stubs.inputs('createImage').map((i) => i.step)).toEqual(['golden']);
    expect(stubs.inputs('associateAddress').map((i) => i.instanceId)).toEqual([IDS.newInstance, IDS.oldInstance]);
    expect(phaseOf(await status(handle), 'stop-old')?.state).toBe('failed');
  });
});

test('the new on-demand instance stops running during the wait: its watch ends the wait, and the run rolls back with nobody deciding', async () => {
  const plan = workflowPlan({ target: { market: 'on-demand' }, approval: { watchInterval: '1m' } });
  const happy = happyStubs(plan);
  // The instance is found stopped once its golden image is made: the time-skipping server
  // answers ACTIVITY_UNKNOWN to the cancel of an activity that completes in the same workflow
  // task (temporalio/sdk-typescript#1058, open); the dev server takes it, and spot-relaunch's
  // "lost while its golden image is made" covers that path there.
  let made!: () => void;
  const golden = new Promise<void>((resolve) => (made = resolve));
  const stubs = recordStubs({
    ...happy,
    createImage: async (input) => {
      const image = await happy.createImage!(input);
      made();
      return image;
    },
    watchInstance: async ({ instanceId }) => {
      await golden;
      await new Promise((resolve) => setTimeout(resolve, 200));
      return { instanceId, state: 'terminated', reason: 'Client.UserInitiatedShutdown' };
    },
  });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    const { failure, report } = await failureOf(handle);

    expect(stubs.inputs('watchInstance')).toEqual([
      { region: plan.region, instanceId: IDS.newInstance, everyMs: 60_000 },
    ]);
    expect(failure.type).toBe(ErrorType.InstanceNotRunning);
    expect(failure.message).toContain(
      `the new instance ${IDS.newInstance} stopped running (terminated, seen by the watch) while awaiting approval: the Elastic IP goes back to ${IDS.oldInstance}, which still runs`,
    );
    expect(report.outcome).toBe('rolled back');
    expect(report.approval).toBeUndefined();
    expect(phaseOf(report, 'performance')?.state).toBe('succeeded');
    // Nobody decided: the Elastic IP went back at once, and the old instance was never touched.
    expect(stubs.inputs('associateAddress').map((i) => i.instanceId)).toEqual([IDS.newInstance, IDS.oldInstance]);
    expect(stubs.inputs('stopInstance')).toEqual([]);
    expect(stubs.inputs('terminateLaunched')).toHaveLength(1);
  });
});

test('rejected by the reject signal: the undo steps run, the old instance is never stopped, the run fails as Rejected', async () => {
  const plan = workflowPlan();
  const stubs = recordStubs(happyStubs(plan));
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    await waitingWithGolden(handle);
    const before = stubs.calls.length;

    await handle.signal(rejectSignal, { by: 'dave', reason: 'p95 too high' });
    const { failure, report } = await failureOf(handle);

    expect(failure.type).toBe(ErrorType.Rejected);
    expect(failure.message).toContain('migration rejected and rolled back: rejected by dave: p95 too high');
    expect(report.outcome).toBe('rolled back');
    expect(report.approval).toMatchObject({ decision: 'rejected', by: 'dave', comment: 'p95 too high', via: 'signal' });
    // After the decision: the golden image made during the wait discarded, the Elastic IP back to
    // the old instance, the ingress undone, the new instance terminated, then the report's prices.
    expect(stubs.calls.slice(before).map((c) => c.name)).toEqual([
      'discardImages',
      'associateAddress',
      'undoIngress',
      'terminateLaunched',
      'prices',
    ]);
    expect(stubs.inputs('associateAddress').map((i) => i.instanceId)).toEqual([IDS.newInstance, IDS.oldInstance]);
    expect(stubs.inputs('terminateLaunched')).toEqual([
      expect.objectContaining({ workflowId: migrationWorkflowId(plan.name), step: 'launch' }),
    ]);
    expect(stubs.inputs('discardImages')).toEqual([
      expect.objectContaining({ step: 'golden', sourceInstanceId: IDS.newInstance }),
    ]);
    expect(report.compensations.map((c) => c.state)).toEqual(['done', 'done', 'done', 'done']);
    const after = await status(handle);
    expect(after.phase).toBe('rolled-back');
    expect(phaseOf(after, 'stop-old')?.state).toBe('pending');
    const undone: PhaseName[] = ['launch', 'security-group', 'eip-switch'];
    expect(undone.map((p) => phaseOf(after, p)?.state)).toEqual(['compensated', 'compensated', 'compensated']);
  });
});

/** The run's report, once it ended "approval timed out" seven days (and less than a minute) after it asked. */
async function timedOutAfterAWeek(handle: WorkflowHandle<typeof migrateToGpu>): Promise<MigrationReport> {
  const report = await handle.result();
  expect(report.outcome).toBe('approval timed out');
  expect(report.approval?.decision).toBe('timed-out');
  const waitedMs = Date.parse(report.approval?.at ?? '') - Date.parse(phaseOf(report, 'performance')?.endedAt ?? '');
  expect(waitedMs).toBeGreaterThanOrEqual(7 * DAY);
  expect(waitedMs).toBeLessThan(7 * DAY + 60_000);
  return report;
}

test("nobody decides within the plan's default approval.timeout (7 days): the run completes with the old instance still running", async () => {
  const plan = workflowPlan();
  expect(plan.approval.timeout).toBe('7d');
  const stubs = recordStubs(happyStubs(plan));
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    await awaitingApproval(handle);

    // A minute short of seven days: still waiting.
    await env.sleep(7 * DAY - 60_000);
    const nearly = await status(handle);
    expect(nearly.phase).toBe('awaiting-approval');
    expect(nearly.approval).toBeUndefined();

    const report = await timedOutAfterAWeek(handle);
    expect(report.warnings).toContainEqual(
      expect.stringContaining(`approval timed out after 7d: the old instance ${IDS.oldInstance} still runs`),
    );
    // The watch of the new instance fails at once in these tests: the wait went on without it.
    expect(report.warnings).toContainEqual(
      expect.stringContaining(
        `the watch of ${IDS.newInstance} during the approval wait failed, and the wait went on without it`,
      ),
    );
    expect(phaseOf(report, 'stop-old')?.state).toBe('skipped');
    // Nothing stopped, nothing undone: the Elastic IP stays on the new instance, which is imaged.
    expect(stubs.names(DECIDED_BY_APPROVAL)).toEqual(['createImage']);
    expect(stubs.inputs('createImage')[0]).toMatchObject({ step: 'golden', instanceId: IDS.newInstance });
    expect(stubs.inputs('associateAddress').map((i) => i.instanceId)).toEqual([IDS.newInstance]);
    expect(report.compensations).toEqual([]);
  });
});

test('a Spot plan with the default 7-day timeout: nobody decides, the outcome is "approval timed out", and the guardian is started', async () => {
  const plan = workflowPlan({ target: { market: 'spot' }, spot: { pollInterval: '2m' } });
  expect(plan.approval.timeout).toBe('7d');
  // The region's router is not run here: seven days of its polls would only slow the test server.
  const stubs = recordStubs({ ...happyStubs(plan), ensureRouter: async () => ({ routerId: 'none' }) });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    await awaitingApproval(handle);
    const report = await timedOutAfterAWeek(handle);
    expect(stubs.names(['stopInstance'])).toEqual([]);
    expect(report.guardianWorkflowId).toBe(`spot-guardian-${plan.name}`);
    const guardian = await env.client.workflow.getHandle(report.guardianWorkflowId as string).describe();
    expect(guardian.status.name).toBe('RUNNING');
    // It guards the new instance (it tags it as its own).
    await waitFor(
      'the guardian to tag the new instance',
      async () => stubs.inputs('markGuarded'),
      (inputs) => inputs.some((i) => i.instanceId === IDS.newInstance && i.guardianId === report.guardianWorkflowId),
    );
    await env.client.workflow.getHandle(report.guardianWorkflowId as string).terminate('test over');
  });
});

test('approved on day 6 of the 7-day wait: the old instance is stopped then, and the run completes', async () => {
  const plan = workflowPlan();
  const stubs = recordStubs(happyStubs(plan));
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    const waiting = await awaitingApproval(handle);
    const askedAt = Date.parse(phaseOf(waiting, 'performance')?.endedAt ?? '');
    await env.sleep(6 * DAY);
    const day6 = await status(handle);
    expect(day6.phase).toBe('awaiting-approval');
    expect(decided(stubs)).toEqual([]);

    await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'carol' }] });
    const report = await handle.result();
    expect(report.outcome).toBe('completed');
    expect(report.approval).toMatchObject({ decision: 'approved', by: 'carol', via: 'update' });
    const approvedAfterMs = Date.parse(report.approval?.at ?? '') - askedAt;
    expect(approvedAfterMs).toBeGreaterThanOrEqual(6 * DAY);
    expect(approvedAfterMs).toBeLessThan(7 * DAY);
    expect(phaseOf(report, 'stop-old')?.state).toBe('succeeded');
    expect(stubs.names(['stopInstance'])).toEqual(['stopInstance']);
    expect(report.warnings.join('\n')).not.toContain('timed out');
  });
});

test('invalid approval signals are recorded as ignored and decide nothing', async () => {
  const plan = workflowPlan({ approval: { approvers: ['erin'] } });
  const stubs = recordStubs(happyStubs(plan));
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    await awaitingApproval(handle);

    await handle.signal(approveSignal, 'yes' as unknown as ApprovePayload);
    await handle.signal(approveSignal, { comment: 'no name' } as unknown as ApprovePayload);
    await handle.signal(rejectSignal, { by: 'erin' } as RejectPayload);
    await handle.signal(approveSignal, { by: 'frank' });
    // A misspelt name is refused too, not left waiting unseen.
    await handle.signal('aprove', { by: 'erin' });
    const ignored = await waitFor(
      'five ignored messages',
      () => status(handle),
      (s) => s.ignoredMessages.length >= 5,
    );

    expect(ignored.ignoredMessages.map((m) => [m.name, m.reason])).toEqual([
      ['approve', expect.stringContaining('approve needs a JSON object payload')],
      ['approve', expect.stringContaining('approve needs "by"')],
      ['reject', expect.stringContaining('reject needs "reason"')],
      ['approve', expect.stringContaining('frank is not an approver')],
      ['aprove', expect.stringContaining('no signal "aprove" here: send approve')],
    ]);
    // The Web UI's current details show the latest refusals at once, with their reasons.
    const { currentDetails } = await queryOf(handle, workflowMetadataQuery);
    expect(currentDetails).toContain('**Refused, not acted on**');
    expect(currentDetails).toMatch(
      /`aprove`: no signal "aprove" here[^\n]*\n- [^\n]*`approve`: frank is not an approver/,
    );
    expect(currentDetails).toContain('reject needs "reason"');
    expect(currentDetails).not.toContain('approve needs "by"'); // only the latest three
    expect(ignored.phase).toBe('awaiting-approval');
    expect(ignored.approval).toBeUndefined();
    expect(decided(stubs)).toEqual([]);

    await handle.signal(approveSignal, { by: 'erin' });
    const report = await handle.result();
    expect(report.approval).toMatchObject({ decision: 'approved', by: 'erin', via: 'signal' });
    expectCutOver(stubs);
  });
});

test('an approval sent before the wait is ignored, and the run still waits for a decision', async () => {
  const plan = workflowPlan();
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const happy = happyStubs(plan);
  const stubs = recordStubs({
    ...happy,
    launchInstance: async (input) => {
      await released;
      return happy.launchInstance!(input);
    },
  });
  await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    await waitFor(
      'the launch',
      () => status(handle),
      (s) => s.phase === 'launch',
    );
    await handle.signal(approveSignal, { by: 'gina' });
    const early: MigrationStatus = await waitFor(
      'the early approval ignored',
      () => status(handle),
      (s) => s.ignoredMessages.length === 1,
    );
    expect(early.ignoredMessages[0]).toMatchObject({
      name: 'approve',
      reason: 'no decision is awaited now (phase: launch)',
    });
    release();

    const waiting = await awaitingApproval(handle);
    expect(waiting.approval).toBeUndefined();
    expect(decided(stubs)).toEqual([]);
    await handle.signal(approveSignal, { by: 'gina' });
    expect((await handle.result()).approval).toMatchObject({ decision: 'approved', by: 'gina' });
  });
});

test('after the approval timed out nothing says a person is awaited, and a late decision is refused as too late', async () => {
  const plan = workflowPlan({ approval: { timeout: '1h' } });
  // Held once the migration stands, where it cleans up older golden images.
  const held = heldAfterCutOver(happyStubs(plan));
  const stubs = recordStubs(held.stubs);
  await withWorker(env, stubs.activities, held.release, async (taskQueue) => {
    const handle = await start(taskQueue, plan);
    await awaitingApproval(handle);
    await env.sleep(60 * 60_000 + 1_000);
    await held.reached();

    const now = await status(handle);
    expect(now.phase).toBe('finalizing');
    expect(now.approval).toMatchObject({ decision: 'timed-out' });
    const meta = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
    expect(meta.currentDetails).toContain('finalizing');
    expect(meta.currentDetails).not.toMatch(/waiting for a person/i);

    const late = await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'alice' }] }).then(
      () => 'accepted',
      (err: unknown) => (err as WorkflowUpdateFailedError).cause?.message ?? String(err),
    );
    expect(late).toMatch(
      /^too late: the approval timed out at \d{4}-.* \(approval\.timeout 1h\); .* the old instance still runs: stop it by hand/,
    );
    await handle.signal(approveSignal, { by: 'bob' });
    const ignored = await waitFor(
      'the late approval recorded as ignored',
      () => status(handle),
      (s) => s.ignoredMessages.length >= 1,
    );
    expect(ignored.ignoredMessages[0]).toMatchObject({ name: 'approve', reason: expect.stringMatching(/^too late/) });

    held.release();
    const report = await handle.result();
    expect(report.outcome).toBe('approval timed out');
    expect(stubs.names(['stopInstance'])).toEqual([]);
  });
});
