/**
 * No notice lost, no silent router: notices that come while a replacement ends, a router that
 * meets failing scans and unreadable queues, and a router that is gone, against the real dev
 * server and moto (EC2, SQS) behind the strict world (IAM enforced).
 */
import { TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { iamPolicy } from '../../src/aws/permissions';
import { routerWorkflowId } from '../../src/shared/constants';
import { guardianStatusQuery, type RouterInput } from '../../src/shared/spot';
import { runCli, setEnv } from '../harness/cli';
import { temporalAddress, temporalNamespace } from '../harness/env';
import { expectRecovered, migrated, routerKnows, waitFor } from '../harness/guarded';
import { withoutAction } from '../harness/iam';
import { useIntegration } from '../harness/lifecycle';
import { gate } from '../harness/outcome';
import { startReceiver, type Received } from '../harness/receiver';
import { startScenario } from '../harness/scenario';
import { createQueue, putMessage, routerStatus, spotEvent, waitForGuardian } from '../harness/spot';
import { startWorker } from '../harness/worker';

// A region of this file's own: the region's router is shared by its guardians.
const REGION = 'ap-northeast-1';

const t = useIntegration();
const router = () => routerStatus(t.client, REGION);

test('a rebalance for the replacement that comes while the old instance is terminated is acted on after the round', async () => {
  const g = await migrated(t, REGION);
  const oldId = g.first.instanceId;
  // The round's last step waits: EC2 has terminated the old instance, its answer is held.
  const held = gate();
  const release = g.s.proxy.onAfter('TerminateInstances', () => held.promise);
  t.track({ close: async () => (held.open(), release()) });
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', oldId, REGION));
  const moved = await waitForGuardian(
    g.guardian,
    'the Elastic IP on the replacement, the round not ended',
    (s) => s.state === 'replacing' && s.instanceId !== oldId,
    90_000,
  );
  const firstReplacement = moved.instanceId;
  const routed = (await router()).stats.messagesRouted;
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('rebalance', firstReplacement, REGION));
  // The router delivered it (and deleted the message) while the round still runs.
  await waitFor('the rebalance routed', async () => (await router()).stats.messagesRouted > routed);
  expect((await g.guardian.query(guardianStatusQuery)).state).toBe('replacing');
  held.open();

  const after = await waitForGuardian(
    g.guardian,
    'the replacement replaced in turn',
    (s) => s.replacements === 2 && s.state === 'guarding',
    90_000,
  );
  expect(after.events.map((e) => [e.kind, e.oldInstanceId, e.outcome])).toEqual([
    ['interruption', oldId, 'replaced'],
    ['rebalance', firstReplacement, 'replaced'],
  ]);
  await expectRecovered(g, firstReplacement, after);
  // The rebalance was not thrown away. (The poll may report the first replacement gone once the
  // second round terminated it: that notice is ignored, rightly.)
  const ignored = after.ignored.map((i) => i.notice as { instanceId?: string; kind?: string } | undefined);
  expect(ignored.filter((n) => n?.kind === 'rebalance').map((n) => n?.instanceId)).not.toContain(firstReplacement);
});

test('scans refused by IAM do not end the router: the failure shows in its status, and once allowed it finds a death again', async () => {
  const g = await migrated(t, REGION);
  const before = await router();
  // The worker's role loses ec2:DescribeInstances (a narrowed policy, an SCP).
  g.s.proxy.setPolicies([withoutAction(iamPolicy(g.plan), 'ec2:DescribeInstances')]);
  await waitFor('scans failing', async () => (await router()).scanFailing === true);
  const failing = await router();
  expect(failing.stats.scanErrors).toBeGreaterThanOrEqual(1);
  expect(failing.lastScanError?.error).toContain('not authorized');
  expect((await t.client.workflow.getHandle(routerWorkflowId(REGION)).describe()).status.name).toBe('RUNNING');
  expect(failing.run).toBe(before.run);

  g.s.proxy.setPolicies([iamPolicy(g.plan)]);
  await waitFor('scans work again', async () => (await router()).scanFailing === undefined);
  await g.s.direct.ec2(REGION).send(new TerminateInstancesCommand({ InstanceIds: [g.first.instanceId] }));
  const after = await waitForGuardian(
    g.guardian,
    'the death found by a scan',
    (s) => s.replacements === 1 && s.state === 'guarding',
  );
  expect(after.events[0]).toMatchObject({ kind: 'stopped', source: 'poll' });
  await expectRecovered(g, g.first.instanceId, after);
});

test('a queue the worker may not read shows in the router, the guardian and `migration status`, and is notified once, until it reads again', async () => {
  const receiver = await startReceiver();
  t.track({ close: () => receiver.close() });
  const g = await migrated(t, REGION, {}, { notify: { targets: [{ url: `${receiver.url}/json`, format: 'json' }] } });
  g.s.proxy.setPolicies([withoutAction(iamPolicy(g.plan), 'sqs:ReceiveMessage')]);
  const told = await waitForGuardian(g.guardian, 'told the queue fails', (s) => s.queue?.ok === false);
  expect(told.queue).toMatchObject({ queueUrl: g.queueUrl, ok: false, since: expect.any(String) });
  expect(told.queue?.error).toMatch(/not authorized|denied/i);
  // The people are told the notices may not arrive, naming the queue and AWS's refusal.
  const unhealthy = (r: Received) => r.body.event === 'router-unhealthy' && r.body.workflowId === g.guardian.workflowId;
  const sent = await receiver.waitFor('router-unhealthy', unhealthy);
  expect(sent.body.error).toContain(`the router cannot read the interruption queue ${g.queueUrl}`);
  expect(sent.body.error).toMatch(/not authorized|denied/i);
  expect(sent.body.text).toMatch(/the Spot notices may not arrive/);
  const seen = (await router()).queues.find((q) => q.queueUrl === g.queueUrl);
  expect(seen).toMatchObject({ ok: false });
  expect(seen?.failures).toBeGreaterThan(0);

  const restore = setEnv({ TEMPORAL_ADDRESS: temporalAddress(), TEMPORAL_NAMESPACE: temporalNamespace() });
  try {
    const text = await runCli(['status', g.guardian.workflowId]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`the interruption queue ${g.queueUrl} cannot be read since ${told.queue?.since}`);
  } finally {
    restore();
  }

  g.s.proxy.setPolicies([iamPolicy(g.plan)]);
  const healthy = await waitForGuardian(g.guardian, 'told the queue reads again', (s) => s.queue?.ok === true);
  expect(healthy.queue).toEqual({ queueUrl: g.queueUrl, ok: true });
  // And the queue's warnings reach the guardian again.
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', g.first.instanceId, REGION));
  const after = await waitForGuardian(g.guardian, 'replaced', (s) => s.replacements === 1 && s.state === 'guarding');
  expect(after.events[0]).toMatchObject({ kind: 'interruption', source: 'queue' });
  // One failing spell, one notification: repeated failed reads did not repeat it.
  expect(receiver.received.filter(unhealthy)).toHaveLength(1);
});

test('reads that keep failing do not freeze the router: it continues as new and keeps polling', async () => {
  const s = await startScenario({ maxAttempts: 2, seed: { region: REGION } });
  t.track(s);
  const queueUrl = await createQueue(s.direct, REGION);
  const w = await startWorker({ clients: s.clients });
  t.track({ close: () => w.stop() });
  t.endSpotWorkflows(REGION);
  // SQS answers every read with a 500: retryable, for as long as the test runs.
  s.proxy.serverError('ReceiveMessage', { status: 500 });
  // Watches of 2 s, 3 to a run: a watch returns while reads fail, at its time.
  const input: RouterInput = {
    region: REGION,
    queueUrls: [queueUrl],
    pollIntervalMs: 1_000,
    pollsPerRun: 3,
    watch: { maxMs: 2_000, heartbeatMs: 1_000 },
  };
  // A guardian of the test before may have started the region's router again as it ended (its
  // last run makes sure the router runs): this test's router takes its place.
  await t.client.workflow.start('spotEventRouter', {
    workflowId: routerWorkflowId(REGION),
    taskQueue: w.taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'TERMINATE_EXISTING',
  });
  await waitFor('three runs', async () => (await router()).run >= 3, 120_000);
  const status = await router();
  expect(status.queues).toEqual([expect.objectContaining({ queueUrl, ok: false })]);
  expect(status.stats.readErrors ?? 0).toBeGreaterThan(0);
  expect(status.stats.polls).toBeGreaterThanOrEqual(6);
}, 180_000);

test('a router that was terminated is started again by the next run of a guardian, with its queue', async () => {
  const g = await migrated(t, REGION);
  const handle = t.client.workflow.getHandle(routerWorkflowId(REGION));
  await handle.terminate('an operator ended it');
  // A replacement (a notice sent to the guardian directly) ends the guardian's run; the next run
  // makes sure the router runs.
  await g.guardian.signal('interruption', { instanceId: g.first.instanceId, kind: 'manual' });
  // The run shows the router once it has made sure of it (its first step).
  const second = await waitForGuardian(
    g.guardian,
    'its next run, its router checked',
    (s) => s.run === 2 && s.state === 'guarding' && s.router !== undefined,
  );
  expect(second.router).toMatchObject({ ok: true });
  await waitFor('the router runs again', async () => (await handle.describe()).status.name === 'RUNNING');
  await routerKnows(t, REGION, 1);
  expect((await router()).queueUrls).toContain(g.queueUrl);

  // A warning on the queue reaches the guardian through the new router.
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', second.instanceId, REGION));
  const third = await waitForGuardian(
    g.guardian,
    'replaced again',
    (s) => s.replacements === 2 && s.state === 'guarding',
  );
  expect(third.events[1]).toMatchObject({ kind: 'interruption', source: 'queue', oldInstanceId: second.instanceId });
  await waitFor('the message routed', async () => (await router()).notices?.at(-1)?.outcome === 'routed');
  expect((await router()).notices?.at(-1)).toMatchObject({
    instanceId: second.instanceId,
    outcome: 'routed',
    guardianId: g.guardian.workflowId,
  });
});

test('a warning whose guardian is gone is dropped and counted as dropped, not as routed', async () => {
  const g = await migrated(t, REGION);
  const before = (await router()).stats;
  // The guardian ends (an operator terminated it); the instance still carries its tag.
  await g.guardian.terminate('retired by an operator');
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', g.first.instanceId, REGION));
  await waitFor('the message dropped', async () => (await router()).stats.messagesDropped > before.messagesDropped);
  const after = (await router()).stats;
  expect(after.messagesRouted).toBe(before.messagesRouted);
  expect(after.messagesDropped).toBe(before.messagesDropped + 1);
  // The router's status says what became of it, and why.
  const last = (await router()).notices?.at(-1);
  expect(last).toMatchObject({
    queueUrl: g.queueUrl,
    instanceId: g.first.instanceId,
    kind: 'interruption',
    outcome: 'dropped',
    guardianId: g.guardian.workflowId,
    reason: 'an event its guardian could not take (the guardian is gone)',
  });
  // A body that is no Spot event is dropped too, with what the router made of it.
  await putMessage(g.s.direct, REGION, g.queueUrl, 'not an event');
  await waitFor('the body dropped', async () => (await router()).stats.messagesDropped > after.messagesDropped);
  const malformed = (await router()).notices?.at(-1);
  expect(malformed).toMatchObject({ queueUrl: g.queueUrl, outcome: 'dropped' });
  expect(malformed?.instanceId).toBeUndefined();
  expect(malformed?.reason).toMatch(/^a message that is no Spot event for us: /);
  // Said once: the parse error follows the router's reason, not twice.
  const detail = malformed?.reason?.replace('a message that is no Spot event for us: ', '') ?? '';
  expect(detail.length).toBeGreaterThan(0);
  expect(detail).not.toContain(': ' + detail);
  // And it is gone from the queue: nobody is left to take it.
  const left = await g.s.direct
    .sqs(REGION)
    .send(new ReceiveMessageCommand({ QueueUrl: g.queueUrl, WaitTimeSeconds: 0, VisibilityTimeout: 0 }));
  expect(left.Messages ?? []).toEqual([]);
});
