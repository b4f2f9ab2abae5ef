/**
 * Worker Versioning on the dev server: a migration and its guardian start on version 1 of the
 * code; version 2, with a changed guardian, is deployed and made current with the `temporal`
 * CLI's command from docs/operations.md. The migration, pinned, finishes on version 1; the
 * guardian moves to version 2 at its next run (it wakes every spot.wakeEvery for that).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { makeFirstVersionCurrent } from '../../src/deployment';
import { guardianWorkflowId } from '../../src/shared/constants';
import { decideUpdate } from '../../src/shared/migration';
import { guardianStatusQuery } from '../../src/shared/spot';
import { temporalAddress, temporalNamespace } from '../harness/env';
import { useIntegration } from '../harness/lifecycle';
import { startMigration, waitForPhase } from '../harness/migration';
import { pollUntil } from '../harness/net';
import { startScenario } from '../harness/scenario';
import { testPlan } from '../harness/seed';
import { createQueue } from '../harness/spot';
import { toolPaths } from '../harness/tools';
import { startWorker, workflowBundle } from '../harness/worker';
import { silentLogger } from '../../src/bundle';

const REGION = 'ap-south-1';
const t = useIntegration();

/** The build id a run is pinned to, from its description. */
async function buildIdOf(handle: WorkflowHandle, runId?: string): Promise<string | undefined> {
  const d = await t.client.workflow.getHandle(handle.workflowId, runId).describe();
  const info = d.raw.workflowExecutionInfo?.versioningInfo;
  return info?.deploymentVersion?.buildId ?? undefined;
}

/** The activity types a run scheduled, and the identities of the workers that ran them. */
async function activitiesOf(handle: WorkflowHandle, runId?: string) {
  const history = await t.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
  const types: string[] = [];
  const identities = new Set<string>();
  for (const e of history.events ?? []) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled?.activityType?.name) types.push(scheduled.activityType.name);
    const started = e.activityTaskStartedEventAttributes;
    if (started?.identity) identities.add(started.identity);
  }
  return { types, identities };
}

test('a migration finishes on the version it started on, and its guardian moves to the new version at its next run', async () => {
  const s = t.track(await startScenario({ maxAttempts: 3, seed: { region: REGION } }));
  const queueUrl = await createQueue(s.direct, REGION);
  const plan = testPlan(s.source, s.world.ports, {
    checks: { attempts: 3, interval: '1s' },
    target: { market: 'spot' },
    spot: { interruptionQueueUrl: queueUrl, pollInterval: '1s', wakeEvery: '2s' },
  });
  const deployment = `versioning-${randomBytes(4).toString('hex')}`;
  const v1 = { name: deployment, buildId: 'v1' };
  const v2 = { name: deployment, buildId: 'v2' };
  const taskQueue = `versioning-${randomBytes(5).toString('hex')}`;
  const service = t.client.workflowService;

  const w1 = await startWorker({ clients: s.clients, taskQueue, deployment: v1, identity: 'worker-v1' });
  t.track({ close: () => w1.stop() });
  t.endSpotWorkflows(REGION, () => [guardianWorkflowId(plan.name)]);
  // The first version of a deployment is made current by its worker.
  expect(await makeFirstVersionCurrent(service, temporalNamespace(), v1, 'test')).toEqual({ action: 'made-current' });

  const migration = await startMigration(t.client, taskQueue, plan);
  await waitForPhase(migration, 'awaiting-approval');

  // Version 2: a changed guardian. Its worker polls, but new runs stay on version 1 until an
  // operator makes it current.
  const changed = await bundleWorkflowCode({
    workflowsPath: require.resolve('../fixtures/workflows-v2'),
    logger: silentLogger,
  });
  expect(changed.code).not.toBe((await workflowBundle()).code);
  const w2 = await startWorker({
    clients: s.clients,
    taskQueue,
    deployment: v2,
    bundle: changed,
    identity: 'worker-v2',
  });
  t.track({ close: () => w2.stop() });
  expect(await makeFirstVersionCurrent(service, temporalNamespace(), v2, 'test')).toEqual({
    action: 'left',
    current: 'v1',
  });
  // The server refuses to make v2 current until its worker has polled every task queue v1's
  // polls (the workflow and the activity side of each): until then it answers "missing active
  // task queues", and an operator runs the command again.
  await pollUntil(
    'the server to take version 2 as current',
    async () => {
      try {
        await promisify(execFile)(toolPaths().temporalBin, [
          'worker',
          'deployment',
          'set-current-version',
          '--deployment-name',
          deployment,
          '--build-id',
          'v2',
          '--yes',
          '--address',
          temporalAddress(),
          '--namespace',
          temporalNamespace(),
        ]);
        return true;
      } catch (err) {
        if (/missing active task queues/.test(String((err as { stderr?: unknown }).stderr ?? err))) return undefined;
        throw err;
      }
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );

  await migration.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await migration.result();
  expect(report.outcome).toBe('completed');
  // Pinned: every task of the migration, those after the switch included, ran on version 1.
  expect(await buildIdOf(migration)).toBe('v1');
  const ran = await activitiesOf(migration);
  expect([...ran.identities]).toEqual(['worker-v1']);
  expect(ran.types).toContain('stopInstance');

  // The guardian began on version 1 (its parent's), and moves to version 2 at its next run.
  const guardian = t.client.workflow.getHandle(guardianWorkflowId(plan.name));
  const firstRunId = (await guardian.describe()).raw.workflowExecutionInfo?.firstRunId ?? undefined;
  expect(await buildIdOf(guardian, firstRunId)).toBe('v1');
  expect((await activitiesOf(guardian, firstRunId)).types).not.toContain('getInstance');
  const upgraded = await pollUntil(
    'the guardian to run on version 2',
    async () => {
      const d = await guardian.describe();
      return (await buildIdOf(guardian, d.runId)) === 'v2' ? d.runId : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  // A started activity is written to the history once it ends: wait for the first to end.
  const onV2 = await pollUntil(
    'the first activity of the run on version 2 to end',
    async () => {
      const ran = await activitiesOf(guardian, upgraded);
      return ran.identities.size > 0 ? ran : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  expect(onV2.types[0]).toBe('getInstance');
  expect([...onV2.identities]).toEqual(['worker-v2']);
  // It still guards the migrated instance, on the new code.
  const status = await guardian.query(guardianStatusQuery);
  expect(status).toMatchObject({ state: 'guarding', instanceId: report.after.instanceId });
  expect(status.run).toBeGreaterThan(1);
});
