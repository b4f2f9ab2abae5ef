/**
 * The migration against the strict world, one test per place where real AWS differs from what
 * moto lets pass (docs/aws-semantics.md has the table; each test is named there). Each of these
 * fails on code that only ever met moto's leniency.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateImageCommand,
  CreateSubnetCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  RegisterImageCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { TAG_PLAN, TAG_STEP } from '../../src/shared/constants';
import { runCli, setEnv } from '../harness/cli';
import { ErrorType } from '../../src/shared/errors';
import { decideUpdate, statusQuery } from '../../src/shared/migration';
import { useIntegration } from '../harness/lifecycle';
import { aliveInstancesOfPlan, instance, instancesOfPlan, startMigration, waitForPhase } from '../harness/migration';
import { failureOf } from '../harness/outcome';
import { pollUntil } from '../harness/net';
import type { Scenario } from '../harness/scenario';
import { testPlan, type PlanOverrides } from '../harness/seed';
import { withoutAction } from '../harness/iam';
import { createQueue } from '../harness/spot';
import { iamPolicy } from '../../src/aws/permissions';
import { DeleteQueueCommand } from '@aws-sdk/client-sqs';

const t = useIntegration();

/** RunInstances that is not preflight's DryRun. */
const forReal = (params: Record<string, unknown>) => String(params.DryRun) !== 'true';
const FAST_CHECKS: PlanOverrides = { checks: { attempts: 2, interval: '1s' } };

/** Every RunInstances that was not a DryRun, as the proxy saw it. */
function launches(s: Scenario) {
  return s.proxy.calls({ action: 'RunInstances' }).filter((c) => c.status !== 412);
}

test('security group first: a target group with no ingress is opened before anything is checked from outside', async () => {
  const { s, w } = await t.setup();
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  const newId = waiting.newInstanceId as string;
  const sg = waiting.phases.find((p) => p.name === 'security-group');
  const start = waiting.phases.find((p) => p.name === 'start');
  expect(sg?.state).toBe('succeeded');
  expect(Date.parse(sg?.endedAt ?? '')).toBeLessThanOrEqual(Date.parse(start?.startedAt ?? ''));
  // Not one request to the new instance was turned away by its security group.
  expect(s.world.requests({ instanceId: newId }).filter((r) => /security group/.test(r.reason ?? ''))).toEqual([]);
  expect(s.world.requests({ instanceId: newId, outcome: 200 }).length).toBeGreaterThan(0);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(handle);
});

test('idempotency keys per run: a re-run after a rollback launches a new instance', async () => {
  const { s, w } = await t.setup();
  const first = await startMigration(t.client, w.taskQueue, s.plan);
  const firstId = (await waitForPhase(first, 'awaiting-approval')).newInstanceId as string;
  await first.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'try again' }] });
  expect((await failureOf(first)).report.outcome).toBe('rolled back');
  expect((await instance(s.direct, s.plan.region, firstId)).State?.Name).toBe('terminated');

  // Same plan, same workflow id: EC2 would answer the first run's ClientToken with its dead instance.
  const second = await startMigration(t.client, w.taskQueue, s.plan);
  const again = await waitForPhase(second, 'awaiting-approval');
  expect(again.newInstanceId).not.toBe(firstId);
  expect((await instance(s.direct, s.plan.region, again.newInstanceId as string)).State?.Name).toBe('running');
  await second.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(second);
});

test('a launch EC2 terminates in pending for lack of capacity moves on to the next pool', async () => {
  const { s, w } = await t.setup();
  const died = s.proxy.dieOnLaunch({ code: 'Server.InsufficientInstanceCapacity', times: 1, when: forReal });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  expect(died.fired).toBe(1);
  const launch = waiting.phases.find((p) => p.name === 'launch');
  expect(launch?.figures.skipped?.value).toMatch(
    /g4dn\.xlarge\/on-demand: Server\.InsufficientInstanceCapacity \(i-\w+ terminated while pending\)/,
  );
  expect(launch?.figures.instanceType?.value).toBe('g4dn.2xlarge');
  expect(launch?.attempts).toBe(1);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(handle);
});

test('a launch EC2 terminates in pending for a client reason (a KMS key) fails at once, naming the StateReason', async () => {
  const { s, w } = await t.setup();
  s.proxy.dieOnLaunch({ code: 'Client.InternalError', when: forReal });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe('LaunchTerminated');
  expect(report.error?.message).toMatch(/Client\.InternalError: Client error on launch .*KMS/);
  expect(report.phases.find((p) => p.name === 'launch')).toMatchObject({ state: 'failed', attempts: 1 });
  expect(launches(s)).toHaveLength(1);
  expect(report.outcome).toBe('rolled back');
});

test('a customer-managed key for the volumes (target.kmsKeyArn): the policy grants EC2 its use; without it the launch fails at once, naming the KMS key', async () => {
  const { s, w } = await t.setup();
  const kmsKeyArn = `arn:aws:kms:${s.plan.region}:${s.proxy.accountId}:key/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9`;
  const plan = testPlan(s.source, s.world.ports, { target: { kmsKeyArn } });
  const handle = await startMigration(t.client, w.taskQueue, plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  const volumes = await s.direct.ec2(plan.region).send(
    new DescribeVolumesCommand({
      Filters: [{ Name: 'attachment.instance-id', Values: [waiting.newInstanceId as string] }],
    }),
  );
  expect(volumes.Volumes?.map((v) => [v.Encrypted, v.KmsKeyId])).toEqual([[true, kmsKeyArn]]);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(handle);

  // The same plan under a policy without the key's statement: EC2 cannot use the key.
  const again = testPlan(s.source, s.world.ports, { target: { kmsKeyArn } });
  s.proxy.setPolicies([
    { ...iamPolicy(again), Statement: iamPolicy(again).Statement.filter((st) => st.Sid !== 'EbsKmsKey') },
  ]);
  const refused = await startMigration(t.client, w.taskQueue, again);
  const { failure, report } = await failureOf(refused);
  expect(failure.type).toBe('LaunchTerminated');
  expect(report.error?.message).toMatch(
    /terminated i-\w+ while it was pending: Client\.InternalError: Client\.InternalError: Client error on launch \(often a KMS key for the EBS volumes that the caller may not use\)/,
  );
  expect(report.phases.find((p) => p.name === 'launch')).toMatchObject({ state: 'failed', attempts: 1 });
  expect(await aliveInstancesOfPlan(s.direct, again)).toEqual([]);
});

test('Unsupported in the first subnet’s zone skips to the next subnet', async () => {
  // us-east-1e offers no g4dn or g5 (moto's offerings, as in AWS).
  const { s, w } = await t.setup();
  const zoneE = s.source.defaultSubnetIds[4];
  const plan = testPlan(s.source, s.world.ports, {
    target: { subnetIds: [zoneE, s.source.subnetId], fallbackInstanceTypes: [] },
  });
  const handle = await startMigration(t.client, w.taskQueue, plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  const launched = await instance(s.direct, plan.region, waiting.newInstanceId as string);
  expect(launched.SubnetId).toBe(s.source.subnetId);
  expect(waiting.phases.find((p) => p.name === 'launch')?.figures.skipped?.value).toBe(
    'g4dn.xlarge/on-demand: Unsupported',
  );
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  const { report } = await failureOf(handle);
  expect(report.warnings.join('\n')).toMatch(/g4dn\.xlarge is not offered in us-east-1e/);
});

test('remote steps fail when any line fails: a missing GPU fails setup even though later lines succeed', async () => {
  const { s, w } = await t.setup({
    planOverrides: { target: { instanceType: 'm5.xlarge', fallbackInstanceTypes: [] } },
  });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe(ErrorType.RemoteCommandFailed);
  const setup = report.phases.find((p) => p.name === 'setup');
  expect(setup).toMatchObject({ state: 'failed', output: { exitCode: 9 } });
  // nvidia-smi is the first of three lines; the script stopped there.
  const sent = s.world.commands().filter((c) => c.commands.some((l) => l.includes('docker --version')));
  expect(sent.length).toBeGreaterThan(0);
  for (const c of sent) expect(c.commands[0]).toBe('set -e');
});

test('a remote step on an instance that stopped running fails at once, naming it, instead of waiting for SSM', async () => {
  const { s, w } = await t.setup();
  let building: string | undefined;
  // The build runs long; meanwhile EC2 takes the instance away (a Spot interruption, say).
  s.proxy.onCommand(
    (cmd) => {
      if (!cmd.commands.some((l) => l.includes('docker compose build'))) return undefined;
      building = cmd.instanceId;
      return { status: 'InProgress' };
    },
    { prepend: true },
  );
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  await pollUntil('the build to start', async () => building, { timeoutMs: 60_000, intervalMs: 50 });
  await s.direct.ec2(s.plan.region).send(new TerminateInstancesCommand({ InstanceIds: [building as string] }));
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe(ErrorType.InstanceNotRunning);
  expect(report.phases.find((p) => p.name === 'build')).toMatchObject({ state: 'failed', attempts: 1 });
  expect(report.error?.message).toMatch(
    new RegExp(
      `'build' on ${building}: the instance is (shutting-down|terminated), so command [0-9a-f-]+ can never finish`,
    ),
  );
});

/** The id and instance of the first command whose lines include `text`, once it is sent. */
function commandOf(s: Scenario, text: string): { commandId?: string; instanceId?: string } {
  const seen: { commandId?: string; instanceId?: string } = {};
  s.proxy.onCommand(
    (cmd) => {
      if (!seen.commandId && cmd.commands.some((l) => l.includes(text)))
        Object.assign(seen, { commandId: cmd.commandId, instanceId: cmd.instanceId });
      return undefined;
    },
    { prepend: true },
  );
  return seen;
}

test('a remote step on an instance terminated after the step before it fails at once: SSM refuses the command', async () => {
  const { s, w } = await t.setup();
  const setup = commandOf(s, 'docker compose version');
  // The moment setup's command reads Success, EC2 takes the instance away: the next step, the
  // source, is sent to a terminated instance.
  let terminated = false;
  s.proxy.onAfter('GetCommandInvocation', async ({ request, call, responseBody }) => {
    if (terminated || call.status !== 200 || !setup.commandId || request.params.CommandId !== setup.commandId) return;
    if ((JSON.parse(responseBody) as { Status?: string }).Status !== 'Success') return;
    terminated = true;
    await s.direct
      .ec2(s.plan.region)
      .send(new TerminateInstancesCommand({ InstanceIds: [setup.instanceId as string] }));
  });
  const refused: string[] = [];
  s.proxy.onAfter('SendCommand', ({ request, call }) => {
    if (call.status === 400) refused.push(String(request.params.Comment));
  });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { failure, report } = await failureOf(handle);
  expect(terminated).toBe(true);
  expect(failure.type).toBe(ErrorType.InstanceNotRunning);
  expect(report.phases.find((p) => p.name === 'setup')?.state).toBe('succeeded');
  expect(report.phases.find((p) => p.name === 'source')).toMatchObject({ state: 'failed', attempts: 1 });
  expect(report.error?.message).toMatch(
    new RegExp(`'source' on ${setup.instanceId}: the instance is (shutting-down|terminated)`),
  );
  expect(report.outcome).toBe('rolled back');
  // One refused SendCommand a step (setup's reading of the GPU facts is one too), not a retry
  // every poll until the agent wait ends.
  expect(refused.filter((c) => c.endsWith(' source'))).toHaveLength(1);
  expect(new Set(refused).size).toBe(refused.length);
});

test('the first remote step on an instance terminated before its SSM agent came online fails at once: the agent wait asks EC2', async () => {
  const { s, w } = await t.setup();
  // The agent would take a minute to register; meanwhile the instance is terminated.
  s.proxy.setTiming({ agentRegistrationMs: 60_000 });
  let target: string | undefined;
  s.proxy.onAfter('DescribeInstanceInformation', async ({ request, call }) => {
    if (target || call.status !== 200) return;
    const filters = (request.params.Filters ?? []) as { Key?: string; Values?: string[] }[];
    target = filters.find((f) => f.Key === 'InstanceIds')?.Values?.[0];
    if (target) await s.direct.ec2(s.plan.region).send(new TerminateInstancesCommand({ InstanceIds: [target] }));
  });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe(ErrorType.InstanceNotRunning);
  expect(report.phases.find((p) => p.name === 'setup')).toMatchObject({ state: 'failed', attempts: 1 });
  expect(report.error?.message).toMatch(new RegExp(`'setup' on ${target}: the instance is (shutting-down|terminated)`));
  expect(report.outcome).toBe('rolled back');
  expect(s.proxy.count('SendCommand')).toBe(0);
});

test('the first remote step waits for the SSM agent with DescribeInstanceInformation, not with SendCommands that fail', async () => {
  const { s, w } = await t.setup();
  // The agent takes three seconds to register (tens of seconds on AWS).
  s.proxy.setTiming({ agentRegistrationMs: 3_000 });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  await waitForPhase(handle, 'awaiting-approval');
  const sends = s.proxy.calls({ action: 'SendCommand' });
  expect(sends.filter((c) => c.injected === 'InvalidInstanceId')).toEqual([]);
  expect(sends.every((c) => c.status === 200)).toBe(true);
  expect(s.proxy.count('DescribeInstanceInformation')).toBeGreaterThan(1);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(handle);
});

test('a subnet that does not assign public addresses still gives the new instance one', async () => {
  const { s, w } = await t.setup();
  const subnet = await s.direct.ec2(s.plan.region).send(
    new CreateSubnetCommand({
      VpcId: s.source.vpcId,
      CidrBlock: '172.31.200.0/24',
      AvailabilityZone: s.source.availabilityZone,
    }),
  );
  const subnetId = subnet.Subnet?.SubnetId as string;
  expect(subnet.Subnet?.MapPublicIpOnLaunch).toBe(false);
  const plan = testPlan(s.source, s.world.ports, { target: { subnetIds: [subnetId] } });
  const handle = await startMigration(t.client, w.taskQueue, plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  const launched = await instance(s.direct, plan.region, waiting.newInstanceId as string);
  expect(launched.SubnetId).toBe(subnetId);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(handle);
});

test('preflight refuses a root volume smaller than the image’s root snapshot, and launches nothing', async () => {
  const { s, w } = await t.setup();
  const registered = await s.direct.ec2(s.plan.region).send(
    new RegisterImageCommand({
      Name: `dlami-${s.plan.name}`,
      RootDeviceName: '/dev/sda1',
      BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { VolumeSize: 75, SnapshotId: 'snap-0123456789abcdef0' } }],
    }),
  );
  const imageId = registered.ImageId as string;
  s.proxy.setImageRootSize(imageId, 75);
  const plan = testPlan(s.source, s.world.ports, { target: { imageId, rootVolume: { sizeGiB: 30, type: 'gp3' } } });
  const handle = await startMigration(t.client, w.taskQueue, plan);
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe(ErrorType.PreflightFailed);
  expect(report.error?.message).toMatch(
    /target\.rootVolume\.sizeGiB: 30 GiB is smaller than the root snapshot of ami-\w+ \(75 GiB\); set it to at least 75/,
  );
  expect(launches(s).filter((c) => c.status === 200)).toEqual([]);
  expect(await instancesOfPlan(s.direct, plan)).toEqual([]);
});

test('the new instance lets containers reach instance metadata (IMDSv2 hop limit 2)', async () => {
  const { s, w } = await t.setup();
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  const out = await s.direct
    .ec2(s.plan.region)
    .send(new DescribeInstancesCommand({ InstanceIds: [waiting.newInstanceId as string] }));
  expect(out.Reservations?.[0]?.Instances?.[0]?.MetadataOptions).toMatchObject({
    HttpTokens: 'required',
    HttpPutResponseHopLimit: 2,
  });
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(handle);
});

/** An instance profile in moto's IAM (moto checks RunInstances' profile against it); no IAM client needed. */
async function createInstanceProfile(s: Scenario, name: string): Promise<void> {
  const res = await fetch(s.proxy.bypassEndpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      authorization:
        'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: new URLSearchParams({
      Action: 'CreateInstanceProfile',
      Version: '2010-05-08',
      InstanceProfileName: name,
    }).toString(),
  });
  if (res.status !== 200) throw new Error(`CreateInstanceProfile answered ${res.status}: ${await res.text()}`);
}

test('a new instance profile EC2 does not know yet is retried until IAM has caught up', async () => {
  const { s, w } = await t.setup();
  const profile = `${s.plan.name}-ssm`;
  await createInstanceProfile(s, profile);
  const plan = testPlan(s.source, s.world.ports, { target: { iamInstanceProfile: profile } });
  const rule = s.proxy.fail({
    action: 'RunInstances',
    code: 'InvalidParameterValue',
    message: `Value (${profile}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name`,
    times: 3,
  });
  const handle = await startMigration(t.client, w.taskQueue, plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  expect(rule.fired).toBe(3);
  // Preflight's DryRun saw it first (a warning, not a failure); the launch's first two attempts then.
  expect(waiting.phases.find((p) => p.name === 'launch')?.attempts).toBe(3);
  const launched = await instance(s.direct, plan.region, waiting.newInstanceId as string);
  expect(launched.IamInstanceProfile?.Arn).toMatch(new RegExp(`instance-profile/${profile}$`));
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(handle);
});

test('a permanent EC2 error fails the launch at once: IdempotentParameterMismatch is not retried', async () => {
  const { s, w } = await t.setup();
  const rule = s.proxy.fail({
    action: 'RunInstances',
    code: 'IdempotentParameterMismatch',
    message: 'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
    when: forReal,
  });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe('IdempotentParameterMismatch');
  expect(rule.fired).toBe(1);
  expect(report.phases.find((p) => p.name === 'launch')).toMatchObject({ state: 'failed', attempts: 1 });
});

test('preflight DryRuns the Spot launch itself: without iam:CreateServiceLinkedRole a new account fails before anything is made', async () => {
  const { s, w } = await t.setup({ planOverrides: { target: { market: 'spot' } } });
  // The account has no AWSServiceRoleForEC2Spot yet; the first Spot launch would make it.
  s.proxy.setPolicies([withoutAction(iamPolicy(s.plan), 'iam:CreateServiceLinkedRole')]);
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe(ErrorType.PreflightFailed);
  expect(report.error?.message).toMatch(
    /ec2:RunInstances \(spot\): DryRun answered AuthFailure\.ServiceLinkedRoleCreationNotPermitted/,
  );
  expect(report.phases.find((p) => p.name === 'preflight')?.attempts).toBe(1);
  expect(await aliveInstancesOfPlan(s.direct, s.plan)).toEqual([]);
});

test('a remote step whose output SSM cut says so, and shows what SSM kept', async () => {
  const { s, w } = await t.setup();
  s.world.scriptCommand('docker compose build', {
    exitCode: 1,
    stdout: 'x'.repeat(30_000),
    stderr: `${'#12 building…\n'.repeat(4_000)}ERROR: failed to solve: exit code: 1`,
  });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { report } = await failureOf(handle);
  const build = report.phases.find((p) => p.name === 'build');
  expect(build?.output?.cut).toBe(
    "the output was cut by SSM: stdout (SSM keeps its first 24,000 characters), stderr (SSM keeps its first 8,000 characters); the end of the step's output is not in it",
  );
  expect(build?.output?.stderrTail).not.toContain('failed to solve');
  expect(build?.lastError).toMatch(/the output was cut by SSM/);
});

test('a fractional checks.requestTimeoutSeconds still gives SSM a whole-second executionTimeout', async () => {
  const { s, w } = await t.setup({
    planOverrides: { ...FAST_CHECKS, checks: { ...FAST_CHECKS.checks, requestTimeoutSeconds: 2.5 } },
  });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  expect(waiting.phases.find((p) => p.name === 'start')?.state).toBe('succeeded');
  expect(s.proxy.calls({ action: 'SendCommand' }).filter((c) => c.status !== 200)).toEqual([]);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(handle);
});

test('a re-run never adopts the instance an earlier run launched, even when it is now the source', async () => {
  const { s, w } = await t.setup();
  const first = await startMigration(t.client, w.taskQueue, s.plan);
  await waitForPhase(first, 'awaiting-approval');
  await first.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const done = await first.result();
  const serving = done.after.instanceId as string;

  // Migrate again, from the instance the first run made (same plan name, so the same workflow id).
  const plan = { ...s.plan, source: { instanceId: serving } };
  const second = await startMigration(t.client, w.taskQueue, plan);
  const waiting = await waitForPhase(second, 'awaiting-approval');
  expect(waiting.newInstanceId).not.toBe(serving);
  expect((await second.query(statusQuery)).phases.find((p) => p.name === 'launch')?.figures.instanceType?.value).toBe(
    'g4dn.xlarge',
  );
  await second.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(second);
  // The rollback of the second run terminated its own instance, never the one serving.
  expect((await instance(s.direct, plan.region, serving)).State?.Name).toBe('running');
});

test('images are consistent: the backup is taken of the stopped instance, the golden one after a sync', async () => {
  const { s, w } = await t.setup();
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const newId = (await waitForPhase(handle, 'awaiting-approval')).newInstanceId as string;
  const createImages: { instanceId: string; at: Date }[] = [];
  s.proxy.onAfter('CreateImage', ({ call, request }) => {
    if (call.status === 200) createImages.push({ instanceId: String(request.params.InstanceId), at: call.at });
  });
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await handle.result();
  expect(report.outcome).toBe('completed');
  const stopped = s.proxy.calls({ action: 'StopInstances' }).filter((c) => c.status === 200);
  expect(stopped).toHaveLength(1);
  const backup = createImages.find((c) => c.instanceId === s.source.instanceId);
  const golden = createImages.find((c) => c.instanceId === newId);
  expect(backup && backup.at >= stopped[0].at).toBe(true);
  const sync = s.world.commands(newId).find((c) => c.commands.includes('sync'));
  expect(sync?.result.exitCode).toBe(0);
  const syncSent = s.proxy.sentCommands().find((c) => c.commandId === sync?.commandId);
  expect(golden && syncSent && golden.at >= syncSent.at).toBe(true);
});

test('golden images beyond spot.keepGoldenImages go with their snapshots; cleanup lists and removes what no longer serves', async () => {
  const { s, w } = await t.setup({ planOverrides: { spot: { keepGoldenImages: 1 } } });
  const ec2 = s.clients.ec2(s.plan.region);
  // Two golden images of earlier runs of this plan, tagged as the tool tags them (image and snapshots).
  const tags = [
    { Key: TAG_PLAN, Value: s.plan.name },
    { Key: TAG_STEP, Value: 'golden' },
  ];
  const older: string[] = [];
  for (const n of [1, 2]) {
    const made = await ec2.send(
      new CreateImageCommand({
        InstanceId: s.source.instanceId,
        Name: `${s.plan.name}-golden-earlier-${n}`,
        NoReboot: true,
        TagSpecifications: [
          { ResourceType: 'image', Tags: tags },
          { ResourceType: 'snapshot', Tags: tags },
        ],
      }),
    );
    older.push(made.ImageId as string);
  }
  const snapshotsOf = async (imageIds: string[]) =>
    ((await ec2.send(new DescribeImagesCommand({ ImageIds: imageIds }))).Images ?? []).flatMap((i) =>
      (i.BlockDeviceMappings ?? []).map((m) => m.Ebs?.SnapshotId as string),
    );
  const olderSnapshots = await snapshotsOf(older);
  expect(olderSnapshots).toHaveLength(2);
  const tagged = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: olderSnapshots }));
  for (const snap of tagged.Snapshots ?? []) expect(snap.Tags).toEqual(expect.arrayContaining(tags));

  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  await waitForPhase(handle, 'awaiting-approval');
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await handle.result();
  expect(report.images.deregistered?.sort()).toEqual([...older].sort());
  const left =
    (
      await s.direct.ec2(s.plan.region).send(
        new DescribeImagesCommand({
          Owners: ['self'],
          Filters: [{ Name: `tag:${TAG_PLAN}`, Values: [s.plan.name] }],
        }),
      )
    ).Images ?? [];
  expect(left.map((i) => i.ImageId).sort()).toEqual([report.images.backup, report.images.golden].sort());
  const snaps =
    (
      await s.direct.ec2(s.plan.region).send(
        new DescribeSnapshotsCommand({
          OwnerIds: ['self'],
          Filters: [{ Name: `tag:${TAG_PLAN}`, Values: [s.plan.name] }],
        }),
      )
    ).Snapshots ?? [];
  expect(snaps.some((x) => olderSnapshots.includes(x.SnapshotId as string))).toBe(false);

  // A stray instance of the plan, as a rollback whose undo failed would leave it.
  const stray = await s.direct.ec2(s.plan.region).send(
    new RunInstancesCommand({
      ImageId: s.source.imageId,
      InstanceType: 'g4dn.xlarge',
      MinCount: 1,
      MaxCount: 1,
      TagSpecifications: [
        {
          ResourceType: 'instance',
          Tags: [
            { Key: TAG_PLAN, Value: s.plan.name },
            { Key: TAG_STEP, Value: 'launch' },
          ],
        },
      ],
    }),
  );
  const strayId = stray.Instances?.[0]?.InstanceId as string;
  const dir = await mkdtemp(join(tmpdir(), 'cleanup-'));
  const file = join(dir, 'plan.json');
  await writeFile(file, JSON.stringify(s.plan));
  const restore = setEnv({
    AWS_ENDPOINT_URL: s.proxy.endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: s.plan.region,
  });
  try {
    const bad = await runCli(['cleanup', '--plan', file, '--older-than', 'soon']);
    expect(bad).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--older-than: expected a duration such as 30m, 1h or 2d, got 'soon'"),
    });

    const listed = await runCli(['cleanup', '--plan', file, '--older-than', '0s']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(`instance ${strayId}`);
    expect(listed.stdout).toContain('nothing was changed');
    // Never the serving instance, the source, the backup, the kept golden image, or the rules that serve.
    for (const kept of [report.after.instanceId, s.source.instanceId, report.images.backup, report.images.golden])
      expect(listed.stdout).not.toContain(String(kept));
    expect(listed.stdout).not.toMatch(/^ {2}rule/m);
    expect((await instance(s.direct, s.plan.region, strayId)).State?.Name).toBe('running');

    const applied = await runCli(['cleanup', '--plan', file, '--older-than', '0s', '--apply']);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain(`terminated ${strayId}`);
    expect((await instance(s.direct, s.plan.region, strayId)).State?.Name).toBe('terminated');
    expect((await instance(s.direct, s.plan.region, report.after.instanceId as string)).State?.Name).toBe('running');
    expect((await runCli(['cleanup', '--plan', file, '--older-than', '0s'])).stdout).toContain(
      `nothing left over for ${s.plan.name}`,
    );
  } finally {
    restore();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the Spot price in the report is that of a zone the plan launches in, not the cheapest of the region', async () => {
  const { s, w } = await t.setup();
  const zoneA = s.source.availabilityZone;
  s.proxy.setSpotPrice('g4dn.xlarge', zoneA, 0.2104);
  s.proxy.setSpotPrice('g4dn.xlarge', 'us-east-1b', 0.1578);
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  await waitForPhase(handle, 'awaiting-approval');
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  const { report } = await failureOf(handle);
  const spot = report.cost.rows.find((r) => r.label === 'after' && r.market === 'spot');
  expect(spot?.perHour).toMatchObject({ value: 0.2104, source: 'measured' });
});

test('revokeUnplanned closes an IPv6 rule too, verifies the group, and the rollback restores it', async () => {
  const { s, w } = await t.setup({ planOverrides: { ingress: { revokeUnplanned: true } } });
  const groupId = s.plan.target.securityGroupIds[0];
  const port = s.world.ports.openvoice;
  const ec2 = s.direct.ec2(s.plan.region);
  await ec2.send(
    new AuthorizeSecurityGroupIngressCommand({
      GroupId: groupId,
      IpPermissions: [{ IpProtocol: 'tcp', FromPort: port, ToPort: port, Ipv6Ranges: [{ CidrIpv6: '::/0' }] }],
    }),
  );
  const ipv6Rules = async () =>
    (
      (await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] }))).SecurityGroups?.[0]?.IpPermissions ??
      []
    ).flatMap((p) => (p.Ipv6Ranges ?? []).map((r) => `${p.FromPort}/${r.CidrIpv6}`));
  expect(await ipv6Rules()).toEqual([`${port}/::/0`]);

  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  expect(await ipv6Rules()).toEqual([]);
  expect(waiting.phases.find((p) => p.name === 'security-group')?.figures.unplanned?.value).toBe(1);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(handle);
  expect(await ipv6Rules()).toEqual([`${port}/::/0`]);
});

test('preflight DryRuns the backup image and the ingress change: a missing ec2:CreateImage fails before anything is made, not after approval', async () => {
  const { s, w } = await t.setup();
  s.proxy.setPolicies([withoutAction(iamPolicy(s.plan), 'ec2:CreateImage')]);
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe('UnauthorizedOperation');
  expect(report.error?.message).toMatch(
    /missing IAM permissions:\n- IAM: not allowed to ec2:CreateImage \(backup of the source\)/,
  );
  expect(s.proxy.calls({ action: 'CreateImage' }).map((c) => c.injected)).toEqual(['UnauthorizedOperation']);
  expect(s.proxy.calls({ action: 'AuthorizeSecurityGroupIngress' }).map((c) => c.status)).toEqual([412]);
  expect(launches(s).filter((c) => c.status === 200)).toEqual([]);
});

/**
 * Each action preflight can prove: taken out of the plan's policy, the migration stops in
 * preflight, naming it, and nothing is made. (SSM Run Command, termination and image cleanup
 * have no DryRun; docs/aws-semantics.md says when a missing one shows.)
 */
test.each([
  ['ec2:DescribeInstances', /ec2:DescribeInstances/],
  ['ec2:RunInstances', /IAM: not allowed to ec2:RunInstances \(spot\)/],
  ['ec2:CreateTags', /IAM: not allowed to ec2:RunInstances \(spot\)/],
  ['ec2:StopInstances', /IAM: not allowed to ec2:StopInstances/],
  ['ec2:CreateImage', /IAM: not allowed to ec2:CreateImage/],
  ['ec2:AuthorizeSecurityGroupIngress', /IAM: not allowed to ec2:AuthorizeSecurityGroupIngress/],
  ['ec2:AssociateAddress', /IAM: not allowed to ec2:AssociateAddress/],
  ['servicequotas:GetServiceQuota', /AccessDeniedException: .*servicequotas:GetServiceQuota/],
  ['sqs:ReceiveMessage', /spot\.interruptionQueueUrl: .*AccessDeniedException: .*sqs:ReceiveMessage/],
])('without %s in the policy, the migration fails in preflight and makes nothing', async (action, named) => {
  const { s, w } = await t.setup();
  const queueUrl = await createQueue(s.direct, s.plan.region);
  const plan = testPlan(s.source, s.world.ports, {
    target: { market: 'spot' },
    spot: { interruptionQueueUrl: queueUrl },
  });
  s.proxy.setPolicies([withoutAction(iamPolicy(plan), action)]);
  const handle = await startMigration(t.client, w.taskQueue, plan);
  const { report } = await failureOf(handle);
  expect(report.error?.phase).toBe('preflight');
  expect(report.error?.message).toMatch(named);
  expect(launches(s).filter((c) => c.status === 200)).toEqual([]);
  expect(s.proxy.calls({ action: 'AuthorizeSecurityGroupIngress' }).filter((c) => c.status === 200)).toEqual([]);
  expect(await instancesOfPlan(s.direct, plan)).toEqual([]);
});

test('preflight reads the vCPU quota: a Spot plan the account cannot hold fails naming the quota and what to ask for', async () => {
  const { s, w } = await t.setup({ planOverrides: { target: { market: 'spot' } } });
  // g4dn.xlarge has 4 vCPUs; with one replacement beside it the plan needs 8, and 4 are in use
  // (a g5.xlarge on Spot: the same quota).
  s.proxy.setQuota('L-3819A6DF', 8);
  await s.direct.ec2(s.plan.region).send(
    new RunInstancesCommand({
      ImageId: s.source.imageId,
      InstanceType: 'g5.xlarge',
      MinCount: 1,
      MaxCount: 1,
      InstanceMarketOptions: { MarketType: 'spot' },
    }),
  );
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe(ErrorType.PreflightFailed);
  expect(report.error?.message).toContain(
    `target.instanceType: g4dn.xlarge needs 8 vCPUs of the quota "All G and VT Spot Instance Requests" (L-3819A6DF) in ${s.plan.region} (the instance and one replacement), and 4 of its 8 are in use; ask for 12: aws service-quotas request-service-quota-increase --region ${s.plan.region} --service-code ec2 --quota-code L-3819A6DF --desired-value 12`,
  );
  expect(launches(s).filter((c) => c.status === 200)).toEqual([]);
  // Enough quota: the same plan passes preflight.
  s.proxy.setQuota('L-3819A6DF', 12);
  const again = await startMigration(
    t.client,
    w.taskQueue,
    testPlan(s.source, s.world.ports, { target: { market: 'spot' } }),
  );
  await waitForPhase(again, 'awaiting-approval');
  await again.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'ops', reason: 'test over' }] });
  await failureOf(again);
});

test('preflight proves the interruption queue is there: a queue that is not fails naming spot.interruptionQueueUrl', async () => {
  const { s, w } = await t.setup();
  const queueUrl = await createQueue(s.direct, s.plan.region);
  await s.direct.sqs(s.plan.region).send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
  const plan = testPlan(s.source, s.world.ports, {
    target: { market: 'spot' },
    spot: { interruptionQueueUrl: queueUrl },
  });
  const handle = await startMigration(t.client, w.taskQueue, plan);
  const { failure, report } = await failureOf(handle);
  expect(failure.type).toBe(ErrorType.PreflightFailed);
  expect(report.error?.message).toMatch(
    /spot\.interruptionQueueUrl: read the interruption queue .*: (QueueDoesNotExist|AWS\.SimpleQueueService\.NonExistentQueue)/,
  );
  expect(report.phases.find((p) => p.name === 'preflight')?.attempts).toBe(1);
  expect(launches(s).filter((c) => c.status === 200)).toEqual([]);
});

test('preflight warns when the public checks may not get through ingress.publicCidrs', async () => {
  const { s, w } = await t.setup({ planOverrides: { ...FAST_CHECKS, ingress: { publicCidrs: ['203.0.113.0/24'] } } });
  const handle = await startMigration(t.client, w.taskQueue, s.plan);
  const { report } = await failureOf(handle);
  expect(report.warnings).toContainEqual(
    expect.stringMatching(
      /^ingress\.publicCidrs \(203\.0\.113\.0\/24\) does not cover the whole internet: the public checks come from the worker/,
    ),
  );
  // And so it is: the checks from this machine are not let in.
  expect(report.error).toMatchObject({ type: ErrorType.ServiceCheckFailed, phase: 'start' });
});
