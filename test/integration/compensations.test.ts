/**
 * A rollback's undo step that keeps failing: it is shown as failing (status, the Web UI's
 * current details) and tried again; once AWS answers, the rollback completes. Before, an undo
 * gave up after its activity's retries and the run ended "rollback did not finish". The people
 * on the worker's webhooks are told that the step keeps failing.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { decideUpdate, statusQuery } from '../../src/shared/migration';
import type { MigrationReport } from '../../src/shared/report';
import { useIntegration } from '../harness/lifecycle';
import { addressHolder, startMigration, waitForPhase } from '../harness/migration';
import { pollUntil } from '../harness/net';
import { startReceiver } from '../harness/receiver';
import { startScenario } from '../harness/scenario';
import { startWorker } from '../harness/worker';

const t = useIntegration();

test('moving the Elastic IP back fails for a while: the rollback shows it failing, waits, and completes once AWS answers', async () => {
  const s = t.track(await startScenario({ maxAttempts: 3 }));
  const receiver = await startReceiver();
  t.track({ close: () => receiver.close() });
  const w = await startWorker({
    clients: s.clients,
    notify: { targets: [{ url: `${receiver.url}/slack`, format: 'slack' }], uiBase: 'http://ui.example:8233' },
  });
  t.track({ close: () => w.stop() });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  await waitForPhase(handle, 'awaiting-approval');
  const served = await addressHolder(s.direct, s.plan);

  // EC2 answers AssociateAddress with 503 Unavailable until the test lifts it.
  const outage = s.proxy.serverError('AssociateAddress', { status: 503 });
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'not now' }] });
  const failing = await pollUntil(
    'the undo step to show as failing',
    async () => {
      const st = await handle.query(statusQuery);
      return st.undoFailing ? st : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  const back = `move the Elastic IP back to ${s.source.instanceId}`;
  expect(failing.phase).toBe('rolling-back');
  expect(failing.undoFailing).toMatchObject({ name: back, tries: 3 });
  expect(failing.undoFailing?.lastError).toMatch(/overloaded|Unavailable/);
  expect(Date.parse(failing.undoFailing?.nextTryAt ?? '')).toBeGreaterThan(
    Date.parse(failing.undoFailing?.since ?? ''),
  );
  // The webhook hears of it, with the step, the error and the tries.
  const told = await receiver.waitFor(
    'the undo-failing notice',
    (r) => typeof r.body.text === 'string' && r.body.text.includes('undo step keeps failing'),
  );
  expect(told.body.text).toContain(back);
  expect(told.body.text).toMatch(/overloaded|Unavailable/);
  expect(told.body.text).toContain(handle.workflowId);
  const meta = await handle.query<{ currentDetails: string }>('__temporal_workflow_metadata');
  expect(meta.currentDetails).toContain(`**An undo step keeps failing**: ${back}`);
  // It waits: the Elastic IP stays where it was, and the undo steps after it have not run.
  expect(await addressHolder(s.direct, s.plan)).toBe(served);
  expect(s.proxy.count('TerminateInstances')).toBe(0);
  expect(outage.fired).toBeGreaterThanOrEqual(3);

  outage.remove();
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const failure = (err as WorkflowFailedError).cause as ApplicationFailure;
  expect(failure.message).toBe('migration rejected and rolled back: rejected by ops: not now');
  const report = failure.details?.[0] as MigrationReport;
  expect(report.outcome).toBe('rolled back');
  expect(report.compensations.map((c) => [c.name, c.state])).toContainEqual([back, 'done']);
  expect(report.compensations.every((c) => c.state === 'done')).toBe(true);
  expect(await addressHolder(s.direct, s.plan)).toBe(s.source.instanceId);
  expect((await handle.query(statusQuery)).undoFailing).toBeUndefined();
});
