/**
 * The rollback of migrateToGpu on the time-skipping test server: a phase that fails for good
 * runs the undo steps registered before it, in reverse order of registration, each recorded in
 * the status; an undo that fails does not keep the others from running.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import { migrationWorkflowId } from '../../src/shared/constants';
import { ErrorType } from '../../src/shared/errors';
import { decideUpdate, type PhaseName, type PhaseState } from '../../src/shared/migration';
import {
  IDS,
  awaitingApproval,
  failureOf,
  heldAfterCutOver,
  happyStubs,
  migrationStatus,
  phaseOf,
  recordStubs,
  startMigration,
  startTimeSkipping,
  withWorker,
  workflowBundle,
  workflowPlan,
  type Stubs,
} from './helpers';

/** The undo activities, and the stop-old ones, as the stubs see them. */
const UNDO_NAMES = ['associateAddress', 'undoIngress', 'terminateLaunched', 'startInstance', 'stopInstance'];

let env: TestWorkflowEnvironment;
beforeAll(() => workflowBundle(), 60_000);
// A server of its own for each test (see startTimeSkipping).
beforeEach(async () => {
  env = await startTimeSkipping();
}, 30_000);
afterEach(() => env?.teardown());

/** Inputs of the calls a stub failed (the recorder keeps the same objects). */
const failed = new WeakSet<object>();

/** The calls after the first one of `name` failed: what the rollback did, in order. */
function callsAfterFailureOf(stubs: Stubs, name: string): { name: string; input: Record<string, unknown> }[] {
  const at = stubs.calls.findIndex((c) => c.name === name && failed.has(c.input));
  if (at < 0) throw new Error(`${name} never failed`);
  return stubs.calls.slice(at + 1);
}

/** `happy`, except that the calls `when` picks (default: all) fail at once, non-retryable. */
function failing<F extends (input: never) => Promise<unknown>>(
  happy: F | undefined,
  type: string,
  message: string,
  when: (input: Parameters<F>[0]) => boolean = () => true,
): F {
  if (!happy) throw new Error('no happy stub to fail');
  return (async (input: Parameters<F>[0]) => {
    if (!when(input)) return happy(input);
    failed.add(input as object);
    throw ApplicationFailure.nonRetryable(message, type);
  }) as F;
}

const states = (phases: { name: PhaseName; state: PhaseState }[], names: PhaseName[]) =>
  names.map((n) => phases.find((p) => p.name === n)?.state);

/** Runs the migration to its failure with the happy stubs, `override` replacing some. */
async function runToFailure(override: (happy: Partial<Activities>) => Partial<Activities>, keepFailed = false) {
  const plan = workflowPlan();
  const happy = happyStubs(plan);
  const stubs = recordStubs({ ...happy, ...override(happy) });
  return withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startMigration(env, taskQueue, plan, { keepFailed });
    const { failure, report } = await failureOf(handle);
    return { plan, stubs, failure, report, status: await migrationStatus(handle) };
  });
}

test('the performance test fails for good: the Elastic IP goes back, then the ingress is undone, then the new instance is terminated', async () => {
  const { plan, stubs, failure, report, status } = await runToFailure((happy) => ({
    latencyTest: failing(happy.latencyTest, ErrorType.LimitExceeded, 'average 90 ms > 50 ms'),
  }));

  expect(failure.type).toBe(ErrorType.LimitExceeded);
  expect(failure.message).toBe('migration failed and rolled back: average 90 ms > 50 ms');
  const rollback = callsAfterFailureOf(stubs, 'latencyTest');
  expect(rollback.map((c) => c.name)).toEqual(['associateAddress', 'undoIngress', 'terminateLaunched', 'prices']);
  // People are told once the rollback is done, with the error.
  expect(stubs.notifications.map((n) => [n.kind, 'error' in n ? n.error : undefined])).toEqual([
    ['rolled-back', 'average 90 ms > 50 ms'],
  ]);
  expect(rollback[0].input).toMatchObject({
    region: IDS.region,
    allocationId: IDS.allocation,
    instanceId: IDS.oldInstance,
  });
  expect(rollback[1].input).toMatchObject({ restore: [] });
  expect(rollback[2].input).toMatchObject({ workflowId: migrationWorkflowId(plan.name), step: 'launch' });
  // Nothing is approved or stopped on the way.
  expect(stubs.names(['stopInstance', 'startInstance', 'createImage'])).toEqual([]);

  expect(report.outcome).toBe('rolled back');
  expect(report.compensations).toEqual([
    { name: `move the Elastic IP back to ${IDS.oldInstance}`, state: 'done' },
    { name: 'undo the security-group changes', state: 'done' },
    { name: 'terminate the new instance', state: 'done' },
  ]);
  expect(status.phase).toBe('rolled-back');
  expect(status.error).toMatchObject({ type: ErrorType.LimitExceeded, phase: 'performance' });
  expect(states(status.phases, ['launch', 'security-group', 'eip-switch', 'performance', 'stop-old'])).toEqual([
    'compensated',
    'compensated',
    'compensated',
    'failed',
    'pending',
  ]);
  expect(phaseOf(status, 'performance')?.lastError).toBe('average 90 ms > 50 ms');
});

test('the connectivity check fails for good before the switch: the ingress is undone, then the new instance terminated; the Elastic IP never moves', async () => {
  const { stubs, failure, report } = await runToFailure((happy) => ({
    checkServices: failing(
      happy.checkServices,
      ErrorType.ServiceCheckFailed,
      `not healthy at ${IDS.newPublicIp}: backend (:8000, http) ECONNREFUSED`,
      (i) => i.scope === 'public' && i.host === IDS.newPublicIp,
    ),
  }));

  expect(failure.type).toBe(ErrorType.ServiceCheckFailed);
  expect(callsAfterFailureOf(stubs, 'checkServices').map((c) => c.name)).toEqual([
    'undoIngress',
    'terminateLaunched',
    'prices',
  ]);
  expect(stubs.names(['associateAddress'])).toEqual([]);
  expect(report.compensations.map((c) => [c.name, c.state])).toEqual([
    ['undo the security-group changes', 'done'],
    ['terminate the new instance', 'done'],
  ]);
  expect(states(report.phases, ['connectivity', 'eip-switch'])).toEqual(['failed', 'pending']);
});

test('the backup image fails for good after the approval: the old instance is started again first, then the rest in reverse', async () => {
  const plan = workflowPlan();
  const happy = happyStubs(plan);
  const stubs = recordStubs({
    ...happy,
    createImage: failing(
      happy.createImage,
      'InvalidAMIName.Duplicate',
      'AMI name is already in use',
      (i) => i.step === 'backup',
    ),
  });
  const { failure, report } = await withWorker(env, stubs.activities, async (taskQueue) => {
    const handle = await startMigration(env, taskQueue, plan);
    await awaitingApproval(handle);
    await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
    return failureOf(handle);
  });

  expect(failure.type).toBe('InvalidAMIName.Duplicate');
  expect(
    callsAfterFailureOf(stubs, 'createImage').map((c) => [c.name, c.input.instanceId ?? c.input.sourceInstanceId]),
  ).toEqual([
    ['startInstance', IDS.oldInstance],
    // The golden image made during the wait: the new instance is not kept.
    ['discardImages', IDS.newInstance],
    ['associateAddress', IDS.oldInstance],
    ['undoIngress', undefined],
    ['terminateLaunched', undefined],
    ['prices', undefined],
  ]);
  expect(stubs.names(UNDO_NAMES)).toEqual([
    'associateAddress', // the switch
    'stopInstance',
    'startInstance',
    'associateAddress',
    'undoIngress',
    'terminateLaunched',
  ]);
  expect(report.compensations.map((c) => c.name)).toEqual([
    `start ${IDS.oldInstance} again`,
    `discard the golden image of ${IDS.newInstance}`,
    `move the Elastic IP back to ${IDS.oldInstance}`,
    'undo the security-group changes',
    'terminate the new instance',
  ]);
  expect(states(report.phases, ['eip-switch', 'stop-old'])).toEqual(['compensated', 'failed']);
});

test('an undo step that fails for good is recorded as failed, the next ones still run, and the run ends failed', async () => {
  const { stubs, failure, report, status } = await runToFailure((happy) => ({
    voiceCloneTest: failing(
      happy.voiceCloneTest,
      ErrorType.LimitExceeded,
      'synthesis took 3.10 s, over the limit of 2 s',
      (i) => i.host === IDS.elasticIp,
    ),
    undoIngress: async () => {
      throw ApplicationFailure.nonRetryable('the group is gone', 'InvalidGroup.NotFound');
    },
  }));

  expect(failure.type).toBe(ErrorType.LimitExceeded);
  expect(failure.message).toBe(
    'migration failed and its rollback did not finish: synthesis took 3.10 s, over the limit of 2 s',
  );
  expect(callsAfterFailureOf(stubs, 'voiceCloneTest').map((c) => c.name)).toEqual([
    'associateAddress',
    'undoIngress',
    'terminateLaunched',
    'prices',
  ]);
  expect(report.outcome).toBe('failed');
  expect(report.compensations).toEqual([
    { name: `move the Elastic IP back to ${IDS.oldInstance}`, state: 'done' },
    { name: 'undo the security-group changes', state: 'failed', detail: 'the group is gone' },
    { name: 'terminate the new instance', state: 'done' },
  ]);
  expect(status.phase).toBe('failed');
  // Only what was undone is compensated.
  expect(states(status.phases, ['launch', 'security-group', 'eip-switch'])).toEqual([
    'compensated',
    'succeeded',
    'compensated',
  ]);
});

test('with keepFailed the new instance is left running; the other undo steps run in the same order', async () => {
  const { stubs, report, status } = await runToFailure(
    (happy) => ({
      latencyTest: failing(happy.latencyTest, ErrorType.LimitExceeded, 'average 90 ms > 50 ms'),
    }),
    true,
  );

  expect(callsAfterFailureOf(stubs, 'latencyTest').map((c) => c.name)).toEqual([
    'associateAddress',
    'undoIngress',
    'prices',
  ]);
  expect(stubs.names(['terminateLaunched', 'terminateInstance'])).toEqual([]);
  expect(report.compensations.map((c) => [c.name, c.state])).toEqual([
    [`move the Elastic IP back to ${IDS.oldInstance}`, 'done'],
    ['undo the security-group changes', 'done'],
    ['terminate the new instance', 'skipped'],
  ]);
  expect(phaseOf(status, 'launch')?.state).toBe('succeeded');
});

test('a cancel after the cut-over rolls nothing back and is not reported as rolled back: the migration stands', async () => {
  const plan = workflowPlan();
  // Held once the migration stands, where it cleans up older golden images.
  const held = heldAfterCutOver(happyStubs(plan));
  const stubs = recordStubs(held.stubs);
  const { err, status } = await withWorker(env, stubs.activities, held.release, async (taskQueue) => {
    const handle = await startMigration(env, taskQueue, plan);
    await awaitingApproval(handle);
    await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
    await held.reached();
    await handle.cancel();
    held.release();
    const e = await handle.result().then(
      () => undefined,
      (x: unknown) => x,
    );
    return { err: e, status: await migrationStatus(handle) };
  });

  // The run ends cancelled, as asked; nothing was undone: the Elastic IP stays on the new
  // instance and the old one stays stopped.
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
  expect(stubs.names(UNDO_NAMES)).toEqual(['associateAddress', 'stopInstance']);
  expect(status.phase).toBe('cancelled');
  expect(status.compensations).toEqual([]);
  expect(states(status.phases, ['eip-switch', 'stop-old'])).toEqual(['succeeded', 'succeeded']);
  expect(status.error?.message).toMatch(/cancel/i);
});
