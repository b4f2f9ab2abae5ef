/**
 * A bug is not a failure of the migration. A worker whose workflow code throws a TypeError right
 * after the Elastic IP switch fails the workflow task, again and again, and rolls nothing back;
 * once a worker with the fix runs, the run goes on from where it was and completes.
 */
import { randomBytes } from 'node:crypto';
import { bundleWorkflowCode } from '@temporalio/worker';
import { decideUpdate } from '../../src/shared/migration';
import { INJECTED } from '../fixtures/bug-after-switch';
import { useIntegration } from '../harness/lifecycle';
import { addressHolder, startMigration, waitForPhase } from '../harness/migration';
import { pollUntil } from '../harness/net';
import { startScenario } from '../harness/scenario';
import { startWorker } from '../harness/worker';
import { silentLogger } from '../../src/bundle';

const t = useIntegration();

test('a bug after the Elastic IP switch fails the workflow task, not the run: after the fix is deployed the migration completes', async () => {
  const s = t.track(await startScenario({ maxAttempts: 3 }));
  const taskQueue = `bugs-${randomBytes(5).toString('hex')}`;
  const buggy = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../src/workflows'),
    workflowInterceptorModules: [require.resolve('../fixtures/bug-after-switch')],
    logger: silentLogger,
  });
  const first = await startWorker({ clients: s.clients, taskQueue, bundle: buggy, identity: 'buggy-worker' });
  t.track({ close: () => first.stop() });
  const handle = await startMigration(t.client, taskQueue, s.plan);

  // The task fails on the bug: nothing turns it into a failed migration.
  await pollUntil(
    'the workflow task to fail on the bug',
    async () => {
      const { events } = await handle.fetchHistory();
      const failures = (events ?? []).filter((e) =>
        e.workflowTaskFailedEventAttributes?.failure?.message?.includes(INJECTED),
      );
      return failures.length >= 1 ? failures : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 200 },
  );
  expect((await handle.describe()).status.name).toBe('RUNNING');
  // The cut-over stands: the Elastic IP is on the new instance, and nothing was undone.
  const served = await addressHolder(s.direct, s.plan);
  expect(served).toMatch(/^i-/);
  expect(served).not.toBe(s.source.instanceId);
  expect(s.proxy.count('TerminateInstances')).toBe(0);
  expect(s.proxy.count('RevokeSecurityGroupIngress')).toBe(0);

  // The fix is deployed: the next worker runs the code without the bug.
  await first.stop();
  const fixed = await startWorker({ clients: s.clients, taskQueue, identity: 'fixed-worker' });
  t.track({ close: () => fixed.stop() });
  await waitForPhase(handle, 'awaiting-approval');
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await handle.result();
  expect(report.outcome).toBe('completed');
  expect(report.after.instanceId).toBe(served);
  expect(await addressHolder(s.direct, s.plan)).toBe(served);
  const { events } = await handle.fetchHistory();
  const ranOn = new Set(
    (events ?? []).flatMap((e) =>
      e.workflowTaskCompletedEventAttributes?.identity ? [e.workflowTaskCompletedEventAttributes.identity] : [],
    ),
  );
  expect(ranOn).toEqual(new Set(['buggy-worker', 'fixed-worker']));
});
