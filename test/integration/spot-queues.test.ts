/**
 * Guardians, routers and their activities run on a task queue of their own (`<queue>-spot`), so
 * a recovery never waits behind a migration's hour-long activities; workers may poll the two
 * apart. Against the real dev server and moto behind the strict world (IAM enforced).
 */
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import type { Client } from '@temporalio/client';
import { migrationWorkflowId, routerWorkflowId, spotTaskQueue } from '../../src/shared/constants';
import { routerStatusQuery } from '../../src/shared/spot';
import { expectRecovered, migrated, type Guarded } from '../harness/guarded';
import { useIntegration } from '../harness/lifecycle';
import { putEc2Event, putMessage, spotEvent, waitForGuardian } from '../harness/spot';

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

/** Waits for the guardian's first replacement, and checks that it serves in `oldId`'s place. */
async function firstReplacement(g: Guarded, oldId: string): Promise<void> {
  const after = await waitForGuardian(
    g.guardian,
    'replaced',
    (s) => s.replacements === 1 && s.state === 'guarding',
    120_000,
  );
  await expectRecovered(g, oldId, after);
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
  await firstReplacement(g, oldId);

  expect(await identities(t.client, migrationWorkflowId(g.plan.name))).toEqual(new Set(['migration-worker']));
  expect(await identities(t.client, g.guardian.workflowId)).toEqual(new Set(['spot-worker']));
  expect(await identities(t.client, routerWorkflowId(REGION))).toEqual(new Set(['spot-worker']));
}, 300_000);

test('a Spot warning EC2 puts on the default bus reaches the router through the rules `events setup` made, and the guardian replaces the instance', async () => {
  const g = await migrated(t, REGION, {}, { queue: 'events-setup' });
  const oldId = g.first.instanceId;
  // A change to running matches no rule: it never reaches the queue.
  await putEc2Event(g.s.direct, REGION, 'state-change', oldId, { state: 'running' });
  await putEc2Event(g.s.direct, REGION, 'interruption', oldId);
  await firstReplacement(g, oldId);
  // The router read the warning off the queue, routed it to this plan's guardian and deleted it.
  const router = await t.client.workflow.getHandle(routerWorkflowId(REGION)).query(routerStatusQuery);
  const fromQueue = (router.notices ?? []).filter((n) => n.queueUrl === g.queueUrl);
  expect(fromQueue.map((n) => [n.kind, n.instanceId, n.outcome, n.guardianId])).toEqual([
    ['interruption', oldId, 'routed', g.guardian.workflowId],
  ]);
  const left = await g.s.direct.sqs(REGION).send(
    new GetQueueAttributesCommand({
      QueueUrl: g.queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  expect(left.Attributes).toEqual({ ApproximateNumberOfMessages: '0', ApproximateNumberOfMessagesNotVisible: '0' });
}, 300_000);
