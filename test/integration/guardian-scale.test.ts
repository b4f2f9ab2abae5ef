/**
 * The guardian at scale and under a crash, against the real dev server and moto: 50 guardians
 * in one region share one batched DescribeInstances per poll and all recover when their
 * instances go; a worker killed the moment its replacement start was sent leaves exactly one
 * replacement and one start command.
 */
import { randomBytes } from 'node:crypto';
import {
  AllocateAddressCommand,
  AssociateAddressCommand,
  DescribeAddressesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { WorkflowHandle } from '@temporalio/client';
import { guardianWorkflowId } from '../../src/shared/constants';
import { decideUpdate } from '../../src/shared/migration';
import { interruptionSignal, type GuardianInput } from '../../src/shared/spot';
import type { spotGuardian } from '../../src/workflows';
import { useIntegration } from '../harness/lifecycle';
import { aliveInstancesOfPlan, instance, startMigration, waitForPhase } from '../harness/migration';
import { pollUntil } from '../harness/net';
import { startScenario } from '../harness/scenario';
import { openPlannedIngress, tagForPlan, testPlan } from '../harness/seed';
import { countScans, routerStatus, waitForGuardian } from '../harness/spot';
import { START_MARKER } from '../harness/world';

const t = useIntegration();

test('50 guardians in one region: one DescribeInstances per poll, and all recover when their instances go', async () => {
  const REGION = 'eu-west-1';
  const COUNT = 50;
  const { s, w } = await t.setup({ seed: { region: REGION } });
  const ec2 = s.direct.ec2(REGION);
  const scans = countScans(s.proxy);

  // 50 services on Spot, each with its own instance and Elastic IP.
  const launched = await ec2.send(
    new RunInstancesCommand({
      ImageId: s.source.imageId,
      InstanceType: 'g4dn.xlarge',
      MinCount: COUNT,
      MaxCount: COUNT,
      SubnetId: s.source.subnetId,
      SecurityGroupIds: [s.source.securityGroupId],
      InstanceMarketOptions: { MarketType: 'spot' },
    }),
  );
  const ids = (launched.Instances ?? []).map((i) => i.InstanceId as string);
  expect(ids).toHaveLength(COUNT);
  const names: string[] = [];
  const handles: WorkflowHandle<typeof spotGuardian>[] = [];
  t.endSpotWorkflows(REGION, () => names.map(guardianWorkflowId));
  for (const [i, instanceId] of ids.entries()) {
    s.world.markStarted(instanceId);
    const address = await ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }));
    await ec2.send(
      new AssociateAddressCommand({
        AllocationId: address.AllocationId,
        InstanceId: instanceId,
        AllowReassociation: true,
      }),
    );
    const plan = testPlan(s.source, s.world.ports, {
      name: `fleet-${i}-${randomBytes(2).toString('hex')}`,
      elasticIp: { allocationId: address.AllocationId as string },
      target: { market: 'spot' },
      spot: { pollInterval: '1s' },
      checks: { attempts: 10, interval: '1s' },
    });
    names.push(plan.name);
    // As the migration would have left it: the instance tagged with its plan, the public ports
    // open on the target group.
    await tagForPlan(s.direct, plan, [instanceId]);
    if (i === 0) await openPlannedIngress(s.direct, plan);
    const input: GuardianInput = { plan, instanceId, goldenImageId: s.source.imageId };
    handles.push(
      await t.client.workflow.start<typeof spotGuardian>('spotGuardian', {
        taskQueue: w.taskQueue,
        workflowId: guardianWorkflowId(plan.name),
        args: [input],
      }),
    );
  }

  await pollUntil(
    'the router to know all 50 instances',
    async () => ((await routerStatus(t.client, REGION)).guarded === COUNT ? true : undefined),
    { timeoutMs: 90_000, intervalMs: 250 },
  );
  // Over a stretch of 1 s polls, the router made one DescribeInstances each: not one per guardian.
  const from = { at: Date.now(), scans: scans.count };
  await pollUntil('five more scans', async () => (scans.count >= from.scans + 5 ? true : undefined), {
    timeoutMs: 30_000,
    intervalMs: 100,
  });
  const seconds = (Date.now() - from.at) / 1000;
  expect(scans.count - from.scans).toBeLessThanOrEqual(Math.ceil(seconds) + 1);

  // Every instance goes at once, with no warning: the batched poll finds them all.
  await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
  for (const handle of handles) {
    await waitForGuardian(handle, 'replaced', (g) => g.replacements === 1 && g.state === 'guarding', 240_000);
  }
  const holders = await ec2.send(new DescribeAddressesCommand({}));
  const onReplacements = (holders.Addresses ?? []).filter(
    (a) => a.InstanceId && !ids.includes(a.InstanceId) && a.InstanceId !== s.source.instanceId,
  );
  expect(onReplacements).toHaveLength(COUNT);
  for (const a of onReplacements)
    expect((await instance(s.direct, REGION, a.InstanceId as string)).State?.Name).toBe('running');
}, 420_000);

test('a worker killed the moment its replacement start was sent: exactly one replacement, one start command', async () => {
  const REGION = 'eu-west-2';
  const s = t.track(await startScenario({ maxAttempts: 3, seed: { region: REGION } }));
  // Generous check attempts: on a loaded machine a slow check must not fail the replacement.
  const plan = testPlan(s.source, s.world.ports, {
    target: { market: 'spot' },
    spot: { pollInterval: '1s' },
    checks: { attempts: 20, interval: '1s' },
  });
  const taskQueue = `guard-crash-${randomBytes(5).toString('hex')}`;
  const spawnWorker = (identity: string) => t.spawnWorker({ taskQueue, awsEndpoint: s.proxy.endpoint, identity });
  const first = await spawnWorker('first');
  t.endSpotWorkflows(REGION, () => [guardianWorkflowId(plan.name)]);

  const migration = await startMigration(t.client, taskQueue, plan);
  await waitForPhase(migration, 'awaiting-approval', 60_000);
  await migration.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await migration.result();
  const guardian = t.client.workflow.getHandle(guardianWorkflowId(plan.name));
  const guarded = await waitForGuardian(
    guardian,
    'guarding',
    (g) => g.state === 'guarding' && g.instanceId === report.after.instanceId,
  );
  const launchesBefore = s.proxy.count('RunInstances');
  const oldOnes = [guarded.instanceId, report.before.instanceId ?? s.source.instanceId];
  const isStart = (c: { commands: string[] }) => c.commands.some((line) => line.includes(START_MARKER));
  const startsOn = (instanceId: string) =>
    s.proxy.sentCommands().filter((c) => c.instanceIds.includes(instanceId) && isStart(c));

  // The replacement's app start runs until the test lets it finish. The worker dies at the worst
  // moment: SSM has accepted the start command, and the worker never learns its id, so no
  // heartbeat carries it to the next attempt.
  s.world.scriptCommand(START_MARKER, { status: 'InProgress' });
  let killed: ReturnType<typeof first.kill> | undefined;
  const unhook = s.proxy.onAfter('SendCommand', async ({ request }) => {
    const targets = Array.isArray(request.params.InstanceIds) ? (request.params.InstanceIds as string[]) : [];
    if (killed || !JSON.stringify(request.params).includes(START_MARKER) || targets.some((id) => oldOnes.includes(id)))
      return;
    killed = first.kill();
    await killed;
  });
  t.track({ close: async () => unhook() });
  await guardian.signal(interruptionSignal, { instanceId: guarded.instanceId, kind: 'interruption' });
  await pollUntil('the worker killed as the replacement start was sent', async () => killed, {
    timeoutMs: 60_000,
    intervalMs: 100,
  });
  expect(await killed).toEqual({ code: null, signal: 'SIGKILL' });
  unhook();
  const [start, ...others] = s.proxy
    .sentCommands()
    .filter((c) => isStart(c) && !c.instanceIds.some((id) => oldOnes.includes(id)));
  expect(others).toEqual([]);
  const replacement = start.instanceIds[0];
  const restarted = new Date();
  const second = await spawnWorker('second');

  // After the heartbeat timeout the start step runs again on the second worker; it finds the
  // command by its step mark and waits for it instead of starting the app a second time.
  await pollUntil(
    'the start step retried on the second worker',
    async () => {
      const pending = (await guardian.describe()).raw.pendingActivities ?? [];
      return pending.find(
        (a) =>
          a.activityType?.name === 'runRemote' && (a.attempt ?? 0) >= 2 && a.lastWorkerIdentity === second.identity,
      );
    },
    { timeoutMs: 120_000, intervalMs: 250 },
  );
  await pollUntil(
    'the retried step to wait on the first command',
    async () => s.proxy.calls({ action: 'GetCommandInvocation' }).find((c) => c.at >= restarted),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  expect(s.proxy.calls({ action: 'ListCommands' }).filter((c) => c.at >= restarted).length).toBeGreaterThanOrEqual(1);
  expect(startsOn(replacement).map((c) => c.commandId)).toEqual([start.commandId]);

  s.world.resetConfig();
  s.world.markStarted(replacement);
  s.proxy.setCommandResult(start.commandId, replacement, { status: 'Success', exitCode: 0 });

  const after = await waitForGuardian(
    guardian,
    'one replacement',
    (g) => g.replacements === 1 && g.state === 'guarding',
    120_000,
  );
  expect(after.instanceId).toBe(replacement);
  expect(s.proxy.count('RunInstances') - launchesBefore).toBe(1);
  expect(startsOn(replacement)).toHaveLength(1);
  expect((await aliveInstancesOfPlan(s.direct, plan)).map((i) => i.InstanceId)).toEqual([replacement]);
}, 300_000);
