/**
 * A failure in each phase of the migration, in turn, against the real Temporal dev server and
 * moto: AWS errors through the proxy, remote steps and app behaviour through the world. Whatever
 * fails, the run rolls back: the old instance serves on its Elastic IP, nothing the run made is
 * left running, and the security group holds no rule the run added.
 */
import type { PlanOverrides } from '../harness/seed';
import { PHASES, decideUpdate, statusQuery, type MigrationStatus, type PhaseName } from '../../src/shared/migration';
import { ErrorType } from '../../src/shared/errors';
import { useIntegration } from '../harness/lifecycle';
import {
  addressHolder,
  aliveInstancesOfPlan,
  ingressOf,
  instance,
  instancesOfPlan,
  startMigration,
  waitForPhase,
} from '../harness/migration';
import { failureOf, onLaunched, whoServes } from '../harness/outcome';
import { startScenario, type Scenario } from '../harness/scenario';
import { pollUntil } from '../harness/net';
import { startWorker } from '../harness/worker';

const t = useIntegration();

/** Quick checks: a failing check is tried twice, a second apart. */
const FAST_CHECKS: PlanOverrides = { checks: { attempts: 2, interval: '1s' } };

/** Not preflight's DryRun. */
const forReal = (params: Record<string, unknown>) => String(params.DryRun) !== 'true';

/** The new instance's backend answers 120 ms late once the Elastic IP moved to it. */
function slowBackendOnceMoved(s: Scenario): { instanceId(): string | undefined } {
  let launched: string | undefined;
  onLaunched(s.proxy, (id) => {
    launched = id;
  });
  s.proxy.onAfter('AssociateAddress', ({ call, request }) => {
    if (call.status === 200 && forReal(request.params) && launched && request.params.InstanceId === launched) {
      s.world.configure({ service: 'backend', instanceId: launched, delayMs: 120 });
    }
  });
  return { instanceId: () => launched };
}

interface FailureCase {
  phase: PhaseName;
  how: string;
  overrides?: PlanOverrides;
  /** Sets the failure up before the run starts; returns how often an injected fault fired, if it is one. */
  arrange(s: Scenario): (() => number) | void;
  /** The failure type of the run. */
  type: string;
  /** What the failed phase's record says. */
  lastError: RegExp;
  attempts: number;
  /** For a remote step: its exit code and the tail of its stderr. */
  remote?: { exitCode: number; stderr: RegExp };
  /** Approve, so that the run reaches stop-old. */
  approve?: boolean;
  /** What else must hold once the run has rolled back. */
  verify?: (s: Scenario, status: MigrationStatus) => void | Promise<void>;
}

/** The remote steps are retried by their own policy (3 tries); every other case gives up fast. */
const CASES: FailureCase[] = [
  {
    phase: 'preflight',
    how: 'DescribeSubnets answers InvalidSubnetID.NotFound',
    arrange: (s) => {
      const rule = s.proxy.fail({
        action: 'DescribeSubnets',
        code: 'InvalidSubnetID.NotFound',
        message: `The subnet ID '${s.plan.target.subnetIds[0]}' does not exist`,
      });
      return () => rule.fired;
    },
    type: ErrorType.PreflightFailed,
    lastError: /target\.subnetIds: .*InvalidSubnetID\.NotFound/,
    attempts: 1,
  },
  {
    phase: 'launch',
    how: 'RunInstances answers InvalidParameterCombination',
    arrange: (s) => {
      const rule = s.proxy.fail({
        action: 'RunInstances',
        code: 'InvalidParameterCombination',
        message: 'Network interfaces and an instance-level security groups may not be specified on the same request',
        when: forReal,
      });
      return () => rule.fired;
    },
    type: 'InvalidParameterCombination',
    lastError: /InvalidParameterCombination/,
    attempts: 1,
  },
  {
    phase: 'setup',
    how: 'nvidia-smi finds no driver (exit 9)',
    arrange: (s) => s.world.configureGpu({ exitCode: 9 }),
    type: ErrorType.RemoteCommandFailed,
    lastError: /'setup' on i-\w+ ended Failed with exit code 9/,
    attempts: 3,
    remote: { exitCode: 9, stderr: /NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/ },
  },
  {
    phase: 'source',
    how: 'the deploy command exits 128',
    arrange: (s) =>
      s.world.scriptCommand('git clone', {
        exitCode: 128,
        stderr:
          "fatal: unable to access 'https://example.com/org/video-message-app.git/': Could not resolve host: example.com",
      }),
    type: ErrorType.RemoteCommandFailed,
    lastError: /'source' on i-\w+ ended Failed with exit code 128/,
    attempts: 3,
    remote: { exitCode: 128, stderr: /Could not resolve host: example\.com$/ },
  },
  {
    phase: 'build',
    how: 'the build exits 1 with an error on stderr',
    arrange: (s) =>
      s.world.scriptCommand('docker compose build', {
        exitCode: 1,
        stdout: '#7 [backend 3/5] RUN pip install -r requirements.txt',
        stderr:
          'failed to solve: process "/bin/sh -c pip install -r requirements.txt" did not complete successfully: exit code: 1',
      }),
    type: ErrorType.RemoteCommandFailed,
    lastError: /'build' on i-\w+ ended Failed with exit code 1: failed to solve/,
    attempts: 3,
    remote: { exitCode: 1, stderr: /did not complete successfully: exit code: 1$/ },
  },
  {
    phase: 'start',
    how: 'a private service answers 500 from inside the instance',
    overrides: FAST_CHECKS,
    arrange: (s) => {
      onLaunched(s.proxy, (id) => s.world.configure({ service: 'openvoice', instanceId: id, fail: 500 }));
    },
    type: ErrorType.ServiceCheckFailed,
    lastError: /openvoice \(:\d+, ssm\) 500/,
    attempts: 2,
    verify: (s, status) => {
      // Each attempt looked again from inside the instance (none took an earlier answer).
      const curls = (port: number) =>
        s.world.commands(status.newInstanceId).filter((c) => c.commands.some((l) => l.includes(`127.0.0.1:${port}/`)));
      expect(curls(s.world.ports.openvoice)).toHaveLength(2);
      expect(curls(s.world.ports.voicevox)).toHaveLength(2);
    },
  },
  {
    phase: 'start',
    how: 'a public service answers 503',
    overrides: FAST_CHECKS,
    arrange: (s) => {
      onLaunched(s.proxy, (id) => s.world.configure({ service: 'frontend', instanceId: id, fail: 503 }));
    },
    type: ErrorType.ServiceCheckFailed,
    lastError: /frontend \(:\d+, http\) 503/,
    attempts: 2,
  },
  {
    phase: 'voice-test',
    how: 'synthesis takes longer than maxSeconds',
    overrides: { checks: { attempts: 2, interval: '1s', voiceClone: { maxSeconds: 0.3 } } },
    arrange: (s) => {
      onLaunched(s.proxy, (id) => s.world.configure({ service: 'backend', instanceId: id, synthesisDelayMs: 700 }));
    },
    type: ErrorType.LimitExceeded,
    lastError: /synthesis took [\d.]+ s, over the limit of 0\.3 s/,
    attempts: 2,
  },
  {
    phase: 'security-group',
    how: 'AuthorizeSecurityGroupIngress answers InvalidPermission.Malformed for the second rule',
    overrides: FAST_CHECKS,
    arrange: (s) => {
      // The backend's rule is added first; the rollback must revoke it.
      const rule = s.proxy.fail({
        action: 'AuthorizeSecurityGroupIngress',
        code: 'InvalidPermission.Malformed',
        message: 'Invalid IPv4 CIDR and port range',
        when: (p) => p['IpPermissions.1.FromPort'] === String(s.world.ports.frontend),
      });
      return () => rule.fired;
    },
    type: 'InvalidPermission.Malformed',
    lastError: /InvalidPermission\.Malformed/,
    attempts: 1,
    verify: (s) => {
      // One rule was added before the failure, and the rollback revoked it.
      // (412: preflight's DryRun of the first rule.)
      expect(s.proxy.calls({ action: 'AuthorizeSecurityGroupIngress', injected: false }).map((c) => c.status)).toEqual([
        412, 200,
      ]);
      expect(s.proxy.calls({ action: 'RevokeSecurityGroupIngress' }).map((c) => c.status)).toEqual([200]);
    },
  },
  {
    phase: 'connectivity',
    how: 'a public service refuses connections on the new instance once the voice test passed',
    overrides: FAST_CHECKS,
    arrange: (s) => {
      let launched: string | undefined;
      onLaunched(s.proxy, (id) => {
        launched = id;
      });
      s.world.onServed((r) => {
        if (launched && r.instanceId === launched && r.method === 'POST' && r.outcome === 200)
          s.world.configure({ service: 'frontend', instanceId: launched, fail: 'refuse' });
      });
    },
    type: ErrorType.ServiceCheckFailed,
    lastError: /frontend \(:\d+, http\)/,
    attempts: 2,
    verify: (s, status) => {
      // The frontend answered on the new instance in the start phase, and not afterwards.
      const outcomes = s.world
        .requests({ service: 'frontend', instanceId: status.newInstanceId })
        .map((r) => r.outcome);
      expect(outcomes[0]).toBe(200);
      expect(outcomes.slice(-2)).toEqual(['dropped', 'dropped']);
    },
  },
  {
    phase: 'eip-switch',
    how: 'AssociateAddress to the new instance answers InvalidAllocationID.NotFound',
    overrides: FAST_CHECKS,
    arrange: (s) => {
      const rule = s.proxy.fail({
        action: 'AssociateAddress',
        code: 'InvalidAllocationID.NotFound',
        message: `The allocation ID '${s.plan.elasticIp.allocationId}' does not exist`,
        when: (p) => forReal(p) && p.InstanceId !== s.source.instanceId,
      });
      return () => rule.fired;
    },
    type: 'InvalidAllocationID.NotFound',
    lastError: /InvalidAllocationID\.NotFound/,
    attempts: 1,
  },
  {
    phase: 'eip-switch',
    how: 'AssociateAddress to the new instance answers Resource.AlreadyAssociated',
    overrides: FAST_CHECKS,
    arrange: (s) => {
      const rule = s.proxy.fail({
        action: 'AssociateAddress',
        code: 'Resource.AlreadyAssociated',
        message: `resource ${s.plan.elasticIp.allocationId} is already associated with associate-id eipassoc-0123456789abcdef0`,
        when: (p) => forReal(p) && p.InstanceId !== s.source.instanceId,
      });
      return () => rule.fired;
    },
    type: 'Resource.AlreadyAssociated',
    lastError: /Resource\.AlreadyAssociated/,
    attempts: 1,
  },
  {
    phase: 'performance',
    how: 'latency on the Elastic IP is over maxAverageMs once it moved',
    overrides: FAST_CHECKS,
    arrange: (s) => {
      slowBackendOnceMoved(s);
    },
    type: ErrorType.LimitExceeded,
    lastError: /latency over the plan's limits: average [\d.]+ ms > 50 ms/,
    attempts: 2,
  },
  {
    phase: 'stop-old',
    how: 'StopInstances answers UnsupportedOperation after the approval',
    overrides: FAST_CHECKS,
    approve: true,
    arrange: (s) => {
      const rule = s.proxy.fail({
        action: 'StopInstances',
        code: 'UnsupportedOperation',
        message: `The instance '${s.source.instanceId}' does not have an 'ebs' root device type and cannot be stopped.`,
        when: forReal,
      });
      return () => rule.fired;
    },
    type: 'UnsupportedOperation',
    lastError: /UnsupportedOperation/,
    attempts: 1,
  },
];

const order = (name: PhaseName) => PHASES.findIndex((p) => p.name === name);

/** The undo steps that exist once `phase` has started, most recent first. */
function expectedCompensations(s: Scenario, phase: PhaseName, newInstanceId?: string): string[] {
  const undo: [PhaseName, string][] = [
    ['stop-old', `start ${s.source.instanceId} again`],
    // Made while the person decided: a run that got to stop-old had one under way.
    ['stop-old', `discard the golden image of ${newInstanceId}`],
    ['eip-switch', `move the Elastic IP back to ${s.source.instanceId}`],
    ['security-group', 'undo the security-group changes'],
    ['launch', 'terminate the new instance'],
  ];
  return undo.filter(([p]) => order(p) <= order(phase)).map(([, name]) => name);
}

const UNDONE_PHASES: PhaseName[] = ['launch', 'security-group', 'eip-switch', 'stop-old'];

describe('a failure that retries cannot fix rolls the migration back', () => {
  test.each(CASES.map((c) => [c.phase, c.how, c] as const))('in %s: %s', async (_phase, _how, c) => {
    const s = await startScenario({ maxAttempts: 3, planOverrides: c.overrides });
    t.track(s);
    const w = await startWorker({ clients: s.clients });
    t.track({ close: () => w.stop() });
    const fired = c.arrange(s);

    const handle = await startMigration(t.client, w.taskQueue, s.plan);
    if (c.approve) {
      await waitForPhase(handle, 'awaiting-approval');
      await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'alice' }] });
    }
    const { failure, report } = await failureOf(handle);
    if (fired) expect(fired()).toBeGreaterThan(0);

    expect(failure.type).toBe(c.type);
    expect(failure.message).toMatch(/^migration failed and rolled back: /);
    expect(report.outcome).toBe('rolled back');
    expect(report.error).toMatchObject({ type: c.type, phase: c.phase });

    const status = await handle.query(statusQuery);
    expect(status.phase).toBe('rolled-back');
    expect(status.error).toMatchObject({ type: c.type, phase: c.phase });
    const failed = status.phases.find((p) => p.name === c.phase);
    expect(failed).toMatchObject({ state: 'failed', attempts: c.attempts });
    expect(failed?.lastError).toMatch(c.lastError);
    expect(failed?.endedAt).toBeDefined();
    if (c.remote) {
      expect(failed?.output?.exitCode).toBe(c.remote.exitCode);
      expect(failed?.output?.stderrTail).toMatch(c.remote.stderr);
    }
    // Before the failure every phase passed (and what was undone says so); after it nothing ran.
    const at = order(c.phase);
    expect(status.phases.map((p) => p.state)).toEqual(
      status.phases.map((p, i) =>
        i < at ? (UNDONE_PHASES.includes(p.name) ? 'compensated' : 'succeeded') : i === at ? 'failed' : 'pending',
      ),
    );
    expect(status.compensations).toEqual(
      expectedCompensations(s, c.phase, status.newInstanceId).map((name) => ({ name, state: 'done' })),
    );

    // The old instance serves on its Elastic IP, as before the run.
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');
    expect(await addressHolder(s.direct, s.plan)).toBe(s.source.instanceId);
    expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(s.source.instanceId);
    // Nothing the run made is left running; preflight made nothing at all.
    expect(await aliveInstancesOfPlan(s.direct, s.plan)).toEqual([]);
    if (c.phase === 'preflight') expect(await instancesOfPlan(s.direct, s.plan)).toEqual([]);
    else
      expect(
        status.newInstanceId === undefined ||
          (await instance(s.direct, s.plan.region, status.newInstanceId)).State?.Name === 'terminated',
      ).toBe(true);
    // The group holds no rule the run added (the seeded group had none).
    expect(await ingressOf(s.direct, s.plan.region, s.source.securityGroupId)).toEqual([]);
    await c.verify?.(s, status);
  });
});

test('a latency test over the limit once passes on its retry: the performance phase says 2 attempts', async () => {
  const s = await startScenario({ maxAttempts: 3, planOverrides: { checks: { attempts: 3, interval: '2s' } } });
  t.track(s);
  const w = await startWorker({ clients: s.clients });
  t.track({ close: () => w.stop() });
  // Slow from the Elastic IP's move on: the first latency test (and the switch's own check) sees it.
  const backend = slowBackendOnceMoved(s);
  expect(s.plan.checks.latency?.maxAverageMs).toBeLessThan(120);

  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  // Once the first try failed, the backend is quick again before the retry (2 s later) runs.
  await pollUntil(
    'the latency test to fail once',
    async () =>
      ((await handle.describe()).raw.pendingActivities ?? []).find(
        (a) => a.activityType?.name === 'latencyTest' && (a.attempt ?? 0) >= 2,
      ),
    { timeoutMs: 90_000, intervalMs: 20 },
  );
  s.world.configure({ service: 'backend', instanceId: backend.instanceId(), delayMs: 0 });

  await waitForPhase(handle, 'awaiting-approval');
  const performance = (await handle.query(statusQuery)).phases.find((p) => p.name === 'performance');
  expect(performance).toMatchObject({ state: 'succeeded', attempts: 2 });
  expect(performance?.figures.averageMs?.value).toBeLessThan(50);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'alice', reason: 'test over' }] });
  await failureOf(handle);
});
