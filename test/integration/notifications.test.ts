/**
 * Notifications against a local webhook receiver, from a real worker on the dev server and
 * moto: a Slack-compatible and a JSON webhook hear when a person is needed (with the Web UI link
 * and the CLI command), the decision, a refused signal, the end (completed; rejected and rolled
 * back) and, from the guardian, a Spot notice and the replacement with its timeline. The URLs
 * are the worker's: they never enter a history. A dead receiver changes nothing in the run.
 */
import type { NotifySettings } from '../../src/activities/notify';
import { approveSignal, decideUpdate } from '../../src/shared/migration';
import { interruptionSignal } from '../../src/shared/spot';
import { migrated } from '../harness/guarded';
import { useIntegration } from '../harness/lifecycle';
import { startMigration, waitForPhase } from '../harness/migration';
import { deadPort, startReceiver, type Receiver, type Received } from '../harness/receiver';
import { startScenario } from '../harness/scenario';
import { waitForGuardian } from '../harness/spot';
import { startWorker } from '../harness/worker';

// The guardian's test has this region's router to itself.
const REGION = 'eu-north-1';
const SECRET = 'T0KEN-b7c1-do-not-log';

const t = useIntegration();

let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(() => receiver?.close());

/** A Slack-compatible receiver and a JSON one, each with a secret in its path. */
const receivers = (): NotifySettings => ({
  targets: [
    { url: `${receiver.url}/slack/${SECRET}`, format: 'slack' },
    { url: `${receiver.url}/json/${SECRET}`, format: 'json' },
  ],
  uiBase: 'http://ui.example:8233',
});

const jsonEvent = (workflowId: string, kind: string) => (r: Received) =>
  r.path.startsWith('/json/') && r.body.workflowId === workflowId && r.body.event === kind;
const slackText = (text: string) => (r: Received) =>
  r.path.startsWith('/slack/') && typeof r.body.text === 'string' && r.body.text.includes(text);

async function migrationWith(notify: NotifySettings) {
  const s = t.track(await startScenario({ maxAttempts: 3 }));
  const w = await startWorker({ clients: s.clients, notify });
  t.track({ close: () => w.stop() });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  return { s, handle };
}

test('a person is told when the migration waits for them, of a refused signal, the decision and the end; the URLs stay out of the history', async () => {
  const { s, handle } = await migrationWith(receivers());
  const waiting = await waitForPhase(handle, 'awaiting-approval');

  const asked = await receiver.waitFor('awaiting-approval (JSON)', jsonEvent(handle.workflowId, 'awaiting-approval'));
  expect(asked.contentType).toContain('application/json');
  expect(asked.body).toMatchObject({
    planName: s.plan.name,
    region: s.plan.region,
    newInstanceId: waiting.newInstanceId,
    oldInstanceId: s.plan.source.instanceId,
    webUi: `http://ui.example:8233/namespaces/${t.client.options.namespace}/workflows/${handle.workflowId}`,
  });
  // The deadline is the plan's approval.timeout (7 days) from now.
  const deadlineIn = Date.parse(asked.body.deadline as string) - Date.now();
  expect(deadlineIn).toBeGreaterThan(6.9 * 24 * 3600_000);
  expect(deadlineIn).toBeLessThanOrEqual(7 * 24 * 3600_000);
  const slack = await receiver.waitFor(
    'awaiting-approval (Slack)',
    slackText(`*${s.plan.name}* (${s.plan.region}) waits for approval`),
  );
  expect(Object.keys(slack.body)).toEqual(['text']);
  expect(slack.body.text).toContain(`migration approve ${handle.workflowId} --by NAME`);
  expect(slack.body.text).toContain(`Web UI: http://ui.example:8233/namespaces/`);

  // A signal the run does not act on is told too: nobody believes they approved.
  await handle.signal(approveSignal, { comment: 'no name' } as never);
  const refused = await receiver.waitFor('a refused signal', jsonEvent(handle.workflowId, 'signal-refused'));
  expect(refused.body).toMatchObject({ name: 'approve', reason: expect.stringContaining('approve needs "by"') });

  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'alice', comment: 'fast enough' }] });
  const report = await handle.result();
  const approved = await receiver.waitFor('approved', jsonEvent(handle.workflowId, 'approved'));
  expect(approved.body).toMatchObject({ by: 'alice', comment: 'fast enough', via: 'update' });
  // The run waited for its last notification before it ended.
  const completed = receiver.received.find(jsonEvent(handle.workflowId, 'completed'));
  expect(completed?.body).toMatchObject({ outcome: 'completed', instanceId: report.after.instanceId });
  expect(
    receiver.received.find(slackText(`migration completed; the service runs on ${report.after.instanceId}`)),
  ).toBeDefined();

  const history = JSON.stringify(await handle.fetchHistory());
  expect(history).not.toContain(SECRET);
  expect(history).not.toContain(receiver.url);
});

test('a rejection is told with its reason, and the rollback with its error', async () => {
  const { handle } = await migrationWith(receivers());
  await waitForPhase(handle, 'awaiting-approval');
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'bob', reason: 'p95 too high' }] });
  const failure = await handle.result().catch((e: unknown) => e);
  expect(String((failure as Error).cause)).toMatch(/migration rejected and rolled back/);
  expect(receiver.received.find(jsonEvent(handle.workflowId, 'rejected'))?.body).toMatchObject({
    by: 'bob',
    comment: 'p95 too high',
  });
  expect(receiver.received.find(jsonEvent(handle.workflowId, 'rolled-back'))?.body).toMatchObject({
    error: 'rejected by bob: p95 too high',
  });
});

test('a dead receiver changes nothing: the migration completes as it would, and the failed sends are only logged', async () => {
  const port = await deadPort();
  const { handle } = await migrationWith({ targets: [{ url: `http://127.0.0.1:${port}/hook`, format: 'json' }] });
  await waitForPhase(handle, 'awaiting-approval');
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'alice' }] });
  const report = await handle.result();
  expect(report.outcome).toBe('completed');
  expect(report.warnings).toEqual([]);
  // Every notify activity failed (after its retries), and nothing else did.
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Map(
    events
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes?.activityType?.name]),
  );
  const failedTypes = events
    .filter((e) => e.activityTaskFailedEventAttributes)
    .map((e) => scheduled.get(String(e.activityTaskFailedEventAttributes?.scheduledEventId)));
  expect(failedTypes.length).toBeGreaterThanOrEqual(3); // awaiting-approval, approved, completed
  expect(new Set(failedTypes)).toEqual(new Set(['notify']));
  const failure = events.find((e) => e.activityTaskFailedEventAttributes)?.activityTaskFailedEventAttributes?.failure;
  expect(failure?.message).toMatch(/reached 0 of 1 receivers; http:\/\/127\.0\.0\.1:\d+\/…: fetch failed/);
});

test('the guardian tells of a Spot notice and of the replacement, with its timeline', async () => {
  // eu-north-1a offers no g5 (AWS's offerings, as moto has them).
  const g = await migrated(t, REGION, { target: { fallbackInstanceTypes: ['g4dn.2xlarge'] } }, { notify: receivers() });
  const oldId = g.first.instanceId;
  await g.guardian.signal(interruptionSignal, { instanceId: oldId, kind: 'interruption' });
  const after = await waitForGuardian(g.guardian, 'replaced', (x) => x.replacements === 1 && x.state === 'guarding');

  const notice = await receiver.waitFor('the Spot notice', jsonEvent(g.guardian.workflowId, 'spot-notice'));
  expect(notice.body).toMatchObject({ instanceId: oldId, noticeKind: 'interruption', planName: g.plan.name });
  const replaced = await receiver.waitFor('the replacement', jsonEvent(g.guardian.workflowId, 'replaced'));
  expect(replaced.body.round).toMatchObject({
    oldInstanceId: oldId,
    newInstanceId: after.instanceId,
    outcome: 'replaced',
  });
  const slack = await receiver.waitFor(
    'the replacement (Slack)',
    slackText(`${oldId} replaced by ${after.instanceId}`),
  );
  expect(slack.body.text).toMatch(/Timeline: notice \+0\.0 s → launched \+[\d.]+ s → .*Elastic IP moved \+[\d.]+ s/);
  expect(slack.body.text).toMatch(/serving again after [\d.]+ s/);
});
