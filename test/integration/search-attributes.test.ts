/**
 * What the Web UI lists a migration by, against the real dev server (which the harness starts
 * with the attributes registered, as the bootstrap and the demo do): its phase and plan as
 * search attributes, its static summary and details, a summary on every activity and on the
 * approval timer. And on a namespace without the attributes, the run starts without them and
 * never sets them (an unknown attribute would fail every workflow task).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Client, type WorkflowHandle } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { migrationDetails, migrationSummary, startMigrationRun } from '../../src/cli/start-run';
import { decideUpdate } from '../../src/shared/migration';
import { AWAITING_APPROVAL_QUERY } from '../../src/shared/search-attributes';
import { temporalAddress } from '../harness/env';
import { useIntegration } from '../harness/lifecycle';
import { toolPaths } from '../harness/tools';
import { startMigration, waitForPhase } from '../harness/migration';
import { pollUntil } from '../harness/net';
import { listed } from '../harness/visibility';
import { startScenario } from '../harness/scenario';
import { startWorker } from '../harness/worker';

const t = useIntegration();
const execFileP = promisify(execFile);

type HistoryEvent = Awaited<ReturnType<typeof historyOf>>[number];

function summaryOf(meta: HistoryEvent['userMetadata']): string | undefined {
  const data = meta?.summary?.data;
  return data ? (JSON.parse(Buffer.from(data).toString('utf8')) as string) : undefined;
}

async function historyOf(handle: WorkflowHandle) {
  return (await handle.fetchHistory()).events ?? [];
}

test('a migration is listed by its phase and plan, with its summary, and every activity and the approval wait say what they are for', async () => {
  const { s, w } = await t.setup();
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  const newId = waiting.newInstanceId as string;

  // The saved query of the docs lists it, and so does its plan's name.
  await listed(t.client, AWAITING_APPROVAL_QUERY, [handle.workflowId]);
  await listed(t.client, `PlanName="${s.plan.name}" AND MigrationPhase="awaiting-approval"`, [handle.workflowId]);
  const described = await handle.describe();
  expect(await described.staticSummary()).toBe(migrationSummary(s.plan));
  expect(await described.staticSummary()).toContain(`${s.plan.source.instanceId} → ${s.plan.target.instanceType}`);
  expect(await described.staticDetails()).toBe(migrationDetails(s.plan));

  const events = await historyOf(handle);
  const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes);
  const summaries = scheduled.map((e) => summaryOf(e.userMetadata));
  // Every activity names its phase; the ones on an instance name it too.
  expect(summaries.every((x) => typeof x === 'string' && x.length > 0)).toBe(true);
  const summaryOfType = (type: string) =>
    scheduled
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === type)
      .map((e) => summaryOf(e.userMetadata));
  expect(summaryOfType('launchInstance')).toEqual(['launch']);
  expect(summaryOfType('runRemote')).toContain(`start on ${newId}`);
  expect(summaryOfType('associateAddress')).toEqual([`eip-switch on ${newId}`]);
  const timers = events.filter((e) => e.timerStartedEventAttributes);
  expect(timers.map((e) => summaryOf(e.userMetadata))).toContain(
    `waiting for approval (${s.plan.approval.timeout}): approve or reject ${handle.workflowId}`,
  );

  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  await handle.result();
  await listed(t.client, `PlanName="${s.plan.name}" AND MigrationPhase="completed"`, [handle.workflowId]);
  const stale = await listed(t.client, AWAITING_APPROVAL_QUERY, []);
  expect(stale).not.toContain(handle.workflowId);
});

test('on a namespace without the attributes the run starts without them, warns how to register them, and never sets them', async () => {
  const namespace = `plain-${randomBytes(4).toString('hex')}`;
  await t.client.connection.workflowService.registerNamespace({
    namespace,
    workflowExecutionRetentionPeriod: msToTs('1 day'),
  });
  const client = new Client({ connection: t.client.connection, namespace });
  // A new namespace takes a moment to be served.
  await pollUntil(
    `namespace ${namespace} served`,
    () =>
      client.workflow.count().then(
        () => true,
        () => undefined,
      ),
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const s = t.track(await startScenario({ maxAttempts: 3 }));
  const w = await startWorker({ clients: s.clients, namespace });
  t.track({ close: () => w.stop() });

  const started = await startMigrationRun(client, { plan: s.plan }, { taskQueue: w.taskQueue });
  const command = /temporal operator search-attribute create .*$/.exec(started.unindexed ?? '')?.[0];
  expect(command).toContain(`--namespace ${namespace}`);
  const handle = started.handle;
  await waitForPhase(handle, 'awaiting-approval');
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await handle.result();
  expect(report.outcome).toBe('completed');
  const events = await historyOf(handle);
  // (The SDK's own TemporalChangeVersion, which every namespace has, is upserted as before.)
  const upserted = events.flatMap((e) =>
    Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}),
  );
  expect(upserted.length).toBeGreaterThan(0);
  expect(upserted.filter((k) => k !== 'TemporalChangeVersion')).toEqual([]);
  expect(events.filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);
  // The summary is there all the same.
  expect(await (await handle.describe()).staticSummary()).toBe(migrationSummary(s.plan));

  // The command the warning names registers them.
  const args = (command as string).split(' ').slice(1);
  await execFileP(toolPaths().temporalBin, [...args, '--address', temporalAddress()]);
  const registered = await t.client.connection.operatorService.listSearchAttributes({ namespace });
  expect(Object.keys(registered.customAttributes ?? {})).toEqual(
    expect.arrayContaining(['MigrationPhase', 'PlanName', 'GuardedInstance']),
  );
});
