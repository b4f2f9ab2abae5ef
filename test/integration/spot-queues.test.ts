/**
 * Guardians, routers and their activities run on a task queue of their own (`<queue>-spot`), so
 * a recovery never waits behind a migration's hour-long activities; workers may poll the two
 * apart. Against the real dev server and moto behind the strict world (IAM enforced).
 */
import type { Client } from '@temporalio/client';
import { migrationWorkflowId, routerWorkflowId, spotTaskQueue } from '../../src/shared/constants';
import { expectRecovered, migrated } from '../harness/guarded';
import { useIntegration } from '../harness/lifecycle';
import { putMessage, spotEvent, waitForGuardian } from '../harness/spot';

// A region of this file's own: the region's router is shared by its guardians.
const REGION = 'eu-west-3';

const t = useIntegration();

/** Who started each activity and workflow task of a workflow's runs, by identity. */
async function identities(client: Client, workflowId: string): Promise<Set<string>> {
  const seen = new Set<string>();
  const handle = client.workflow.getHandle(workflowId);
  const { runId } = await handle.describe();
  const runs = [runId];
  for (const id of runs) {
    const history = await client.workflow.getHandle(workflowId, id).fetchHistory();
    for (const e of history.events ?? []) {
      const identity = e.activityTaskStartedEventAttributes?.identity ?? e.workflowTaskStartedEventAttributes?.identity;
      if (identity) seen.add(identity);
      const prev = e.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
      if (prev) runs.push(prev);
    }
  }
  return seen;
}

test('the guardian and the router run on the spot queue; a worker on each queue keeps recoveries apart from migrations', async () => {
  const g = await migrated(t, REGION, {}, { workers: 'apart' });
  const spotQueue = spotTaskQueue(g.w.taskQueue);
  expect(g.spot?.worker.taskQueues).toEqual([spotQueue]);
  expect(g.w.worker.taskQueues).toEqual([g.w.taskQueue]);

  const guardian = await g.guardian.describe();
  expect(guardian.taskQueue).toBe(spotQueue);
  const router = await t.client.workflow.getHandle(routerWorkflowId(REGION)).describe();
  expect(router.taskQueue).toBe(spotQueue);
  const migration = await t.client.workflow.getHandle(migrationWorkflowId(g.plan.name)).describe();
  expect(migration.taskQueue).toBe(g.w.taskQueue);

  // A recovery, done by the spot queue's worker alone.
  const oldId = g.first.instanceId;
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', oldId, REGION));
  const after = await waitForGuardian(
    g.guardian,
    'replaced',
    (s) => s.replacements === 1 && s.state === 'guarding',
    120_000,
  );
  await expectRecovered(g, oldId, after);

  expect(await identities(t.client, migrationWorkflowId(g.plan.name))).toEqual(new Set(['migration-worker']));
  expect(await identities(t.client, g.guardian.workflowId)).toEqual(new Set(['spot-worker']));
  expect(await identities(t.client, routerWorkflowId(REGION))).toEqual(new Set(['spot-worker']));
}, 300_000);
