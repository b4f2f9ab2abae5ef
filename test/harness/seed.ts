/**
 * The "old" service in moto: what a migration starts from. A t3.large running a bundled Amazon
 * Linux AMI in the default VPC, with its own security group and an Elastic IP.
 */
import {
  AllocateAddressCommand,
  AssociateAddressCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateTagsCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  RunInstancesCommand,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { randomBytes } from 'node:crypto';
import type { AwsClients } from '../../src/aws/clients';
import { plannedIngress } from '../../src/plan/ingress';
import { validatePlan } from '../../src/plan/load';
import type { Plan } from '../../src/plan/schema';
import { TAG_PLAN } from '../../src/shared/constants';
import { START_MARKER, type AppWorld } from './world';

/** A public parameter moto ships; it names one of moto's bundled AMIs. */
export const AMI_PARAMETER = '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64';

export interface SeededSource {
  region: string;
  instanceId: string;
  instanceType: string;
  imageId: string;
  vpcId: string;
  subnetId: string;
  availabilityZone: string;
  /**
   * The group the plan's target uses: made for the migration with no ingress rule at all, as a
   * new group is on AWS (which then denies every inbound connection).
   */
  securityGroupId: string;
  /** The old instance's group: it lets the app's public ports in from anywhere, as it serves. */
  sourceSecurityGroupId: string;
  allocationId: string;
  associationId: string;
  /** The Elastic IP (in 127.0.0.0/8, so it is reachable on this machine). */
  publicIp: string;
  privateIp: string;
  /** Every default subnet of the default VPC, by AZ order (for fallback plans). */
  defaultSubnetIds: string[];
  /**
   * Grants the worker the IAM policy of a plan made for this source (`migration iam-policy
   * --plan`); testPlan calls it, so every plan a test makes is the one its calls are held to.
   */
  grant?: (plan: Plan) => void;
}

export interface SeedOptions {
  region?: string;
  /** Prefix of resource names (default video-message-app). */
  name?: string;
  instanceType?: string;
  /** Mark the instance's app as started in this world. */
  world?: AppWorld;
  /** Open these TCP ports to 0.0.0.0/0 on the target's security group (it has none otherwise). */
  ingressPorts?: number[];
}

/** A bundled AMI id, through moto's public SSM parameter, checked with DescribeImages. */
export async function bundledImageId(clients: AwsClients, region = 'us-east-1'): Promise<string> {
  const param = await clients.ssm(region).send(new GetParameterCommand({ Name: AMI_PARAMETER }));
  const imageId = param.Parameter?.Value;
  if (!imageId) throw new Error(`${AMI_PARAMETER} has no value`);
  const images = await clients.ec2(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
  if (images.Images?.[0]?.ImageId !== imageId)
    throw new Error(`${imageId} (from ${AMI_PARAMETER}) is not a known image`);
  return imageId;
}

export async function seedSource(clients: AwsClients, options: SeedOptions = {}): Promise<SeededSource> {
  const region = options.region ?? 'us-east-1';
  const name = options.name ?? 'video-message-app';
  const instanceType = options.instanceType ?? 't3.large';
  const ec2 = clients.ec2(region);

  const imageId = await bundledImageId(clients, region);
  const vpcs = await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }));
  const vpcId = vpcs.Vpcs?.[0]?.VpcId;
  if (!vpcId) throw new Error(`no default VPC in ${region}`);
  const subnets = await ec2.send(
    new DescribeSubnetsCommand({
      Filters: [
        { Name: 'vpc-id', Values: [vpcId] },
        { Name: 'default-for-az', Values: ['true'] },
      ],
    }),
  );
  const sorted = (subnets.Subnets ?? [])
    .filter((s) => s.SubnetId)
    .sort((a, b) => (a.AvailabilityZone ?? '').localeCompare(b.AvailabilityZone ?? ''));
  const subnet = sorted[0];
  if (!subnet?.SubnetId) throw new Error(`no default subnet in ${vpcId}`);

  const createGroup = async (suffix: string, description: string, ports: number[]): Promise<string> => {
    const group = await ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: `${name}-${suffix}-${randomBytes(3).toString('hex')}`,
        Description: description,
        VpcId: vpcId,
        TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'Name', Value: `${name}-${suffix}` }] }],
      }),
    );
    if (!group.GroupId) throw new Error('CreateSecurityGroup returned no GroupId');
    if (ports.length) {
      await ec2.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: group.GroupId,
          IpPermissions: ports.map((port) => ({
            IpProtocol: 'tcp',
            FromPort: port,
            ToPort: port,
            IpRanges: [{ CidrIp: '0.0.0.0/0' }],
          })),
        }),
      );
    }
    return group.GroupId;
  };
  const publicPorts = (options.world?.services ?? []).filter((svc) => svc.public).map((svc) => svc.port);
  const sourceSecurityGroupId = await createGroup('old', `${name} application servers`, publicPorts);
  const securityGroupId = await createGroup('gpu', `${name} GPU servers`, options.ingressPorts ?? []);

  const run = await ec2.send(
    new RunInstancesCommand({
      ImageId: imageId,
      InstanceType: instanceType as _InstanceType,
      MinCount: 1,
      MaxCount: 1,
      SubnetId: subnet.SubnetId,
      SecurityGroupIds: [sourceSecurityGroupId],
      TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'Name', Value: `${name}-old` }] }],
    }),
  );
  const instanceId = run.Instances?.[0]?.InstanceId;
  if (!instanceId) throw new Error('RunInstances returned no instance');

  const eip = await ec2.send(
    new AllocateAddressCommand({
      Domain: 'vpc',
      TagSpecifications: [{ ResourceType: 'elastic-ip', Tags: [{ Key: 'Name', Value: name }] }],
    }),
  );
  if (!eip.AllocationId || !eip.PublicIp) throw new Error('AllocateAddress returned no allocation');
  const assoc = await ec2.send(
    new AssociateAddressCommand({ AllocationId: eip.AllocationId, InstanceId: instanceId, AllowReassociation: true }),
  );

  const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  const instance = described.Reservations?.[0]?.Instances?.[0];
  if (instance?.PublicIpAddress !== eip.PublicIp) {
    throw new Error(
      `instance ${instanceId} shows public address ${instance?.PublicIpAddress}, expected the Elastic IP ${eip.PublicIp}`,
    );
  }
  options.world?.markStarted(instanceId);
  return {
    region,
    instanceId,
    instanceType,
    imageId,
    vpcId,
    subnetId: subnet.SubnetId,
    availabilityZone: subnet.AvailabilityZone ?? '',
    securityGroupId,
    sourceSecurityGroupId,
    allocationId: eip.AllocationId,
    associationId: assoc.AssociationId ?? '',
    publicIp: eip.PublicIp,
    privateIp: instance.PrivateIpAddress ?? '',
    defaultSubnetIds: sorted.map((s) => s.SubnetId as string),
  };
}

/**
 * The ingress a migration of `plan` leaves on its target group (the public ports from
 * `ingress.publicCidrs`), for a service set up as if migrated, without a migration.
 */
export async function openPlannedIngress(clients: AwsClients, plan: Plan): Promise<void> {
  const ec2 = clients.ec2(plan.region);
  for (const rule of plannedIngress(plan)) {
    try {
      await ec2.send(
        new AuthorizeSecurityGroupIngressCommand({
          GroupId: plan.target.securityGroupIds[0],
          IpPermissions: [
            { IpProtocol: rule.protocol, FromPort: rule.port, ToPort: rule.port, IpRanges: [{ CidrIp: rule.cidr }] },
          ],
        }),
      );
    } catch (err) {
      if ((err as Error).name !== 'InvalidPermission.Duplicate') throw err;
    }
  }
}

type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** Overrides for testPlan: nested objects are merged, arrays and values replace, undefined removes. */
export type PlanOverrides = DeepPartial<Plan>;

export type ServicePorts = Readonly<Record<string, number>>;

const REFERENCE_PORTS = ['backend', 'frontend', 'openvoice', 'voicevox'] as const;

/**
 * Tags instances made by a test (not by a migration) with the plan, as the migration's launch
 * tags its own: the worker's IAM policy lets it tag and terminate only the plan's instances.
 */
export async function tagForPlan(clients: AwsClients, plan: Plan, instanceIds: string[]): Promise<void> {
  if (instanceIds.length === 0) return;
  await clients
    .ec2(plan.region)
    .send(new CreateTagsCommand({ Resources: instanceIds, Tags: [{ Key: TAG_PLAN, Value: plan.name }] }));
}

/**
 * A valid plan for the reference app on the seeded source, with the services on `ports`
 * (e.g. `world.ports`). The name is unique per call so tests do not share workflow ids.
 */
export function testPlan(seeded: SeededSource, ports: ServicePorts, overrides: PlanOverrides = {}): Plan {
  const missing = REFERENCE_PORTS.filter((name) => typeof ports[name] !== 'number');
  if (missing.length > 0) throw new Error(`testPlan needs ports for ${missing.join(', ')}`);
  const base = {
    name: `vma-${randomBytes(4).toString('hex')}`,
    region: seeded.region,
    source: { instanceId: seeded.instanceId },
    elasticIp: { allocationId: seeded.allocationId },
    target: {
      instanceType: 'g4dn.xlarge',
      fallbackInstanceTypes: ['g4dn.2xlarge', 'g5.xlarge'],
      market: 'on-demand',
      imageId: seeded.imageId,
      subnetIds: [seeded.subnetId],
      securityGroupIds: [seeded.securityGroupId],
      rootVolume: { sizeGiB: 30, type: 'gp3' },
    },
    remote: {
      setup: [
        'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader',
        'docker --version',
        'docker compose version',
      ],
      deploy: [
        'mkdir -p /opt/app && cd /opt/app && (git -C video-message-app pull --ff-only || git clone --depth 1 https://example.com/org/video-message-app.git)',
      ],
      build: ['cd /opt/app/video-message-app && docker compose build'],
      start: [`cd /opt/app/video-message-app && ${START_MARKER}`],
    },
    services: [
      { name: 'backend', port: ports.backend, healthPath: '/health', public: true },
      { name: 'frontend', port: ports.frontend, healthPath: '/', public: true },
      { name: 'openvoice', port: ports.openvoice, healthPath: '/health', public: false },
      { name: 'voicevox', port: ports.voicevox, healthPath: '/version', public: false },
    ],
    ingress: { publicCidrs: ['0.0.0.0/0'], adminCidrs: [] },
    checks: {
      host: 'auto',
      voiceClone: {
        service: 'backend',
        method: 'POST',
        path: '/api/voice/synthesize',
        body: { text: 'こんにちは', speaker: 1 },
        maxSeconds: 2,
      },
      latency: { service: 'backend', path: '/health', samples: 5, maxAverageMs: 50 },
    },
    approval: { timeout: '7d', approvers: [] },
    spot: { pollInterval: '1s', interruptionQueueUrl: null },
  };
  const plan = validatePlan(merge(base, overrides), 'test plan');
  seeded.grant?.(plan);
  return plan;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function merge(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(override)) return override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === undefined) delete out[key];
    else out[key] = merge(base[key], value);
  }
  return out;
}
