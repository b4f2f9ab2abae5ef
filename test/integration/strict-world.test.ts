/**
 * The test world behaves as AWS is documented to behave where moto is lenient. Each rule here
 * is driven with plain SDK calls (no project code), and docs/aws-semantics.md names the AWS
 * document each one follows.
 */
import {
  AllocateAddressCommand,
  AssociateAddressCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateImageCommand,
  CreateSubnetCommand,
  CreateTagsCommand,
  DescribeAddressesCommand,
  DescribeImagesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstancesCommand,
  RegisterImageCommand,
  RevokeSecurityGroupIngressCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { pollUntil } from '../harness/net';
import { httpGet, rejectionOf, runCommand } from '../harness/calls';
import { startScenario, type Scenario } from '../harness/scenario';
import { PROXY_TIMING } from '../harness/aws-proxy';
import { cidrContains } from '../harness/world';
import { ALLOW_ALL, withoutAction } from '../harness/iam';
import { createQueue } from '../harness/spot';
import { iamPolicy } from '../../src/aws/permissions';
import { TAG_PLAN } from '../../src/shared/constants';

const REGION = 'us-east-1';

let s: Scenario;
beforeAll(async () => {
  s = await startScenario();
  // These tests make calls no worker makes (IAM has its own tests below, under the plan's policy).
  s.proxy.setPolicies([ALLOW_ALL]);
});
afterAll(() => s?.close());

/** A running GPU instance in the target's (empty) security group, its app started. */
async function startedTarget(): Promise<{ instanceId: string; ip: string }> {
  const run = await s.direct.ec2(REGION).send(
    new RunInstancesCommand({
      ImageId: s.source.imageId,
      InstanceType: 'g4dn.xlarge',
      MinCount: 1,
      MaxCount: 1,
      SubnetId: s.source.subnetId,
      SecurityGroupIds: [s.source.securityGroupId],
    }),
  );
  const instance = run.Instances?.[0];
  const instanceId = instance?.InstanceId ?? '';
  s.world.markStarted(instanceId);
  const { invocation } = await runCommand(s.clients.ssm(REGION), instanceId, ['true']);
  expect(invocation.Status).toBe('Success');
  const described = await s.direct.ec2(REGION).send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return { instanceId, ip: described.Reservations?.[0]?.Instances?.[0]?.PublicIpAddress ?? '' };
}

describe('security groups', () => {
  it('holds CIDRs as AWS matches them', () => {
    expect(cidrContains('0.0.0.0/0', '127.0.0.1')).toBe(true);
    expect(cidrContains('127.0.0.0/8', '127.214.3.4')).toBe(true);
    expect(cidrContains('203.0.113.0/24', '127.0.0.1')).toBe(false);
    expect(cidrContains('127.0.0.1/32', '127.0.0.1')).toBe(true);
    expect(cidrContains('127.0.0.2/32', '127.0.0.1')).toBe(false);
  });

  it('drops a connection no rule of the instance’s groups allows, and answers once one does', async () => {
    const { instanceId, ip } = await startedTarget();
    const ec2 = s.direct.ec2(REGION);
    const port = s.world.ports.backend;
    const url = s.world.url(ip, 'backend');

    // A new group allows nothing inbound.
    expect((await httpGet(url)).status).toBe('dropped');
    expect(s.world.requests({ instanceId }).at(-1)?.reason).toMatch(
      new RegExp(`no security group of ${instanceId} .* allows tcp/${port} from 127\\.`),
    );

    // A rule for another source does not let this machine in; neither does another port.
    await ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: s.source.securityGroupId,
        IpPermissions: [{ IpProtocol: 'tcp', FromPort: port, ToPort: port, IpRanges: [{ CidrIp: '203.0.113.0/24' }] }],
      }),
    );
    await ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: s.source.securityGroupId,
        IpPermissions: [
          { IpProtocol: 'tcp', FromPort: port + 1, ToPort: port + 1, IpRanges: [{ CidrIp: '0.0.0.0/0' }] },
        ],
      }),
    );
    expect((await httpGet(url)).status).toBe('dropped');

    await ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: s.source.securityGroupId,
        IpPermissions: [{ IpProtocol: 'tcp', FromPort: port, ToPort: port, IpRanges: [{ CidrIp: '127.0.0.0/8' }] }],
      }),
    );
    expect(await httpGet(url)).toMatchObject({ status: 200, servedBy: instanceId });
    // The frontend's port is still closed.
    expect((await httpGet(s.world.url(ip, 'frontend'))).status).toBe('dropped');

    await ec2.send(
      new RevokeSecurityGroupIngressCommand({
        GroupId: s.source.securityGroupId,
        IpPermissions: [{ IpProtocol: 'tcp', FromPort: port, ToPort: port, IpRanges: [{ CidrIp: '127.0.0.0/8' }] }],
      }),
    );
    expect((await httpGet(url)).status).toBe('dropped');
  });

  it('answers a revoke of a rule the group does not have with success and UnknownIpPermissions (default VPC)', async () => {
    const out = await s.clients.ec2(REGION).send(
      new RevokeSecurityGroupIngressCommand({
        GroupId: s.source.securityGroupId,
        IpPermissions: [{ IpProtocol: 'tcp', FromPort: 1, ToPort: 1, IpRanges: [{ CidrIp: '198.51.100.0/24' }] }],
      }),
    );
    expect(out.Return).toBe(true);
    expect(out.UnknownIpPermissions).toEqual([
      expect.objectContaining({ IpProtocol: 'tcp', FromPort: 1, ToPort: 1, IpRanges: [{ CidrIp: '198.51.100.0/24' }] }),
    ]);
  });

  it('serves the old instance through its own group, which lets the public ports in', async () => {
    expect(await httpGet(s.world.url(s.source.publicIp, 'backend'))).toMatchObject({
      status: 200,
      servedBy: s.source.instanceId,
    });
    expect(await httpGet(s.world.url(s.source.publicIp, 'frontend'))).toMatchObject({
      status: 200,
      servedBy: s.source.instanceId,
    });
  });
});

describe('Run Command (AWS-RunShellScript)', () => {
  it('reports the exit code of the last line unless the script stops on errors', async () => {
    const ssm = s.clients.ssm(REGION);
    // The old t3.large has no GPU: nvidia-smi exits 9.
    const plain = await runCommand(ssm, s.source.instanceId, ['nvidia-smi', 'echo after']);
    expect(plain.invocation).toMatchObject({ Status: 'Success', ResponseCode: 0 });
    expect(s.world.commands(s.source.instanceId).at(-1)?.result).toMatchObject({ exitCode: 0 });

    const lastFails = await runCommand(ssm, s.source.instanceId, ['true', 'nvidia-smi']);
    expect(lastFails.invocation).toMatchObject({ Status: 'Failed', ResponseCode: 9 });

    const strict = await runCommand(ssm, s.source.instanceId, ['set -e', 'nvidia-smi', 'docker compose up -d']);
    expect(strict.invocation).toMatchObject({ Status: 'Failed', ResponseCode: 9 });
    expect(strict.invocation.StandardErrorContent).toMatch(/NVIDIA-SMI has failed/);
  });

  it('answers InvocationDoesNotExist right after SendCommand, then Pending, then InProgress, then the result', async () => {
    const ssm = s.clients.ssm(REGION);
    const sent = await ssm.send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [s.source.instanceId],
        Parameters: { commands: ['true'] },
      }),
    );
    const read = () =>
      ssm.send(
        new GetCommandInvocationCommand({ CommandId: sent.Command?.CommandId, InstanceId: s.source.instanceId }),
      );
    // Read as fast as the calls go until the result (each state lasts 60 ms in tests).
    const seen: string[] = [];
    for (let last = ''; !['Success', 'Failed'].includes(last);) {
      const answer = await read().then(
        (inv) => {
          if (inv.Status === 'Pending' || inv.Status === 'InProgress')
            expect(inv).toMatchObject({ ResponseCode: -1, StandardOutputContent: '' });
          return inv.Status ?? '?';
        },
        (err: Error) => err.name,
      );
      if (answer !== last) seen.push(answer);
      last = answer;
    }
    expect(seen).toEqual(['InvocationDoesNotExist', 'Pending', 'InProgress', 'Success']);
  });

  it('keeps only the first 24,000 characters of stdout and 8,000 of stderr', async () => {
    const ssm = s.clients.ssm(REGION);
    s.world.scriptCommand('make noise', {
      exitCode: 1,
      stdout: `${'o'.repeat(30_000)}END-OUT`,
      stderr: `${'e'.repeat(50_000)}\nerror: the real cause`,
    });
    try {
      const { invocation } = await runCommand(ssm, s.source.instanceId, ['make noise']);
      expect(invocation.StandardOutputContent).toHaveLength(24_000);
      expect(invocation.StandardErrorContent).toHaveLength(8_000);
      expect(invocation.StandardErrorContent).not.toContain('the real cause');
    } finally {
      s.world.resetConfig();
    }
  });

  it('refuses a command to an instance that is shutting down or terminated: InvalidInstanceId', async () => {
    const { instanceId } = await startedTarget();
    await s.direct.ec2(REGION).send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    const err = await rejectionOf(
      s.clients.ssm(REGION).send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: [instanceId],
          Parameters: { commands: ['true'] },
        }),
      ),
    );
    expect(err.name).toBe('InvalidInstanceId');
    expect(err.message).toContain(instanceId);
    expect(s.world.commands(instanceId).filter((c) => c.commands.includes('true'))).toHaveLength(1);
  });

  it('refuses an executionTimeout that is not a whole number of seconds from 1 to 172800', async () => {
    const ssm = s.clients.ssm(REGION);
    const send = (executionTimeout: string) =>
      ssm.send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: [s.source.instanceId],
          Parameters: { commands: ['true'], executionTimeout: [executionTimeout] },
        }),
      );
    for (const bad of ['32.5', '0', '172801', 'soon']) {
      const err = await rejectionOf(send(bad));
      expect(err.name).toBe('InvalidParameters');
      expect(err.message).toContain('executionTimeout');
    }
    expect((await send('172800')).Command?.CommandId).toBeTruthy();
  });
});

describe('RunInstances', () => {
  const request = (extra: Partial<RunInstancesCommandInput> = {}): RunInstancesCommandInput => ({
    ImageId: s.source.imageId,
    InstanceType: 'g4dn.xlarge',
    MinCount: 1,
    MaxCount: 1,
    SubnetId: s.source.subnetId,
    ...extra,
  });
  const describe1 = async (instanceId: string) =>
    (await s.direct.ec2(REGION).send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))).Reservations?.[0]
      ?.Instances?.[0];

  it('honours ClientToken: the same reservation again, also once terminated; other parameters are a mismatch', async () => {
    const ec2 = s.clients.ec2(REGION);
    const token = `token-${Date.now()}`;
    const first = await ec2.send(new RunInstancesCommand(request({ ClientToken: token })));
    const id = first.Instances?.[0]?.InstanceId as string;
    const again = await ec2.send(new RunInstancesCommand(request({ ClientToken: token })));
    expect(again.Instances?.map((i) => i.InstanceId)).toEqual([id]);
    expect(again.ReservationId).toBe(first.ReservationId);

    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    const replayed = await ec2.send(new RunInstancesCommand(request({ ClientToken: token })));
    expect(replayed.Instances?.map((i) => i.InstanceId)).toEqual([id]);
    expect((await describe1(id))?.State?.Name).toBe('terminated');

    const mismatch = await rejectionOf(
      ec2.send(new RunInstancesCommand(request({ ClientToken: token, InstanceType: 'g5.xlarge' }))),
    );
    expect(mismatch.name).toBe('IdempotentParameterMismatch');
    // Without a token every call launches.
    const a = await ec2.send(new RunInstancesCommand(request()));
    const b = await ec2.send(new RunInstancesCommand(request()));
    expect(a.Instances?.[0]?.InstanceId).not.toBe(b.Instances?.[0]?.InstanceId);
  });

  it('dies in pending when told to: accepted, then terminated with a StateReason', async () => {
    const rule = s.proxy.dieOnLaunch({ code: 'Server.InsufficientInstanceCapacity', times: 1 });
    const out = await s.clients.ec2(REGION).send(new RunInstancesCommand(request()));
    expect(out.Instances?.[0]?.State?.Name).toBe('pending');
    const died = await describe1(out.Instances?.[0]?.InstanceId as string);
    expect(died?.State?.Name).toBe('terminated');
    expect(died?.StateReason).toEqual({
      Code: 'Server.InsufficientInstanceCapacity',
      Message: 'Server.InsufficientInstanceCapacity: Insufficient capacity to satisfy the launch request',
    });
    expect(rule.fired).toBe(1);
    const next = await s.clients.ec2(REGION).send(new RunInstancesCommand(request()));
    expect((await describe1(next.Instances?.[0]?.InstanceId as string))?.State?.Name).toBe('running');
  });

  it('answers Unsupported for a type its zone does not offer', async () => {
    const zoneE = s.source.defaultSubnetIds[4];
    const err = await rejectionOf(s.clients.ec2(REGION).send(new RunInstancesCommand(request({ SubnetId: zoneE }))));
    expect(err.name).toBe('Unsupported');
    expect(err.message).toMatch(/g4dn\.xlarge\) is not supported in your requested Availability Zone \(us-east-1e\)/);
    // Through a network interface just the same; a type offered there launches.
    const viaEni = await rejectionOf(
      s.clients
        .ec2(REGION)
        .send(
          new RunInstancesCommand(
            request({ SubnetId: undefined, NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: zoneE }] }),
          ),
        ),
    );
    expect(viaEni.name).toBe('Unsupported');
    const offered = await s.direct.ec2(REGION).send(
      new DescribeInstanceTypeOfferingsCommand({
        LocationType: 'availability-zone',
        Filters: [{ Name: 'location', Values: ['us-east-1e'] }],
      }),
    );
    const there = offered.InstanceTypeOfferings?.[0]?.InstanceType;
    expect(there).toBeTruthy();
    const ok = await s.clients
      .ec2(REGION)
      .send(new RunInstancesCommand(request({ SubnetId: zoneE, InstanceType: there })));
    expect(ok.Instances?.[0]?.InstanceId).toMatch(/^i-/);
  });

  it('gives no public address in a subnet that does not assign one, unless the request asks', async () => {
    const ec2 = s.direct.ec2(REGION);
    const subnet = await ec2.send(
      new CreateSubnetCommand({
        VpcId: s.source.vpcId,
        CidrBlock: '172.31.201.0/24',
        AvailabilityZone: s.source.availabilityZone,
      }),
    );
    const subnetId = subnet.Subnet?.SubnetId as string;
    const plain = await s.clients.ec2(REGION).send(new RunInstancesCommand(request({ SubnetId: subnetId })));
    expect((await describe1(plain.Instances?.[0]?.InstanceId as string))?.PublicIpAddress).toBeUndefined();
    const asked = await s.clients.ec2(REGION).send(
      new RunInstancesCommand(
        request({
          SubnetId: undefined,
          NetworkInterfaces: [
            {
              DeviceIndex: 0,
              SubnetId: subnetId,
              AssociatePublicIpAddress: true,
              Groups: [s.source.securityGroupId],
            },
          ],
        }),
      ),
    );
    const withIp = await describe1(asked.Instances?.[0]?.InstanceId as string);
    expect(withIp?.PublicIpAddress).toMatch(/^127\.214\./);
    expect(withIp?.NetworkInterfaces?.[0]?.Groups?.map((g) => g.GroupId)).toEqual([s.source.securityGroupId]);
  });

  it('refuses a root volume smaller than the image’s root snapshot', async () => {
    const ec2 = s.direct.ec2(REGION);
    const image = await ec2.send(
      new RegisterImageCommand({
        Name: `big-root-${Date.now()}`,
        RootDeviceName: '/dev/sda1',
        BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { VolumeSize: 75 } }],
      }),
    );
    const imageId = image.ImageId as string;
    s.proxy.setImageRootSize(imageId, 75);
    const described = await s.clients.ec2(REGION).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    expect(described.Images?.[0]?.BlockDeviceMappings?.[0]?.Ebs?.VolumeSize).toBe(75);
    const small = (size: number) =>
      request({ ImageId: imageId, BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { VolumeSize: size } }] });
    const err = await rejectionOf(s.clients.ec2(REGION).send(new RunInstancesCommand(small(30))));
    expect(err.name).toBe('InvalidBlockDeviceMapping');
    expect(err.message).toMatch(/Volume of size 30GB is smaller than snapshot .* expect size >= 75GB/);
    expect((await s.clients.ec2(REGION).send(new RunInstancesCommand(small(80)))).Instances).toHaveLength(1);
  });
});

describe('TerminateInstances', () => {
  const describe1 = async (instanceId: string) =>
    (await s.direct.ec2(REGION).send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))).Reservations?.[0]
      ?.Instances?.[0];
  // As launchInstance launches: through a network interface that goes with the instance.
  const launch = async () => {
    const run = await s.direct.ec2(REGION).send(
      new RunInstancesCommand({
        ImageId: s.source.imageId,
        InstanceType: 'g4dn.xlarge',
        MinCount: 1,
        MaxCount: 1,
        NetworkInterfaces: [
          {
            DeviceIndex: 0,
            SubnetId: s.source.subnetId,
            Groups: [s.source.securityGroupId],
            DeleteOnTermination: true,
            AssociatePublicIpAddress: true,
          },
        ],
      }),
    );
    return run.Instances?.[0]?.InstanceId as string;
  };

  it('is idempotent: an instance terminated already is terminated again, with success', async () => {
    const ec2 = s.clients.ec2(REGION);
    const gone = await launch();
    const alive = await launch();
    await s.direct.ec2(REGION).send(new TerminateInstancesCommand({ InstanceIds: [gone] }));
    const again = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [gone] }));
    expect(again.TerminatingInstances?.map((i) => i.InstanceId)).toEqual([gone]);
    expect((await describe1(gone))?.State?.Name).toBe('terminated');
    // With one still running in the same call: that one goes too.
    const both = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [gone, alive] }));
    expect(both.TerminatingInstances?.map((i) => i.InstanceId).sort()).toEqual([gone, alive].sort());
    expect(both.TerminatingInstances?.find((i) => i.InstanceId === alive)?.PreviousState?.Name).toBe('running');
    expect((await describe1(alive))?.State?.Name).toBe('terminated');
  });

  it('disassociates the Elastic IP of an instance it terminates, through either door; stopping keeps it', async () => {
    const ec2 = s.direct.ec2(REGION);
    const address = async (allocationId: string) =>
      (await ec2.send(new DescribeAddressesCommand({ AllocationIds: [allocationId] }))).Addresses?.[0];
    for (const door of [s.clients.ec2(REGION), ec2]) {
      const id = await launch();
      const eip = await ec2.send(new AllocateAddressCommand({ Domain: 'vpc' }));
      const allocationId = eip.AllocationId as string;
      await ec2.send(new AssociateAddressCommand({ AllocationId: allocationId, InstanceId: id }));
      await ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
      expect((await address(allocationId))?.InstanceId).toBe(id);
      await door.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
      const after = await address(allocationId);
      expect(after?.AllocationId).toBe(allocationId);
      expect(after?.InstanceId).toBeUndefined();
      expect(after?.AssociationId).toBeUndefined();
    }
  });

  it('still refuses an id it does not know, and then terminates none of the others', async () => {
    const alive = await launch();
    const err = await rejectionOf(
      s.clients.ec2(REGION).send(new TerminateInstancesCommand({ InstanceIds: [alive, 'i-0123456789abcdef0'] })),
    );
    expect(err.name).toBe('InvalidInstanceID.NotFound');
    expect((await describe1(alive))?.State?.Name).toBe('running');
  });
});

describe('a new instance, a moment after launch', () => {
  it('is not there yet by id or in listings, then is; its SSM agent registers a little later', async () => {
    // Long enough for the checks below to land inside the lag on a loaded machine.
    s.proxy.setTiming({ consistencyLagMs: 3_000, agentRegistrationMs: 4_000 });
    try {
      const ec2 = s.clients.ec2(REGION);
      const ssm = s.clients.ssm(REGION);
      const out = await ec2.send(
        new RunInstancesCommand({
          ImageId: s.source.imageId,
          InstanceType: 'g4dn.xlarge',
          MinCount: 1,
          MaxCount: 1,
          SubnetId: s.source.subnetId,
        }),
      );
      const id = out.Instances?.[0]?.InstanceId as string;
      expect((await rejectionOf(ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })))).name).toBe(
        'InvalidInstanceID.NotFound',
      );
      expect(
        (await rejectionOf(ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'k', Value: 'v' }] }))))
          .name,
      ).toBe('InvalidInstanceID.NotFound');
      const listing = await ec2.send(
        new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['running', 'pending'] }] }),
      );
      expect(listing.Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId)).not.toContain(id);
      const info = () =>
        ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [id] }] }));
      expect((await info()).InstanceInformationList).toEqual([]);
      expect(
        (
          await rejectionOf(
            ssm.send(
              new SendCommandCommand({
                DocumentName: 'AWS-RunShellScript',
                InstanceIds: [id],
                Parameters: { commands: ['true'] },
              }),
            ),
          )
        ).name,
      ).toBe('InvalidInstanceId');

      await pollUntil(
        'the instance to be visible by id',
        async () => (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0],
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      const online = await pollUntil('the agent to register', async () => (await info()).InstanceInformationList?.[0], {
        timeoutMs: 15_000,
        intervalMs: 50,
      });
      expect(online).toMatchObject({ InstanceId: id, PingStatus: 'Online', PlatformType: 'Linux' });
      const { invocation } = await runCommand(ssm, id, ['true']);
      expect(invocation.Status).toBe('Success');
      // The old instance (there long before) is Online from the start.
      const all = await ssm.send(new DescribeInstanceInformationCommand({}));
      expect(all.InstanceInformationList?.map((i) => i.InstanceId)).toEqual(
        expect.arrayContaining([s.source.instanceId, id]),
      );
    } finally {
      s.proxy.setTiming(PROXY_TIMING);
    }
  });
});

describe('IAM: every call is authorised by the policy `migration iam-policy --plan` prints', () => {
  let iam: Scenario;
  beforeAll(async () => {
    iam = await startScenario();
  });
  afterAll(() => iam?.close());
  const launch = (extra: Partial<RunInstancesCommandInput> = {}): RunInstancesCommandInput => ({
    ImageId: iam.source.imageId,
    InstanceType: 'g4dn.xlarge',
    MinCount: 1,
    MaxCount: 1,
    SubnetId: iam.source.subnetId,
    TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: TAG_PLAN, Value: iam.plan.name }] }],
    ...extra,
  });
  it('allows what the plan policy allows and nothing else, answering as each service does', async () => {
    iam.proxy.setPolicies([iamPolicy(iam.plan)]);
    const ec2 = iam.clients.ec2(REGION);
    const ours = (await ec2.send(new RunInstancesCommand(launch()))).Instances?.[0]?.InstanceId as string;
    // Launched without tags: not the plan's, so the plan may not terminate or tag it.
    const foreign = (await ec2.send(new RunInstancesCommand(launch({ TagSpecifications: undefined })))).Instances?.[0]
      ?.InstanceId as string;

    const denied = await rejectionOf(ec2.send(new TerminateInstancesCommand({ InstanceIds: [foreign] })));
    expect(denied.name).toBe('UnauthorizedOperation');
    expect(denied.message).toContain(
      `is not authorized to perform: ec2:TerminateInstances on resource: arn:aws:ec2:${REGION}:${iam.proxy.accountId}:instance/${foreign}`,
    );
    expect(
      (await rejectionOf(ec2.send(new CreateTagsCommand({ Resources: [foreign], Tags: [{ Key: 'k', Value: 'v' }] }))))
        .name,
    ).toBe('UnauthorizedOperation');
    // Tagging the plan's own instance is allowed (once EC2 knows it: eventual consistency).
    await pollUntil(
      'tagging our instance',
      async () => {
        const err = await ec2.send(new CreateTagsCommand({ Resources: [ours], Tags: [{ Key: 'k', Value: 'v' }] })).then(
          () => undefined,
          (e: Error) => e,
        );
        if (err?.name === 'InvalidInstanceID.NotFound') return undefined;
        if (err) throw err;
        return true;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [ours] }));

    // aws:RequestedRegion: the same launch in another region is refused, a DryRun too.
    const elsewhere = await rejectionOf(
      iam.clients
        .ec2('eu-west-1')
        .send(new RunInstancesCommand({ ImageId: iam.source.imageId, MinCount: 1, MaxCount: 1, DryRun: true })),
    );
    expect(elsewhere.name).toBe('UnauthorizedOperation');
    expect((await rejectionOf(ec2.send(new RunInstancesCommand(launch({ DryRun: true }))))).name).toBe(
      'DryRunOperation',
    );

    // SSM: only AWS-RunShellScript; SQS: only the plan's queue.
    const ssm = await rejectionOf(
      iam.clients.ssm(REGION).send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunPowerShellScript',
          InstanceIds: [iam.source.instanceId],
          Parameters: { commands: ['true'] },
        }),
      ),
    );
    expect(ssm.name).toBe('AccessDeniedException');
    expect(ssm.message).toContain(
      'ssm:SendCommand on resource: arn:aws:ssm:us-east-1::document/AWS-RunPowerShellScript',
    );
    const queue = await createQueue(iam.direct, REGION);
    const other = await createQueue(iam.direct, REGION);
    iam.proxy.setPolicies([iamPolicy({ ...iam.plan, spot: { ...iam.plan.spot, interruptionQueueUrl: queue } })]);
    await iam.clients.sqs(REGION).send(new ReceiveMessageCommand({ QueueUrl: queue, WaitTimeSeconds: 0 }));
    const sqs = await rejectionOf(
      iam.clients.sqs(REGION).send(new ReceiveMessageCommand({ QueueUrl: other, WaitTimeSeconds: 0 })),
    );
    expect(sqs.name).toBe('AccessDeniedException');
    expect(sqs.message).toContain('sqs:ReceiveMessage');
  });

  it('refuses an action taken out of the policy, also to a DryRun', async () => {
    iam.proxy.setPolicies([withoutAction(iamPolicy(iam.plan), 'ec2:CreateImage')]);
    const err = await rejectionOf(
      iam.clients
        .ec2(REGION)
        .send(
          new CreateImageCommand({ InstanceId: iam.source.instanceId, Name: `backup-${Date.now()}`, DryRun: true }),
        ),
    );
    expect(err.name).toBe('UnauthorizedOperation');
    // Tags on create need ec2:CreateTags with ec2:CreateAction = the creating call.
    iam.proxy.setPolicies([withoutAction(iamPolicy(iam.plan), 'ec2:CreateTags')]);
    expect(
      (await rejectionOf(iam.clients.ec2(REGION).send(new RunInstancesCommand(launch({ DryRun: true }))))).name,
    ).toBe('UnauthorizedOperation');
    expect(
      (
        await rejectionOf(
          iam.clients.ec2(REGION).send(new RunInstancesCommand(launch({ DryRun: true, TagSpecifications: undefined }))),
        )
      ).name,
    ).toBe('DryRunOperation');
  });

  it('lets EC2 use a customer-managed key for the volumes only with its grants: else the instance dies in pending', async () => {
    const key = `arn:aws:kms:${REGION}:${iam.proxy.accountId}:key/0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3`;
    const withKey = launch({
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 30, Encrypted: true, KmsKeyId: key } }],
    });
    const stateOf = async (id: string) =>
      (await iam.direct.ec2(REGION).send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations?.[0]
        ?.Instances?.[0];
    iam.proxy.setPolicies([iamPolicy(iam.plan)]);
    // Accepted (DryRun does not ask KMS either), then terminated.
    expect(
      (await rejectionOf(iam.clients.ec2(REGION).send(new RunInstancesCommand({ ...withKey, DryRun: true })))).name,
    ).toBe('DryRunOperation');
    const refused = (await iam.clients.ec2(REGION).send(new RunInstancesCommand(withKey))).Instances?.[0]
      ?.InstanceId as string;
    expect(await stateOf(refused)).toMatchObject({
      State: { Name: 'terminated' },
      StateReason: { Code: 'Client.InternalError', Message: 'Client.InternalError: Client error on launch' },
    });
    // The plan's policy with the key names its grants (through EC2 only).
    const keyed = iamPolicy({ ...iam.plan, target: { ...iam.plan.target, kmsKeyArn: key } });
    expect(keyed.Statement.find((st) => st.Sid === 'EbsKmsKey')).toMatchObject({
      Resource: key,
      Condition: { StringEquals: { 'kms:ViaService': `ec2.${REGION}.amazonaws.com` } },
    });
    iam.proxy.setPolicies([keyed]);
    const ok = (await iam.clients.ec2(REGION).send(new RunInstancesCommand(withKey))).Instances?.[0]
      ?.InstanceId as string;
    expect((await stateOf(ok))?.State?.Name).toBe('running');
  });

  it('makes the Spot service-linked role on the first Spot launch, which needs iam:CreateServiceLinkedRole', async () => {
    const spot = launch({
      InstanceMarketOptions: {
        MarketType: 'spot',
        SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' },
      },
    });
    iam.proxy.setPolicies([withoutAction(iamPolicy(iam.plan), 'iam:CreateServiceLinkedRole')]);
    const err = await rejectionOf(iam.clients.ec2(REGION).send(new RunInstancesCommand(spot)));
    expect(err.name).toBe('AuthFailure.ServiceLinkedRoleCreationNotPermitted');
    // On-demand needs no such role.
    await iam.clients.ec2(REGION).send(new RunInstancesCommand(launch()));
    iam.proxy.setPolicies([iamPolicy(iam.plan)]);
    await iam.clients.ec2(REGION).send(new RunInstancesCommand(spot));
    // The role exists now: later Spot launches do not need the permission.
    iam.proxy.setPolicies([withoutAction(iamPolicy(iam.plan), 'iam:CreateServiceLinkedRole')]);
    expect((await iam.clients.ec2(REGION).send(new RunInstancesCommand(spot))).Instances).toHaveLength(1);
  });
});
