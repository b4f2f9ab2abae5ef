/**
 * EC2 look-ups the activities share, and the one RunInstances request: the launch and
 * preflight's DryRun both build it here, so the DryRun proves what the launch sends.
 */
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  type EC2Client,
  type Filter,
  type Image,
  type Instance,
  type RunInstancesCommandInput,
  type Tag,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { ApplicationFailure } from '@temporalio/common';
import type { ImagePlan } from '../shared/plan-slices';
import { TAG_PLAN, TAG_RUN, TAG_STEP, TAG_WORKFLOW } from '../shared/constants';
import { ErrorType } from '../shared/errors';
import { GONE_STATES, KEPT_STATES, type InstanceState } from '../shared/instance-states';
import type { InstanceInfo, LaunchChoice, LaunchInput } from '../shared/launch';
import { aws } from './call';
import type { AwsClients } from './clients';

export function instanceInfo(i: Instance): InstanceInfo {
  return {
    instanceId: i.InstanceId ?? '',
    instanceType: i.InstanceType ?? '',
    market: i.InstanceLifecycle === 'spot' ? 'spot' : 'on-demand',
    state: i.State?.Name ?? 'unknown',
    subnetId: i.SubnetId,
    availabilityZone: i.Placement?.AvailabilityZone,
    publicIp: i.PublicIpAddress,
    privateIp: i.PrivateIpAddress,
    imageId: i.ImageId,
    launchTime: i.LaunchTime?.toISOString(),
  };
}

export function resourceTags(
  planName: string,
  workflowId: string,
  step: string,
  extra: Record<string, string> = {},
): Tag[] {
  const tags: Record<string, string> = {
    Name: `${planName}-${step}`,
    [TAG_PLAN]: planName,
    [TAG_WORKFLOW]: workflowId,
    [TAG_STEP]: step,
    ...extra,
  };
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

export async function describeInstances(
  ec2: EC2Client,
  what: string,
  input: { InstanceIds?: string[]; Filters?: Filter[] },
): Promise<Instance[]> {
  const out: Instance[] = [];
  let NextToken: string | undefined;
  do {
    const page = await aws(what, () => ec2.send(new DescribeInstancesCommand({ ...input, NextToken })));
    for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return out;
}

export async function describeInstance(ec2: EC2Client, instanceId: string): Promise<Instance> {
  const [instance] = await describeInstances(ec2, `describe instance ${instanceId}`, { InstanceIds: [instanceId] });
  if (!instance) {
    throw ApplicationFailure.create({
      type: 'InvalidInstanceID.NotFound',
      message: `instance ${instanceId} does not exist`,
      nonRetryable: true,
    });
  }
  return instance;
}

/** The instance a run launched for `step`, if any is still alive (with `runId`: that run's only). */
export async function findLaunched(
  ec2: EC2Client,
  workflowId: string,
  step: string,
  runId?: string,
): Promise<Instance | undefined> {
  const found = await describeInstances(ec2, 'look for an instance an earlier attempt launched', {
    Filters: [
      { Name: `tag:${TAG_WORKFLOW}`, Values: [workflowId] },
      { Name: `tag:${TAG_STEP}`, Values: [step] },
      ...(runId ? [{ Name: `tag:${TAG_RUN}`, Values: [runId] }] : []),
      { Name: 'instance-state-name', Values: [...KEPT_STATES] },
    ],
  });
  // Should there ever be two, keep the oldest; the workflow terminates what it does not use.
  return found.sort((a, b) => (a.LaunchTime?.getTime() ?? 0) - (b.LaunchTime?.getTime() ?? 0))[0];
}

/** How an instance that EC2 accepted ended before it ran: its StateReason, or undefined while it lives. */
export function deathOf(i: Instance): { code: string; message: string } | undefined {
  const state = i.State?.Name;
  if (!GONE_STATES.includes(state as InstanceState)) return undefined;
  return { code: i.StateReason?.Code || 'unknown', message: i.StateReason?.Message || `the instance is ${state}` };
}

/** The AMI the plan names, directly or through an SSM parameter. */
export async function resolveImageId(clients: AwsClients, plan: ImagePlan): Promise<string> {
  if (plan.target.imageId) return plan.target.imageId;
  const name = plan.target.imageParameter as string;
  const out = await aws(`read the image id from SSM parameter ${name}`, () =>
    clients.ssm(plan.region).send(new GetParameterCommand({ Name: name })),
  );
  const value = out.Parameter?.Value;
  if (!value || !/^ami-[0-9a-f]+$/.test(value)) {
    throw ApplicationFailure.create({
      type: ErrorType.PreflightFailed,
      message: `SSM parameter ${name} holds '${value ?? ''}', not an AMI id`,
      nonRetryable: true,
    });
  }
  return value;
}

export interface ImageRoot {
  deviceName: string;
  /** The size of the image's root snapshot: a root volume cannot be smaller. */
  snapshotGiB?: number;
}

/** The root device of an image, as DescribeImages describes it. */
export function rootOf(image: Image): ImageRoot {
  const deviceName = image.RootDeviceName ?? '/dev/xvda';
  const root = (image.BlockDeviceMappings ?? []).find((m) => m.DeviceName === deviceName);
  return { deviceName, snapshotGiB: root?.Ebs?.VolumeSize };
}

export async function imageRoot(ec2: EC2Client, imageId: string): Promise<ImageRoot> {
  const out = await aws(`describe image ${imageId}`, () =>
    ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] })),
  );
  const image = out.Images?.[0];
  if (!image)
    throw ApplicationFailure.create({
      type: 'InvalidAMIID.NotFound',
      message: `image ${imageId} does not exist`,
      nonRetryable: true,
    });
  return rootOf(image);
}

/**
 * The RunInstances request for one choice: the launch and preflight's DryRun are built here, so
 * the DryRun proves the request as it will be sent (tags, market, volumes, metadata options).
 */
export function launchRequest(
  input: LaunchInput,
  choice: LaunchChoice,
  root: { deviceName: string },
  clientToken?: string,
): RunInstancesCommandInput {
  const { spec, workflowId, step } = input;
  const runTag: Record<string, string> = input.runId ? { [TAG_RUN]: input.runId } : {};
  return {
    ImageId: input.imageId,
    InstanceType: choice.instanceType as RunInstancesCommandInput['InstanceType'],
    MinCount: 1,
    MaxCount: 1,
    // A subnet that does not assign public IPv4 addresses by itself still gives this instance
    // one when the checks need it (checks.host: auto); the groups go with the interface.
    NetworkInterfaces: [
      {
        DeviceIndex: 0,
        SubnetId: choice.subnetId,
        Groups: spec.securityGroupIds,
        DeleteOnTermination: true,
        ...(spec.publicIp ? { AssociatePublicIpAddress: true } : {}),
      },
    ],
    ...(clientToken ? { ClientToken: clientToken } : {}),
    BlockDeviceMappings: [
      {
        DeviceName: root.deviceName,
        Ebs: {
          VolumeSize: spec.rootVolume.sizeGiB,
          VolumeType: spec.rootVolume.type,
          DeleteOnTermination: true,
          Encrypted: true,
          ...(spec.kmsKeyArn ? { KmsKeyId: spec.kmsKeyArn } : {}),
        },
      },
    ],
    // Hop limit 2: containers on the instance (one hop more) can get an IMDSv2 token and so the
    // instance role's credentials.
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 2 },
    TagSpecifications: [
      { ResourceType: 'instance', Tags: resourceTags(spec.planName, workflowId, step, { ...runTag, ...input.tags }) },
      { ResourceType: 'volume', Tags: resourceTags(spec.planName, workflowId, step, runTag) },
    ],
    ...(spec.iamInstanceProfile ? { IamInstanceProfile: { Name: spec.iamInstanceProfile } } : {}),
    ...(spec.keyName ? { KeyName: spec.keyName } : {}),
    ...(choice.market === 'spot'
      ? {
          InstanceMarketOptions: {
            MarketType: 'spot',
            SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' },
          },
        }
      : {}),
  };
}
