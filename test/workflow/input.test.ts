/**
 * What the workflows do with bad input and with their own bugs, on the time-skipping test
 * server with stubbed activities: a bad plan or router input fails the run at once as
 * InvalidInput, naming the field, before any activity; a bug in a guardian's round fails the
 * workflow task instead of counting as a failed replacement.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { guardianWorkflowId, routerWorkflowId } from '../../src/shared/constants';
import { interruptionSignal, type RouterInput } from '../../src/shared/spot';
import type { spotEventRouter, spotGuardian } from '../../src/workflows';
import {
  IDS,
  failureOf as failedWith,
  happyStubs,
  recordStubs,
  startMigration,
  useTimeSkipping,
  waitFor,
  withWorker,
  workflowPlan,
} from './helpers';

const server = useTimeSkipping();

/** The run's failure: an ApplicationFailure that no retry changes. */
async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const { failure } = await failedWith(handle);
  expect(failure.nonRetryable).toBe(true);
  return failure;
}

test('a migration started with a bad plan (not through the CLI) fails at once as InvalidInput, naming the field; no activity runs', async () => {
  const plan = { ...workflowPlan(), checks: { ...workflowPlan().checks, interval: 'often' } };
  const stubs = recordStubs(happyStubs(workflowPlan()));
  await withWorker(server(), stubs.activities, async (taskQueue) => {
    const failure = await failureOf(await startMigration(server(), taskQueue, plan as never));
    expect(failure.type).toBe('InvalidInput');
    expect(failure.message).toMatch(/^invalid plan in the input of migrateToGpu:\n {2}- checks\.interval: expected /);
  });
  expect(stubs.calls).toEqual([]);
});

test('a guardian or a router started with bad input fails at once as InvalidInput', async () => {
  const plan = workflowPlan({ target: { market: 'spot' } });
  const stubs = recordStubs(happyStubs(plan));
  await withWorker(server(), stubs.activities, async (taskQueue) => {
    const guardian = await server().client.workflow.start<typeof spotGuardian>('spotGuardian', {
      taskQueue,
      workflowId: guardianWorkflowId(plan.name),
      args: [{ plan: { ...plan, region: 42 } as never, instanceId: IDS.newInstance }],
    });
    const g = await failureOf(guardian);
    expect(g.type).toBe('InvalidInput');
    expect(g.message).toContain('- region: expected');

    const other = await server().client.workflow.start<typeof spotGuardian>('spotGuardian', {
      taskQueue,
      workflowId: `${guardianWorkflowId(plan.name)}-2`,
      args: [{ plan, instanceId: 'web-1' }],
    });
    expect((await failureOf(other)).message).toBe('invalid input of spotGuardian: instanceId "web-1": expected "i-…"');

    const router = await server().client.workflow.start<typeof spotEventRouter>('spotEventRouter', {
      taskQueue,
      workflowId: routerWorkflowId('nowhere'),
      args: [{ region: 'nowhere', queueUrls: [], pollIntervalMs: 5000 } satisfies RouterInput],
    });
    const r = await failureOf(router);
    expect(r.type).toBe('InvalidInput');
    expect(r.message).toBe(
      'invalid input of spotEventRouter: region "nowhere": expected an AWS region such as us-east-1',
    );
  });
  expect(stubs.calls).toEqual([]);
});

test("a bug in a guardian's round fails the workflow task: it is not counted as a failed replacement, nothing is terminated or retried", async () => {
  const plan = workflowPlan({ target: { market: 'spot' }, spot: { pollInterval: '2m' } });
  const happy = happyStubs(plan);
  // A launch whose answer the round cannot read, as a changed activity would give an old workflow.
  const stubs = recordStubs({ ...happy, launchInstance: async () => undefined as never });
  await withWorker(server(), stubs.activities, async (taskQueue) => {
    const handle = await server().client.workflow.start<typeof spotGuardian>('spotGuardian', {
      taskQueue,
      workflowId: guardianWorkflowId(plan.name),
      args: [{ plan, instanceId: IDS.newInstance, goldenImageId: IDS.goldenImage }],
    });
    await handle.signal(interruptionSignal, { instanceId: IDS.newInstance, kind: 'interruption', source: 'queue' });
    const failed = await waitFor(
      'a failed workflow task',
      async () => (await handle.fetchHistory()).events ?? [],
      (events) => events.some((e) => e.workflowTaskFailedEventAttributes?.failure?.message?.includes('instanceId')),
    );
    const failure = failed.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes?.failure;
    expect(failure?.message).toMatch(/TypeError|Cannot read properties of undefined/);
    expect((await handle.describe()).status.name).toBe('RUNNING');
    // The old catch would have undone the launch and tried again.
    expect(stubs.names(['terminateLaunched', 'associateAddress', 'terminateInstance'])).toEqual([]);
    expect(stubs.names(['launchInstance'])).toEqual(['launchInstance']);
    await handle.terminate('test over');
  });
});
