/**
 * The integration harness itself, against the real Temporal dev server and moto the global
 * setup started: account isolation, injected faults as the SDK sees them, scripted Run Command
 * results, and the app's stand-ins answering on instances' public addresses.
 */
import {
  AssociateAddressCommand,
  CreateSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeVpcsCommand,
  RunInstancesCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { CreateQueueCommand, ListQueuesCommand } from '@aws-sdk/client-sqs';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  SendCommandCommand,
  waitUntilCommandExecuted,
} from '@aws-sdk/client-ssm';
import { pollUntil } from '../harness/net';
import { ALLOW_ALL } from '../harness/iam';
import { AwsProxy } from '../harness/aws-proxy';
import { connectClient, connectWorker, motoEndpoint, temporalNamespace } from '../harness/env';
import { startScenario, type Scenario } from '../harness/scenario';
import { bundledImageId, seedSource, testPlan, type SeededSource } from '../harness/seed';
import { DEFAULT_GPU_OUTPUT, START_MARKER } from '../harness/world';
import { httpGet, rejectionOf, runCommand } from '../harness/calls';

const REGION = 'us-east-1';

describe('Temporal dev server', () => {
  it('accepts a client and knows the test namespace', async () => {
    const { client, close } = await connectClient();
    try {
      const described = await client.workflowService.describeNamespace({ namespace: temporalNamespace() });
      expect(described.namespaceInfo?.name).toBe(temporalNamespace());
      const system = await client.workflowService.getSystemInfo({});
      expect(system.serverVersion).toMatch(/^\d+\.\d+/);
    } finally {
      await close();
    }
  });

  it('accepts a worker connection', async () => {
    const connection = await connectWorker();
    try {
      const system = await connection.workflowService.getSystemInfo({});
      expect(system.capabilities?.signalAndQueryHeader).toBe(true);
    } finally {
      await connection.close();
    }
  });
});

// The proxy's own mechanics, with every action allowed (strict-world.test.ts tests IAM).
describe('AwsProxy', () => {
  let proxy: AwsProxy;
  let seeded: SeededSource;
  beforeAll(async () => {
    proxy = await AwsProxy.start({ target: motoEndpoint(), policies: [ALLOW_ALL] });
    seeded = await seedSource(proxy.clients({ bypass: true }));
  });
  afterAll(() => proxy.close());
  afterEach(() => {
    proxy.reset();
    proxy.clearLog();
  });

  it('gives every proxy its own moto account', async () => {
    const other = await AwsProxy.start({ target: motoEndpoint(), policies: [ALLOW_ALL] });
    try {
      expect(other.accountId).toMatch(/^\d{12}$/);
      expect(other.accountId).not.toBe(proxy.accountId);
      const ec2 = proxy.clients().ec2(REGION);
      const otherEc2 = other.clients().ec2(REGION);
      const vpcId = (await ec2.send(new DescribeVpcsCommand({}))).Vpcs?.[0]?.VpcId;
      const group = await ec2.send(
        new CreateSecurityGroupCommand({ GroupName: 'isolation-check', Description: 'x', VpcId: vpcId }),
      );

      const mine = await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [group.GroupId ?? ''] }));
      expect(mine.SecurityGroups?.[0]?.OwnerId).toBe(proxy.accountId);
      const theirs = await otherEc2.send(
        new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: ['isolation-check'] }] }),
      );
      expect(theirs.SecurityGroups).toEqual([]);
      const missing = await rejectionOf(
        otherEc2.send(new DescribeInstancesCommand({ InstanceIds: [seeded.instanceId] })),
      );
      expect(missing.name).toBe('InvalidInstanceID.NotFound');
      // The same group name is free in the other account.
      const otherVpc = (await otherEc2.send(new DescribeVpcsCommand({}))).Vpcs?.[0]?.VpcId;
      await expect(
        otherEc2.send(
          new CreateSecurityGroupCommand({ GroupName: 'isolation-check', Description: 'x', VpcId: otherVpc }),
        ),
      ).resolves.toBeDefined();
    } finally {
      await other.close();
    }
  });

  it('makes AWS unreachable through the main door until the rule is removed; the side door still answers', async () => {
    const down = proxy.unreachable();
    const err = await rejectionOf(proxy.clients({ maxAttempts: 1 }).ec2(REGION).send(new DescribeVpcsCommand({})));
    // A socket error, no AWS error code: what the SDK sees when the endpoint cannot be reached.
    expect(err.$metadata?.httpStatusCode).toBeUndefined();
    expect(`${err.name} ${err.message}`).toMatch(/ECONNRESET|socket hang up/);
    expect(proxy.calls({ action: 'DescribeVpcs' })).toMatchObject([{ status: 0, injected: 'unreachable' }]);
    expect(down.fired).toBe(1);
    await expect(proxy.clients({ bypass: true }).ec2(REGION).send(new DescribeVpcsCommand({}))).resolves.toBeDefined();
    down.remove();
    await expect(proxy.clients().ec2(REGION).send(new DescribeVpcsCommand({}))).resolves.toBeDefined();
  });

  it('logs calls by service and action, but not side-door calls', async () => {
    const { ec2, ssm } = { ec2: proxy.clients().ec2(REGION), ssm: proxy.clients().ssm(REGION) };
    await ec2.send(new DescribeVpcsCommand({}));
    await ssm.send(
      new GetParameterCommand({ Name: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64' }),
    );
    await proxy.clients({ bypass: true }).ec2(REGION).send(new DescribeVpcsCommand({}));
    expect(proxy.calls().map(({ service, action, status, region }) => ({ service, action, status, region }))).toEqual([
      { service: 'ec2', action: 'DescribeVpcs', status: 200, region: REGION },
      { service: 'ssm', action: 'GetParameter', status: 200, region: REGION },
    ]);
    expect(proxy.count('DescribeVpcs')).toBe(1);
  });

  it('injects InsufficientInstanceCapacity as the SDK error of that name, only where `when` matches', async () => {
    const ec2 = proxy.clients({ maxAttempts: 1 }).ec2(REGION);
    const rule = proxy.fail({
      action: 'RunInstances',
      code: 'InsufficientInstanceCapacity',
      status: 500,
      times: 1,
      when: (params) => params.InstanceType === 'g4dn.xlarge',
    });
    const launch = (type: 'g4dn.xlarge' | 't3.micro') =>
      ec2.send(
        new RunInstancesCommand({
          ImageId: seeded.imageId,
          InstanceType: type,
          MinCount: 1,
          MaxCount: 1,
          SubnetId: seeded.subnetId,
        }),
      );

    const smallFirst = await launch('t3.micro');
    expect(smallFirst.Instances).toHaveLength(1);
    const err = await rejectionOf(launch('g4dn.xlarge'));
    expect(err.name).toBe('InsufficientInstanceCapacity');
    expect(err.$fault).toBe('server');
    expect(err.$metadata?.httpStatusCode).toBe(500);
    expect(err.message).toContain('g4dn.xlarge capacity');
    const retried = await launch('g4dn.xlarge');
    expect(retried.Instances?.[0]?.InstanceType).toBe('g4dn.xlarge');

    expect(rule.fired).toBe(1);
    expect(proxy.calls({ action: 'RunInstances' }).map((c) => [c.status, c.injected])).toEqual([
      [200, undefined],
      [500, 'InsufficientInstanceCapacity'],
      [200, undefined],
    ]);
  });

  it('throttles a counted number of calls, which the SDK retries', async () => {
    const ec2 = proxy.clients({ maxAttempts: 3 }).ec2(REGION);
    proxy.throttle('DescribeVpcs', { times: 2 });
    const out = await ec2.send(new DescribeVpcsCommand({}));
    expect(out.$metadata.attempts).toBe(3);
    expect(proxy.calls({ action: 'DescribeVpcs' }).map((c) => [c.status, c.injected])).toEqual([
      [503, 'RequestLimitExceeded'],
      [503, 'RequestLimitExceeded'],
      [200, undefined],
    ]);

    proxy.throttle('*', { times: 1, service: 'ssm' });
    const ssmErr = await rejectionOf(
      proxy
        .clients({ maxAttempts: 1 })
        .ssm(REGION)
        .send(new GetParameterCommand({ Name: '/x' })),
    );
    expect(ssmErr.name).toBe('ThrottlingException');
    expect(ssmErr.$metadata?.httpStatusCode).toBe(400);

    proxy.throttle('CreateQueue', { times: 1 });
    const sqs = proxy.clients({ maxAttempts: 1 }).sqs(REGION);
    const sqsErr = await rejectionOf(sqs.send(new CreateQueueCommand({ QueueName: 'events' })));
    expect(sqsErr.name).toBe('ThrottlingException');
    await sqs.send(new CreateQueueCommand({ QueueName: 'events' }));
    const queues = await sqs.send(new ListQueuesCommand({}));
    expect(queues.QueueUrls?.some((u) => u.includes(`/${proxy.accountId}/events`))).toBe(true);
  });

  it('throttles a seeded fraction of calls, the same calls for the same seed', async () => {
    const pattern = async (p: AwsProxy) => {
      p.throttle('*', { rate: 0.3, seed: 7 });
      const ec2 = p.clients({ maxAttempts: 1 }).ec2(REGION);
      const outcomes: boolean[] = [];
      for (let i = 0; i < 40; i++)
        outcomes.push(
          await ec2.send(new DescribeVpcsCommand({})).then(
            () => true,
            () => false,
          ),
        );
      return outcomes;
    };
    const first = await pattern(proxy);
    const second = await AwsProxy.start({ target: motoEndpoint(), policies: [ALLOW_ALL] });
    try {
      expect(await pattern(second)).toEqual(first);
    } finally {
      await second.close();
    }
    const failed = first.filter((ok) => !ok).length;
    expect(failed).toBeGreaterThanOrEqual(4);
    expect(failed).toBeLessThanOrEqual(20);
    expect(proxy.calls({ injected: true })).toHaveLength(failed);
  });

  it('answers server errors and adds latency', async () => {
    const ec2 = proxy.clients({ maxAttempts: 1 }).ec2(REGION);
    proxy.serverError('DescribeVpcs', { status: 503, times: 1 });
    const err = await rejectionOf(ec2.send(new DescribeVpcsCommand({})));
    expect(err.name).toBe('Unavailable');
    expect(err.$metadata?.httpStatusCode).toBe(503);

    const slow = proxy.latency({ action: 'DescribeVpcs', ms: 300, times: 1 });
    const before = Date.now();
    await ec2.send(new DescribeVpcsCommand({}));
    expect(Date.now() - before).toBeGreaterThanOrEqual(290);
    await ec2.send(new DescribeVpcsCommand({}));
    expect(slow.fired).toBe(1);
    const [, delayed, fast] = proxy.calls({ action: 'DescribeVpcs' });
    expect(delayed.durationMs).toBeGreaterThanOrEqual(290);
    expect(fast.durationMs).toBeLessThan(290);
  });

  it('scripts Run Command results; the waiter ends in FAILURE for a failed script', async () => {
    const ssm = proxy.clients({ maxAttempts: 1 }).ssm(REGION);
    const off = proxy.onCommand(({ commands }) => {
      if (commands.includes('echo hello')) return { exitCode: 0, stdout: 'hello\n' };
      if (commands.includes('exit 3')) return { status: 'Failed', exitCode: 3, stderr: 'boom' };
      return undefined;
    });
    try {
      const ok = await runCommand(ssm, seeded.instanceId, ['echo hello']);
      expect(ok.invocation).toMatchObject({
        Status: 'Success',
        StatusDetails: 'Success',
        ResponseCode: 0,
        StandardOutputContent: 'hello\n',
        InstanceId: seeded.instanceId,
      });
      const done = await waitUntilCommandExecuted(
        { client: ssm, maxWaitTime: 30, minDelay: 1 },
        { CommandId: ok.commandId, InstanceId: seeded.instanceId },
      );
      expect(done.state).toBe('SUCCESS');

      const bad = await runCommand(ssm, seeded.instanceId, ['exit 3']);
      expect(bad.invocation).toMatchObject({
        Status: 'Failed',
        StatusDetails: 'Failed',
        ResponseCode: 3,
        StandardErrorContent: 'boom',
        StandardOutputContent: '',
      });
      const waitErr = await rejectionOf(
        waitUntilCommandExecuted(
          { client: ssm, maxWaitTime: 30, minDelay: 1 },
          { CommandId: bad.commandId, InstanceId: seeded.instanceId },
        ),
      );
      const waited = JSON.parse(waitErr.message) as { state: string; reason: { Status: string; ResponseCode: number } };
      expect(waited.state).toBe('FAILURE');
      expect(waited.reason).toMatchObject({ Status: 'Failed', ResponseCode: 3 });

      // Unscripted: moto's own answer.
      const plain = await runCommand(ssm, seeded.instanceId, ['uptime']);
      expect(plain.invocation).toMatchObject({ Status: 'Success', ResponseCode: 0, StandardOutputContent: '' });
      // moto would also list every other instance as a target; the proxy does not.
      const other = await proxy
        .clients({ bypass: true })
        .ec2(REGION)
        .send(new RunInstancesCommand({ ImageId: seeded.imageId, MinCount: 1, MaxCount: 1 }));
      const otherId = other.Instances?.[0]?.InstanceId ?? '';
      const notTargeted = await rejectionOf(
        ssm.send(new GetCommandInvocationCommand({ CommandId: bad.commandId, InstanceId: otherId })),
      );
      expect(notTargeted.name).toBe('InvocationDoesNotExist');
    } finally {
      off();
    }
  });

  it('reports InProgress until a hook completes the command', async () => {
    const ssm = proxy.clients({ maxAttempts: 1 }).ssm(REGION);
    const off = proxy.onCommand(() => ({ status: 'InProgress' }));
    let finish = false;
    const offAfter = proxy.onAfter('GetCommandInvocation', ({ request }) => {
      // Once we have seen it InProgress, the waiter's first poll ends the command.
      if (finish)
        proxy.setCommandResult(String(request.params.CommandId), String(request.params.InstanceId), {
          exitCode: 0,
          stdout: 'finished',
        });
    });
    try {
      const { commandId, invocation, reads } = await runCommand(ssm, seeded.instanceId, ['sleep 30'], {
        untilDone: false,
      });
      finish = true;
      // Not there yet, Pending, then InProgress.
      expect(reads).toBeGreaterThanOrEqual(3);
      expect(invocation).toMatchObject({ Status: 'InProgress', ResponseCode: -1 });
      const done = await waitUntilCommandExecuted(
        { client: ssm, maxWaitTime: 30, minDelay: 1, maxDelay: 1 },
        { CommandId: commandId, InstanceId: seeded.instanceId },
      );
      expect(done.state).toBe('SUCCESS');
      expect(proxy.commandResult(commandId, seeded.instanceId)?.stdout).toBe('finished');
    } finally {
      off();
      offAfter();
    }
  });

  it('rejects SendCommand with InvalidInstanceId while the agent is not registered', async () => {
    const ssm = proxy.clients({ maxAttempts: 1 }).ssm(REGION);
    const rule = proxy.notRegistered(seeded.instanceId, 2);
    for (let i = 0; i < 2; i++) {
      const err = await rejectionOf(runCommand(ssm, seeded.instanceId, ['true']));
      expect(err.name).toBe('InvalidInstanceId');
      expect(err.$metadata?.httpStatusCode).toBe(400);
    }
    const { invocation } = await runCommand(ssm, seeded.instanceId, ['true']);
    expect(invocation.Status).toBe('Success');
    expect(rule.fired).toBe(2);
    expect(proxy.calls({ action: 'SendCommand' }).map((c) => c.injected)).toEqual([
      'InvalidInstanceId',
      'InvalidInstanceId',
      undefined,
    ]);
  });
});

describe('AppWorld', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await startScenario();
  });
  afterAll(() => s?.close());

  it('builds a valid plan for the seeded service', () => {
    expect(s.plan.source.instanceId).toBe(s.source.instanceId);
    expect(s.plan.elasticIp.allocationId).toBe(s.source.allocationId);
    expect(s.plan.services.map((x) => [x.name, x.port])).toEqual(
      ['backend', 'frontend', 'openvoice', 'voicevox'].map((n) => [n, s.world.ports[n]]),
    );
    expect(s.plan.remote.start.join('\n')).toContain(START_MARKER);
    expect(s.plan.remote.setup.some((c) => c.includes('nvidia-smi'))).toBe(true);
    expect(s.source.publicIp).toMatch(/^127\./);
    expect(s.world.startedInstances()).toEqual([s.source.instanceId]);
    expect(() => testPlan(s.source, s.world.ports, { services: [] })).toThrow(/services/);
  });

  it('serves the public services on the Elastic IP, and only those', async () => {
    const health = await httpGet(s.world.url(s.source.publicIp, 'backend'));
    expect(health).toMatchObject({ status: 200, servedBy: s.source.instanceId });
    expect(JSON.parse(health.body)).toEqual({ status: 'ok' });
    const page = await httpGet(s.world.url(s.source.publicIp, 'frontend'));
    expect(page.status).toBe(200);
    expect(page.body).toContain('<title>');
    const synth = await httpGet(s.world.url(s.source.publicIp, 'backend', '/api/voice/synthesize'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'hello', speaker: 1 }),
    });
    expect(synth.status).toBe(200);
    expect(JSON.parse(synth.body)).toMatchObject({ device: 'cpu' });

    expect((await httpGet(s.world.url(s.source.publicIp, 'openvoice'))).status).toBe('dropped');
    expect((await httpGet(s.world.url('127.0.0.1', 'backend'))).status).toBe('dropped');
    expect(s.world.requests({ service: 'openvoice' })[0]).toMatchObject({
      outcome: 'dropped',
      reason: expect.stringContaining('private'),
    });
  });

  it('applies configured failures and delays per service and instance', async () => {
    s.world.configure({ service: 'frontend', fail: 503 });
    s.world.configure({ service: 'backend', instanceId: s.source.instanceId, delayMs: 150 });
    try {
      expect((await httpGet(s.world.url(s.source.publicIp, 'frontend'))).status).toBe(503);
      const before = Date.now();
      expect((await httpGet(s.world.url(s.source.publicIp, 'backend'))).status).toBe(200);
      expect(Date.now() - before).toBeGreaterThanOrEqual(140);
      s.world.configure({ service: 'backend', fail: 'refuse' });
      expect((await httpGet(s.world.url(s.source.publicIp, 'backend'))).status).toBe('dropped');
    } finally {
      s.world.resetConfig();
    }
    expect((await httpGet(s.world.url(s.source.publicIp, 'frontend'))).status).toBe(200);
  });

  it('checks private services and the GPU through Run Command', async () => {
    const ssm = s.clients.ssm(REGION);
    const check = (port: number, path: string) =>
      `curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:${port}${path}`;

    const healthy = await runCommand(ssm, s.source.instanceId, [check(s.world.ports.openvoice, '/health')]);
    expect(healthy.invocation).toMatchObject({ Status: 'Success', ResponseCode: 0, StandardOutputContent: '200' });

    s.world.configure({ service: 'voicevox', instanceId: s.source.instanceId, fail: 'refuse' });
    try {
      const down = await runCommand(ssm, s.source.instanceId, [check(s.world.ports.voicevox, '/version')]);
      expect(down.invocation).toMatchObject({ Status: 'Failed', ResponseCode: 7 });
      expect(down.invocation.StandardErrorContent).toContain('Failed to connect');
      // The backend's synthesis needs VOICEVOX.
      const synth = await httpGet(s.world.url(s.source.publicIp, 'backend', '/api/voice/synthesize'), {
        method: 'POST',
        body: '{}',
      });
      expect(synth.status).toBe(503);
    } finally {
      s.world.resetConfig();
    }

    // The old t3.large has no GPU.
    const noGpu = await runCommand(ssm, s.source.instanceId, [
      'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader',
    ]);
    expect(noGpu.invocation).toMatchObject({ Status: 'Failed', ResponseCode: 9 });
    expect(s.world.commands(s.source.instanceId).map((c) => c.result.exitCode)).toEqual([0, 7, 9]);
  });

  it('starts the app on a new instance, serves it on its own address, then on the moved Elastic IP', async () => {
    const ec2 = s.clients.ec2(REGION);
    const ssm = s.clients.ssm(REGION);
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: await bundledImageId(s.direct),
        InstanceType: 'g4dn.xlarge',
        MinCount: 1,
        MaxCount: 1,
        SubnetId: s.source.subnetId,
        SecurityGroupIds: [s.source.sourceSecurityGroupId],
      }),
    );
    const newId = run.Instances?.[0]?.InstanceId ?? '';
    // As on AWS: a moment before EC2 knows it by id, a little longer before its SSM agent registers.
    const described = await pollUntil(
      'the new instance by id',
      async () => ec2.send(new DescribeInstancesCommand({ InstanceIds: [newId] })).catch(() => undefined),
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    await pollUntil(
      'its SSM agent',
      async () =>
        (await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [newId] }] })))
          .InstanceInformationList?.[0],
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    const ownIp = described.Reservations?.[0]?.Instances?.[0]?.PublicIpAddress ?? '';
    expect(ownIp).toMatch(/^127\.214\.\d+\.\d+$/);

    expect((await httpGet(s.world.url(ownIp, 'backend'))).status).toBe('dropped');
    const gpu = await runCommand(ssm, newId, [
      'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader',
    ]);
    expect(gpu.invocation).toMatchObject({ Status: 'Success', StandardOutputContent: DEFAULT_GPU_OUTPUT });
    const started = await runCommand(ssm, newId, s.plan.remote.start);
    expect(started.invocation.Status).toBe('Success');
    expect(s.world.startedInstances()).toContain(newId);

    expect(await httpGet(s.world.url(ownIp, 'backend'))).toMatchObject({ status: 200, servedBy: newId });
    const synth = await httpGet(s.world.url(ownIp, 'backend', '/api/voice/synthesize'), {
      method: 'POST',
      body: '{"text":"hi"}',
    });
    expect(JSON.parse(synth.body)).toMatchObject({ device: 'cuda' });

    await ec2.send(
      new AssociateAddressCommand({ AllocationId: s.source.allocationId, InstanceId: newId, AllowReassociation: true }),
    );
    expect(await httpGet(s.world.url(s.source.publicIp, 'backend'))).toMatchObject({ status: 200, servedBy: newId });
    // Without the EIP the old instance gets a fresh address of its own (no longer the EIP).
    const old = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [s.source.instanceId] }));
    expect(old.Reservations?.[0]?.Instances?.[0]?.PublicIpAddress).toMatch(/^127\.214\./);

    // Gpu output can be configured away.
    s.world.configureGpu({ instanceId: newId, stdout: '' });
    try {
      const empty = await runCommand(ssm, newId, ['nvidia-smi']);
      expect(empty.invocation).toMatchObject({ Status: 'Success', StandardOutputContent: '' });
    } finally {
      s.world.resetConfig();
    }
    await ec2.send(
      new AssociateAddressCommand({
        AllocationId: s.source.allocationId,
        InstanceId: s.source.instanceId,
        AllowReassociation: true,
      }),
    );
    expect(await httpGet(s.world.url(s.source.publicIp, 'backend'))).toMatchObject({
      status: 200,
      servedBy: s.source.instanceId,
    });
  });

  it('does not answer for a stopped instance', async () => {
    const ec2 = s.clients.ec2(REGION);
    expect((await httpGet(s.world.url(s.source.publicIp, 'backend'))).servedBy).toBe(s.source.instanceId);
    await ec2.send(new StopInstancesCommand({ InstanceIds: [s.source.instanceId] }));
    expect((await httpGet(s.world.url(s.source.publicIp, 'backend'))).status).toBe('dropped');
    const last = s.world.requests({ service: 'backend' }).at(-1);
    expect(last).toMatchObject({
      instanceId: s.source.instanceId,
      outcome: 'dropped',
      reason: expect.stringContaining('stopped'),
    });
    // A command to it is never delivered: it stays Pending (SSM's delivery timeout is an hour).
    const ssm = s.clients.ssm(REGION);
    const sent = await ssm.send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [s.source.instanceId],
        Parameters: { commands: ['true'] },
      }),
    );
    const read = () =>
      ssm
        .send(new GetCommandInvocationCommand({ CommandId: sent.Command?.CommandId, InstanceId: s.source.instanceId }))
        .then(
          (r) => r.Status,
          (e: Error) => e.name,
        );
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push(await read());
    expect(statuses).toEqual(['InvocationDoesNotExist', 'Pending', 'Pending', 'Pending', 'Pending']);
  });
});
