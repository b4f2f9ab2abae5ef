/**
 * AWS faults: a whole migration and a whole Spot recovery under seeded random throttling and
 * 5xx on every EC2 and SSM call, with the SDK's 3 attempts as in production; and the
 * non-retryable errors, on the real launch and on preflight's calls, failing fast and rolling
 * back with the old instance serving on its Elastic IP.
 */
import { TAG_STEP, TAG_WORKFLOW, guardianWorkflowId } from '../../src/shared/constants';
import { decideUpdate } from '../../src/shared/migration';
import { interruptionSignal } from '../../src/shared/spot';
import { useIntegration } from '../harness/lifecycle';
import {
  addressHolder,
  aliveInstancesOfPlan,
  imagesOfPlan,
  ingressOf,
  instance,
  instancesOfPlan,
  startMigration,
  tagsOf,
  waitForPhase,
} from '../harness/migration';
import { pollUntil } from '../harness/net';
import { failureOf, onLaunched, whoServes } from '../harness/outcome';
import { testPlan } from '../harness/seed';
import { routerStatus, waitForGuardian } from '../harness/spot';

// Its own region: the region's Spot event router is this file's alone.
const REGION = 'eu-central-1';

const t = useIntegration();

/** A scenario and worker; SDK attempts 3, as the worker's clients have in production. */
const scenario = (region?: string) => t.setup(region ? { seed: { region } } : {});

const isReal = (p: Record<string, unknown>) => p.DryRun !== 'true';

test('30% throttling and 10% 5xx on EC2 and SSM (seeded): a migration and a Spot recovery complete, nothing made twice', async () => {
  const { s, w } = await scenario(REGION);
  const plan = testPlan(s.source, s.world.ports, {
    target: { market: 'spot' },
    checks: { attempts: 5, interval: '1s' },
    spot: { pollInterval: '2s' },
  });
  t.endSpotWorkflows(REGION, () => [guardianWorkflowId(plan.name)]);
  const launched: string[] = [];
  onLaunched(s.proxy, (id) => {
    launched.push(id);
  });
  // 5xx first on 10% of calls, then throttling on a third of the rest: 30% of all calls.
  const faults = ['ec2', 'ssm'].flatMap((service, i) => [
    s.proxy.serverError('*', { service, rate: 0.1, seed: 101 + i, status: 500 }),
    s.proxy.throttle('*', { service, rate: 0.3 / 0.9, seed: 201 + i }),
  ]);

  const handle = await startMigration(t.client, w.taskQueue, plan);
  await waitForPhase(handle, 'awaiting-approval', 120_000);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await handle.result();
  expect(report.outcome).toBe('completed');
  const migrated = report.after.instanceId as string;

  const guardian = t.client.workflow.getHandle(guardianWorkflowId(plan.name));
  await waitForGuardian(guardian, 'guarding', (g) => g.state === 'guarding' && g.instanceId === migrated, 120_000);
  await pollUntil(
    'router sees the instance',
    async () => ((await routerStatus(t.client, REGION)).guarded >= 1 ? true : undefined),
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  await guardian.signal(interruptionSignal, { instanceId: migrated, kind: 'interruption' });
  const recovered = await waitForGuardian(
    guardian,
    'one replacement',
    (g) => g.replacements === 1 && g.state === 'guarding',
    120_000,
  );
  const injectedSoFar = s.proxy.calls({ injected: true }).length;
  for (const f of faults) f.remove();

  // The faults were real and many.
  const all = s.proxy.calls();
  const injected = s.proxy.calls({ injected: true });
  expect(injected.length).toBe(injectedSoFar);
  expect(injected.length).toBeGreaterThan(20);
  expect(injected.some((c) => c.status >= 500 && c.injected !== 'RequestLimitExceeded')).toBe(true);
  expect(injected.some((c) => c.injected === 'RequestLimitExceeded')).toBe(true);
  expect(injected.some((c) => c.service === 'ssm')).toBe(true);
  // Share of faulted EC2/SSM calls, roughly the 40% asked for.
  const faultable = all.filter((c) => c.service === 'ec2' || c.service === 'ssm');
  expect(injected.length / faultable.length).toBeGreaterThan(0.25);

  // One instance per launch step, ever; one alive now: the replacement, holding the EIP.
  const everything = await instancesOfPlan(s.direct, plan);
  const perStep = new Map<string, number>();
  for (const i of everything) {
    const t = tagsOf(i);
    const key = `${t[TAG_WORKFLOW]}/${t[TAG_STEP]}`;
    perStep.set(key, (perStep.get(key) ?? 0) + 1);
  }
  expect([...perStep.values()].every((n) => n === 1)).toBe(true);
  expect(new Set(launched).size).toBe(launched.length);
  expect(everything.map((i) => i.InstanceId).sort()).toEqual([...launched].sort());
  const alive = await aliveInstancesOfPlan(s.direct, plan);
  expect(alive.map((i) => i.InstanceId)).toEqual([recovered.instanceId]);
  expect(await addressHolder(s.direct, plan)).toBe(recovered.instanceId);
  expect((await instance(s.direct, REGION, migrated)).State?.Name).toBe('terminated');
  expect((await instance(s.direct, REGION, s.source.instanceId)).State?.Name).toBe('stopped');
  expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(recovered.instanceId);

  // One image per step: the backup of the old instance and the golden image of the new one.
  const images = await imagesOfPlan(s.direct, plan);
  expect(images.map((i) => (i.Tags ?? []).find((t) => t.Key === TAG_STEP)?.Value).sort()).toEqual(['backup', 'golden']);

  // Each planned rule once; nothing else added.
  const rules = await ingressOf(s.direct, REGION, s.source.securityGroupId);
  expect(rules).toEqual([`tcp/${s.world.ports.backend}/0.0.0.0/0`, `tcp/${s.world.ports.frontend}/0.0.0.0/0`].sort());
  expect(report.securityGroup?.rules.filter((r) => r.note === 'added for the plan')).toHaveLength(2);

  // The Elastic IP moved exactly twice: to the migrated instance, then to the replacement.
  const moves = s.proxy.calls({ action: 'AssociateAddress', injected: false }).filter((c) => c.status === 200);
  expect(moves).toHaveLength(2);
});

describe.each([
  ['UnauthorizedOperation', 403],
  ['InvalidAMIID.NotFound', 400],
  ['InvalidSubnetID.NotFound', 400],
] as const)('%s', (code, status) => {
  test('on the real launch: fails fast with the code, not retried; the old instance keeps serving with the EIP', async () => {
    const { s, w } = await scenario();
    const plan = testPlan(s.source, s.world.ports);
    const rule = s.proxy.fail({ action: 'RunInstances', code, status, message: `injected ${code}`, when: isReal });
    const handle = await startMigration(t.client, w.taskQueue, plan);
    const started = Date.now();
    const { failure, report } = await failureOf(handle);
    expect(Date.now() - started).toBeLessThan(15_000);

    expect(failure.type).toBe(code);
    expect(failure.message).toMatch(
      new RegExp(
        `^migration failed and rolled back: launch g4dn\\.xlarge .*: ${code.replace(/\./g, '\\.')}: injected ${code.replace(/\./g, '\\.')}`,
      ),
    );
    expect(report.error).toMatchObject({ type: code, phase: 'launch' });
    expect(report.phases.find((p) => p.name === 'launch')).toMatchObject({ state: 'failed', attempts: 1 });
    // Neither the SDK nor the activity retried it: exactly one real launch call, the injected one.
    expect(rule.fired).toBe(1);
    expect(s.proxy.calls({ action: 'RunInstances' }).filter((c) => c.status !== 412)).toHaveLength(1);

    expect(report.outcome).toBe('rolled back');
    expect(await aliveInstancesOfPlan(s.direct, plan)).toHaveLength(0);
    expect(await addressHolder(s.direct, plan)).toBe(s.source.instanceId);
    expect((await instance(s.direct, plan.region, s.source.instanceId)).State?.Name).toBe('running');
    expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(s.source.instanceId);
  });
});

describe('non-retryable errors on preflight calls (once each)', () => {
  const cases = [
    {
      code: 'UnauthorizedOperation',
      status: 403,
      action: 'RunInstances',
      when: (p: Record<string, unknown>) => p.DryRun === 'true',
      type: 'UnauthorizedOperation',
      says: /missing IAM permissions:\n- IAM: not allowed to ec2:RunInstances/,
    },
    {
      code: 'InvalidAMIID.NotFound',
      status: 400,
      action: 'DescribeImages',
      type: 'PreflightFailed',
      says: /the plan does not match AWS:\n- target\.imageId: .*InvalidAMIID\.NotFound/,
    },
    {
      code: 'InvalidSubnetID.NotFound',
      status: 400,
      action: 'DescribeSubnets',
      type: 'PreflightFailed',
      says: /the plan does not match AWS:\n- target\.subnetIds: .*InvalidSubnetID\.NotFound/,
    },
  ];
  test.each(cases.map((c) => [c.code, c.action, c] as const))(
    '%s on %s: preflight fails naming it, nothing launched',
    async (_code, _action, c) => {
      const { s, w } = await scenario();
      const plan = testPlan(s.source, s.world.ports);
      const rule = s.proxy.fail({
        action: c.action,
        code: c.code,
        status: c.status,
        times: 1,
        ...(c.when ? { when: c.when } : {}),
      });
      const handle = await startMigration(t.client, w.taskQueue, plan);
      const { failure, report } = await failureOf(handle);
      expect(failure.type).toBe(c.type);
      expect(failure.message).toMatch(c.says);
      expect(report.error?.phase).toBe('preflight');
      expect(report.phases.find((p) => p.name === 'preflight')).toMatchObject({ state: 'failed', attempts: 1 });
      expect(rule.fired).toBe(1);
      // Asked once: the preflight activity was not retried.
      const calls = s.proxy.calls({ action: c.action }).filter((x) => (c.when ? true : x.status !== 412));
      expect(calls).toHaveLength(1);
      expect(s.proxy.calls({ action: 'RunInstances' }).filter((x) => x.status === 200)).toHaveLength(0);
      expect(await addressHolder(s.direct, plan)).toBe(s.source.instanceId);
      expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(s.source.instanceId);
    },
  );
});
