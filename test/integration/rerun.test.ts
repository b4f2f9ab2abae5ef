/**
 * Starting and re-running: `start` never starts a completed migration again (exit 2, nothing
 * made), two `start`s at once give one run, and a migration that completes while the plan's
 * guardian already runs (an earlier migration's) hands it the new instance through the validated
 * `retarget` Update: the guardian then guards only the new instance, and never takes the old
 * one, stopped by the migration, for a lost Spot instance.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { guardianWorkflowId, migrationWorkflowId } from '../../src/shared/constants';
import { decideUpdate } from '../../src/shared/migration';
import { guardianStatusQuery, retargetUpdate } from '../../src/shared/spot';
import { REPO_ROOT, runCli, setEnv } from '../harness/cli';
import { temporalAddress, temporalNamespace } from '../harness/env';
import { migrated, waitFor } from '../harness/guarded';
import { useIntegration } from '../harness/lifecycle';
import { addressHolder, instance, startMigration, waitForPhase } from '../harness/migration';

const REGION = 'ap-east-1';
const t = useIntegration();

let restoreEnv: () => void;
beforeAll(() => {
  restoreEnv = setEnv({
    TEMPORAL_ADDRESS: temporalAddress(),
    TEMPORAL_NAMESPACE: temporalNamespace(),
    TEMPORAL_PROFILE: undefined,
    TEMPORAL_API_KEY: undefined,
  });
});
afterAll(() => restoreEnv());

test('a completed migration is not started again, and a later one hands its instance to the running guardian', async () => {
  const g = await migrated(t, REGION);
  const { s, plan, guardian } = g;
  const first = g.report.after.instanceId as string;
  const workflowId = migrationWorkflowId(plan.name);
  const dir = await mkdtemp(join(tmpdir(), 'rerun-'));
  const file = join(dir, 'plan.yaml');
  await writeFile(file, stringify(plan));

  // `start` on the completed migration: exit 2, when it completed, what to do; nothing started.
  const runId = (await t.client.workflow.getHandle(workflowId).describe()).runId;
  const launches = s.proxy.count('RunInstances');
  const again = await runCli(['start', '--plan', file, '--task-queue', g.w.taskQueue]);
  expect(again.code).toBe(2);
  expect(again.stderr).toMatch(new RegExp(`${workflowId} completed at \\d{4}-\\d\\d-\\d\\dT[^ ]+ \\(completed\\)`));
  expect(again.stderr).toContain(`The service runs on ${first} behind the Elastic IP.`);
  expect(again.stderr).toContain(`temporal workflow signal --workflow-id ${guardianWorkflowId(plan.name)} --name stop`);
  expect(again.stderr).toContain('Nothing changed.');
  expect((await t.client.workflow.getHandle(workflowId).describe()).runId).toBe(runId);
  expect(s.proxy.count('RunInstances')).toBe(launches);

  // The guardian's Update refuses a bad payload, naming the field, and an instance the Elastic
  // IP is not on.
  await expect(
    guardian.executeUpdate(retargetUpdate, { args: [{ instanceId: 'web-1', migrationWorkflowId: 'x' }] }),
  ).rejects.toMatchObject({
    cause: { message: expect.stringMatching(/^instanceId "web-1": expected \{"instanceId": "i-…"/) },
  });
  await expect(
    guardian.executeUpdate(retargetUpdate, {
      args: [{ instanceId: s.source.instanceId, migrationWorkflowId: 'by hand' }],
    }),
  ).rejects.toMatchObject({
    cause: {
      message: expect.stringContaining(
        `not on ${s.source.instanceId}: ${guardianWorkflowId(plan.name)} keeps guarding ${first}`,
      ),
    },
  });
  expect((await guardian.query(guardianStatusQuery)).instanceId).toBe(first);

  // A later migration of the plan from the instance that serves now (a client that allows a
  // re-run, as the default policy does): it completes while the guardian runs.
  const rerun = await startMigration(t.client, g.w.taskQueue, {
    ...plan,
    source: { ...plan.source, instanceId: first },
  });
  await waitForPhase(rerun, 'awaiting-approval');
  await rerun.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await rerun.result();
  const second = report.after.instanceId as string;
  expect(second).not.toBe(first);
  expect(report.outcome).toBe('completed');
  expect(report.warnings.join('\n')).toContain(`it now guards ${second}`);

  // The guardian guards the new instance only; the old one stays stopped (stop-old never
  // terminates), and its death, which the router sees, is ignored.
  const handedOver = await guardian.query(guardianStatusQuery);
  expect(handedOver.instanceId).toBe(second);
  expect(handedOver.retargets).toEqual([
    expect.objectContaining({ from: first, to: second, migrationWorkflowId: workflowId }),
  ]);
  await waitFor('the router to tell the guardian of the stopped old instance', async () =>
    (await guardian.query(guardianStatusQuery)).ignored.some((i) =>
      i.reason.includes(`${first} is not the guarded instance (${second})`),
    ),
  );
  const after = await guardian.query(guardianStatusQuery);
  expect(after).toMatchObject({ state: 'guarding', instanceId: second, replacements: 0 });
  expect((await instance(s.direct, REGION, first)).State?.Name).toBe('stopped');
  expect(await addressHolder(s.direct, plan)).toBe(second);
  // The same hand-over again is answered without a change.
  const repeated = await guardian.executeUpdate(retargetUpdate, {
    args: [{ instanceId: second, migrationWorkflowId: workflowId }],
  });
  expect(repeated).toEqual({
    guardianId: guardian.workflowId,
    instanceId: second,
    previousInstanceId: second,
    changed: false,
  });
});

test('two starts at once give one run: the second says it is already running, with its phase, and exits 0', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rerun-'));
  const file = join(dir, 'plan.yaml');
  const name = `twin-${Date.now().toString(36)}`;
  const example = parse(await readFile(join(REPO_ROOT, 'examples', 'video-message-app.yaml'), 'utf8')) as {
    name: string;
  };
  await writeFile(file, stringify({ ...example, name }));
  // No worker polls this queue: the run waits for one, and the status says so.
  const queue = `nobody-${name}`;
  const [a, b] = await Promise.all([
    runCli(['start', '--plan', file, '--task-queue', queue]),
    runCli(['start', '--plan', file, '--task-queue', queue]),
  ]);
  const workflowId = migrationWorkflowId(name);
  t.track({
    close: () =>
      t.client.workflow
        .getHandle(workflowId)
        .terminate('test over')
        .catch(() => undefined),
  });
  expect([a.code, b.code]).toEqual([0, 0]);
  const outs = [a.stdout, b.stdout];
  expect(outs.filter((o) => o.includes(`started ${workflowId}\n`))).toHaveLength(1);
  const second = outs.find((o) => !o.includes(`started ${workflowId}\n`)) ?? '';
  expect(second).toMatch(
    new RegExp(
      `${workflowId} is already running \\(since \\d{4}-[^,]+, phase: unknown: no worker polls task queue ${queue}`,
    ),
  );
  // One run: the first of its chain.
  const described = await t.client.workflow.getHandle(workflowId).describe();
  expect(described.status.name).toBe('RUNNING');
  expect(described.raw.workflowExecutionInfo?.firstRunId).toBe(described.runId);
});
