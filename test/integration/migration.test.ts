/**
 * The whole migration against the real Temporal dev server and moto: happy paths on-demand and
 * on Spot, and the launch slice (idempotent retry, capacity, non-retryable errors).
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../src/activities';
import type { LaunchResult } from '../../src/shared/launch';
import { TAG_PLAN, TAG_STEP, TAG_WORKFLOW } from '../../src/shared/constants';
import { decideUpdate, statusQuery } from '../../src/shared/migration';
import { useIntegration } from '../harness/lifecycle';
import {
  addressHolder,
  aliveInstancesOfPlan,
  imagesOfPlan,
  ingressOf,
  instance,
  startMigration,
  tagsOf,
  waitForPhase,
} from '../harness/migration';
import { startScenario } from '../harness/scenario';

const t = useIntegration();

/** RunInstances that is not preflight's DryRun. */
const launchesForReal = (params: Record<string, unknown>) => params.DryRun !== 'true';

describe.each(['on-demand', 'spot'] as const)('a migration on %s', (market) => {
  test('moves the service, waits for approval, then stops the old instance', async () => {
    const { s, w } = await t.setup({ maxAttempts: 3, planOverrides: { target: { market } } });
    const handle = await startMigration(t.client, w.taskQueue, s.plan);

    const waiting = await waitForPhase(handle, 'awaiting-approval');
    // Every check passed; the old instance still serves while a person decides.
    expect(waiting.phases.filter((p) => p.name !== 'stop-old').map((p) => [p.name, p.state])).toEqual(
      waiting.phases.filter((p) => p.name !== 'stop-old').map((p) => [p.name, 'succeeded']),
    );
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');
    const newId = waiting.newInstanceId as string;
    expect(await addressHolder(s.direct, s.plan)).toBe(newId);

    const decision = await handle.executeUpdate(decideUpdate, {
      args: [{ decision: 'approve', by: 'alice', comment: 'numbers look right' }],
    });
    expect(decision).toMatchObject({ decision: 'approved', by: 'alice', via: 'update' });
    const report = await handle.result();

    expect(report.outcome).toBe('completed');
    const created = await instance(s.direct, s.plan.region, newId);
    expect(created.State?.Name).toBe('running');
    expect(created.InstanceType).toBe('g4dn.xlarge');
    expect(created.InstanceLifecycle === 'spot' ? 'spot' : 'on-demand').toBe(market);
    expect(tagsOf(created)).toMatchObject({
      [TAG_PLAN]: s.plan.name,
      [TAG_STEP]: 'launch',
      [TAG_WORKFLOW]: handle.workflowId,
    });
    expect(await addressHolder(s.direct, s.plan)).toBe(newId);
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('stopped');

    const images = await imagesOfPlan(s.direct, s.plan);
    const byStep = Object.fromEntries(images.map((i) => [tagsOf(i as never)[TAG_STEP], i.ImageId]));
    expect(byStep.backup).toBe(report.images.backup);
    expect(byStep.golden).toBe(report.images.golden);
    expect(report.images.backup).toMatch(/^ami-/);
    expect(report.images.golden).toMatch(/^ami-/);

    const { backend, frontend } = s.world.ports;
    expect(await ingressOf(s.direct, s.plan.region, s.source.securityGroupId)).toEqual(
      [`tcp/${backend}/0.0.0.0/0`, `tcp/${frontend}/0.0.0.0/0`].sort(),
    );

    // The report holds measured figures, and says they were measured.
    expect(report.gpu?.name).toEqual({ value: 'Tesla T4', source: 'measured' });
    expect(report.latency?.averageMs.source).toBe('measured');
    expect(typeof report.latency?.p95Ms.value).toBe('number');
    expect(report.synthesis?.seconds.source).toBe('measured');
    expect(report.approval).toMatchObject({ decision: 'approved', by: 'alice' });
    expect(report.after).toMatchObject({ instanceId: newId, instanceType: 'g4dn.xlarge', market });
    expect(report.before).toMatchObject({ instanceId: s.source.instanceId, instanceType: 't3.large' });
    expect(report.cost.rows.map((r) => `${r.label}/${r.market}`)).toEqual([
      'before/on-demand',
      'after/on-demand',
      'after/spot',
    ]);
    expect((await handle.query(statusQuery)).phase).toBe('completed');
  });
});

describe('launch', () => {
  test('a retried launch finds the instance the first attempt made and creates none', async () => {
    const s = await startScenario({ maxAttempts: 3 });
    t.track(s);
    const activities = createActivities({ aws: s.clients, pollIntervalMs: 20 });
    const input = {
      plan: s.plan,
      workflowId: `migrate-${s.plan.name}`,
      step: 'launch',
      imageId: s.plan.target.imageId as string,
    };

    const launch = (attempt: number): Promise<LaunchResult> =>
      new MockActivityEnvironment({ attempt }).run(activities.launchInstance, input) as Promise<LaunchResult>;
    const first = await launch(1);
    const second = await launch(2);

    expect(first.reused).toBe(false);
    expect(second).toMatchObject({ instanceId: first.instanceId, reused: true });
    expect(s.proxy.count('RunInstances')).toBe(1);
    const alive = await aliveInstancesOfPlan(s.direct, s.plan);
    expect(alive.map((i) => i.InstanceId)).toEqual([first.instanceId]);
    const launched = alive[0];
    expect(launched.InstanceType).toBe('g4dn.xlarge');
    expect(launched.SubnetId).toBe(s.plan.target.subnetIds[0]);
    // The groups go with the primary network interface (moto reports them only there).
    const groups = new Set(
      [...(launched.SecurityGroups ?? []), ...(launched.NetworkInterfaces?.[0]?.Groups ?? [])].map((g) => g.GroupId),
    );
    expect([...groups]).toEqual(s.plan.target.securityGroupIds);
    expect(launched.BlockDeviceMappings).toHaveLength(1);
  });

  test('InsufficientInstanceCapacity twice is retried by the activity policy and the launch succeeds', async () => {
    const { s, w } = await t.setup({ maxAttempts: 3, planOverrides: { target: { fallbackInstanceTypes: [] } } });
    s.proxy.fail({
      action: 'RunInstances',
      code: 'InsufficientInstanceCapacity',
      status: 500,
      times: 2,
      when: launchesForReal,
    });
    const handle = await startMigration(t.client, w.taskQueue, s.plan);

    const waiting = await waitForPhase(handle, 'awaiting-approval');
    const launch = waiting.phases.find((p) => p.name === 'launch');
    // The SDK does not retry capacity errors (that would only delay the fallback); the
    // activity's retry policy does, after its backoff: three attempts, one RunInstances each.
    expect(launch).toMatchObject({ state: 'succeeded', attempts: 3 });
    // (the first RunInstances is preflight's DryRun)
    expect(s.proxy.calls({ action: 'RunInstances' }).map((c) => c.injected ?? 'ok')).toEqual([
      'ok',
      'InsufficientInstanceCapacity',
      'InsufficientInstanceCapacity',
      'ok',
    ]);
    expect(await aliveInstancesOfPlan(s.direct, s.plan)).toHaveLength(1);
    await handle.cancel();
  });

  test('capacity errors on the first choices fall back to the next instance type', async () => {
    const { s, w } = await t.setup({ maxAttempts: 3 });
    s.proxy.fail({
      action: 'RunInstances',
      code: 'InsufficientInstanceCapacity',
      status: 500,
      times: 1,
      when: launchesForReal,
    });
    const handle = await startMigration(t.client, w.taskQueue, s.plan);
    const waiting = await waitForPhase(handle, 'awaiting-approval');
    const created = await instance(s.direct, s.plan.region, waiting.newInstanceId as string);
    expect(created.InstanceType).toBe('g4dn.2xlarge');
    expect(waiting.phases.find((p) => p.name === 'launch')?.attempts).toBe(1);
    await handle.cancel();
  });

  test('a non-retryable error fails the workflow at once with its AWS code and rolls back', async () => {
    const { s, w } = await t.setup({ maxAttempts: 3 });
    s.proxy.fail({
      action: 'RunInstances',
      code: 'InvalidAMIID.NotFound',
      status: 400,
      times: 10,
      message: "The image id '[ami-x]' does not exist",
      when: launchesForReal,
    });
    const handle = await startMigration(t.client, w.taskQueue, s.plan);

    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause = (err as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('InvalidAMIID.NotFound');
    expect(s.proxy.calls({ action: 'RunInstances' }).filter((c) => c.injected)).toHaveLength(1);
    const status = await handle.query(statusQuery);
    expect(status.phase).toBe('rolled-back');
    expect(status.phases.find((p) => p.name === 'launch')).toMatchObject({ state: 'failed', attempts: 1 });
    expect(await addressHolder(s.direct, s.plan)).toBe(s.source.instanceId);
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');
    expect(await aliveInstancesOfPlan(s.direct, s.plan)).toHaveLength(0);
  });
});
