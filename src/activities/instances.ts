import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  StartInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
  StopInstancesCommand,
  type EC2Client,
  type Filter,
  type Instance,
  type RunInstancesCommandInput,
  type Tag,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import { CAPACITY_CODES } from '../aws/retry';
import type { Plan } from '../plan/schema';
import { TAG_PLAN, TAG_STEP, TAG_WORKFLOW } from '../shared/constants';
import { ErrorType } from '../shared/errors';
import { attempt, clientToken, withHeartbeat } from './util';

export type Market = 'spot' | 'on-demand';

export interface InstanceInfo {
  instanceId: string;
  instanceType: string;
  market: Market;
  state: string;
  subnetId?: string;
  availabilityZone?: string;
  publicIp?: string;
  privateIp?: string;
  imageId?: string;
  launchTime?: string;
}

export interface LaunchInput {
  plan: Plan;
  workflowId: string;
  /** Names this launch among the run's launches (`launch`, `replace-3`): tags and tokens use it. */
  step: string;
  imageId: string;
  /** Extra tags for the instance (e.g. the guardian's marker). */
  tags?: Record<string, string>;
}

export interface LaunchAttempt {
  instanceType: string;
  subnetId: string;
  market: Market;
  error: string;
}

export interface LaunchResult extends InstanceInfo {
  /** True when an earlier attempt had already launched it (found by tags). */
  reused: boolean;
  /** Choices that had no capacity before this one, in the order tried. */
  skipped: LaunchAttempt[];
  attempt: number;
}

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

export function resourceTags(plan: Plan, workflowId: string, step: string, extra: Record<string, string> = {}): Tag[] {
  const tags: Record<string, string> = {
    Name: `${plan.name}-${step}`,
    [TAG_PLAN]: plan.name,
    [TAG_WORKFLOW]: workflowId,
    [TAG_STEP]: step,
    ...extra,
  };
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

export async function describeInstances(ec2: EC2Client, what: string, input: { InstanceIds?: string[]; Filters?: Filter[] }): Promise<Instance[]> {
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
    throw ApplicationFailure.create({ type: 'InvalidInstanceID.NotFound', message: `instance ${instanceId} does not exist`, nonRetryable: true });
  }
  return instance;
}

/** The instance a run launched for `step`, if any is still alive. */
export async function findLaunched(ec2: EC2Client, workflowId: string, step: string): Promise<Instance | undefined> {
  const found = await describeInstances(ec2, 'look for an instance an earlier attempt launched', {
    Filters: [
      { Name: `tag:${TAG_WORKFLOW}`, Values: [workflowId] },
      { Name: `tag:${TAG_STEP}`, Values: [step] },
      { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
    ],
  });
  // Should there ever be two, keep the oldest; the workflow terminates what it does not use.
  return found.sort((a, b) => (a.LaunchTime?.getTime() ?? 0) - (b.LaunchTime?.getTime() ?? 0))[0];
}

export async function waitRunning(ec2: EC2Client, instanceId: string, maxWaitTime = 900): Promise<Instance> {
  await withHeartbeat(
    () =>
      aws(`wait for ${instanceId} to run`, () =>
        waitUntilInstanceRunning(
          { client: ec2, maxWaitTime, minDelay: 2, maxDelay: 15, abortSignal: Context.current().cancellationSignal },
          { InstanceIds: [instanceId] },
        ),
      ),
    () => ({ instanceId }),
  );
  return describeInstance(ec2, instanceId);
}

/** The AMI the plan names, directly or through an SSM parameter. */
export async function resolveImageId(clients: AwsClients, plan: Plan): Promise<string> {
  if (plan.target.imageId) return plan.target.imageId;
  const name = plan.target.imageParameter as string;
  const out = await aws(`read the image id from SSM parameter ${name}`, () =>
    clients.ssm(plan.region).send(new GetParameterCommand({ Name: name })),
  );
  const value = out.Parameter?.Value;
  if (!value || !/^ami-[0-9a-f]+$/.test(value)) {
    throw ApplicationFailure.create({ type: ErrorType.PreflightFailed, message: `SSM parameter ${name} holds '${value ?? ''}', not an AMI id`, nonRetryable: true });
  }
  return value;
}

async function rootDeviceName(ec2: EC2Client, imageId: string): Promise<string> {
  const out = await aws(`describe image ${imageId}`, () => ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] })));
  const image = out.Images?.[0];
  if (!image) throw ApplicationFailure.create({ type: 'InvalidAMIID.NotFound', message: `image ${imageId} does not exist`, nonRetryable: true });
  return image.RootDeviceName ?? '/dev/xvda';
}

/** Every (type, subnet, market) to try, best first: types, then subnets, then on-demand. */
export function launchChoices(plan: Plan): { instanceType: string; subnetId: string; market: Market }[] {
  const types = [plan.target.instanceType, ...plan.target.fallbackInstanceTypes];
  const markets: Market[] = plan.target.market === 'spot' ? ['spot', 'on-demand'] : ['on-demand'];
  const out: { instanceType: string; subnetId: string; market: Market }[] = [];
  for (const market of markets) for (const instanceType of types) for (const subnetId of plan.target.subnetIds) out.push({ instanceType, subnetId, market });
  return out;
}

export function createInstanceActivities(clients: AwsClients) {
  /**
   * Phase 1 (and the guardian's replacement): launches the target, or finds the one an earlier
   * attempt launched, and waits until it runs. Capacity errors move on to the next choice.
   */
  async function launchInstance(input: LaunchInput): Promise<LaunchResult> {
    const { plan, workflowId, step } = input;
    const ec2 = clients.ec2(plan.region);
    const earlier = await findLaunched(ec2, workflowId, step);
    if (earlier?.InstanceId) {
      const running = earlier.State?.Name === 'running' ? earlier : await waitRunning(ec2, earlier.InstanceId);
      return { ...instanceInfo(running), reused: true, skipped: [], attempt: attempt() };
    }

    const deviceName = await rootDeviceName(ec2, input.imageId);
    const skipped: LaunchAttempt[] = [];
    for (const choice of launchChoices(plan)) {
      const params: RunInstancesCommandInput = {
        ImageId: input.imageId,
        InstanceType: choice.instanceType as RunInstancesCommandInput['InstanceType'],
        MinCount: 1,
        MaxCount: 1,
        SubnetId: choice.subnetId,
        SecurityGroupIds: plan.target.securityGroupIds,
        ClientToken: clientToken(workflowId, step, choice.instanceType, choice.subnetId, choice.market),
        BlockDeviceMappings: [
          {
            DeviceName: deviceName,
            Ebs: { VolumeSize: plan.target.rootVolume.sizeGiB, VolumeType: plan.target.rootVolume.type, DeleteOnTermination: true, Encrypted: true },
          },
        ],
        MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
        TagSpecifications: [
          { ResourceType: 'instance', Tags: resourceTags(plan, workflowId, step, input.tags) },
          { ResourceType: 'volume', Tags: resourceTags(plan, workflowId, step) },
        ],
        ...(plan.target.iamInstanceProfile ? { IamInstanceProfile: { Name: plan.target.iamInstanceProfile } } : {}),
        ...(plan.target.keyName ? { KeyName: plan.target.keyName } : {}),
        ...(choice.market === 'spot'
          ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } }
          : {}),
      };
      try {
        const out = await aws(`launch ${choice.instanceType} (${choice.market}) in ${choice.subnetId}`, () => ec2.send(new RunInstancesCommand(params)));
        const instanceId = out.Instances?.[0]?.InstanceId;
        if (!instanceId) throw ApplicationFailure.create({ type: 'LaunchFailed', message: 'RunInstances returned no instance' });
        const running = await waitRunning(ec2, instanceId);
        return { ...instanceInfo(running), reused: false, skipped, attempt: attempt() };
      } catch (err) {
        if (!(err instanceof ApplicationFailure) || !CAPACITY_CODES.has(err.type ?? '')) throw err;
        skipped.push({ ...choice, error: `${err.type}` });
        Context.current().heartbeat({ skipped });
      }
    }
    throw ApplicationFailure.create({
      type: ErrorType.NoCapacity,
      message: `no capacity for any choice: ${skipped.map((s) => `${s.instanceType}/${s.market}/${s.subnetId}: ${s.error}`).join('; ')}`,
      details: [skipped],
    });
  }

  /** Compensation and clean-up: terminates an instance (gone already is fine). */
  async function terminateInstance(input: { region: string; instanceId: string }): Promise<{ instanceId: string; state: string }> {
    const ec2 = clients.ec2(input.region);
    try {
      await aws(`terminate ${input.instanceId}`, () => ec2.send(new TerminateInstancesCommand({ InstanceIds: [input.instanceId] })));
    } catch (err) {
      if (err instanceof ApplicationFailure && err.type === 'InvalidInstanceID.NotFound') return { instanceId: input.instanceId, state: 'gone' };
      throw err;
    }
    await withHeartbeat(() =>
      aws(`wait for ${input.instanceId} to terminate`, () =>
        waitUntilInstanceTerminated({ client: ec2, maxWaitTime: 900, minDelay: 2, maxDelay: 15, abortSignal: Context.current().cancellationSignal }, { InstanceIds: [input.instanceId] }),
      ),
    );
    return { instanceId: input.instanceId, state: 'terminated' };
  }

  /** Compensation of stop-old: starts the old instance again and waits until it runs. */
  async function startInstance(input: { region: string; instanceId: string }): Promise<InstanceInfo> {
    const ec2 = clients.ec2(input.region);
    await aws(`start ${input.instanceId}`, () => ec2.send(new StartInstancesCommand({ InstanceIds: [input.instanceId] })));
    return instanceInfo(await waitRunning(ec2, input.instanceId));
  }

  /** Stops an instance (never terminates it) and waits until it is stopped. */
  async function stopInstance(input: { region: string; instanceId: string }): Promise<InstanceInfo> {
    const ec2 = clients.ec2(input.region);
    await aws(`stop ${input.instanceId}`, () => ec2.send(new StopInstancesCommand({ InstanceIds: [input.instanceId] })));
    await withHeartbeat(() =>
      aws(`wait for ${input.instanceId} to stop`, () =>
        waitUntilInstanceStopped({ client: ec2, maxWaitTime: 1800, minDelay: 2, maxDelay: 15, abortSignal: Context.current().cancellationSignal }, { InstanceIds: [input.instanceId] }),
      ),
    );
    return instanceInfo(await describeInstance(ec2, input.instanceId));
  }

  /** Rollback of a launch: terminates whatever this run launched for `step` (found by tags). */
  async function terminateLaunched(input: { region: string; workflowId: string; step: string }): Promise<{ terminated: string[] }> {
    const ec2 = clients.ec2(input.region);
    const terminated: string[] = [];
    for (;;) {
      const found = await findLaunched(ec2, input.workflowId, input.step);
      if (!found?.InstanceId) return { terminated };
      await terminateInstance({ region: input.region, instanceId: found.InstanceId });
      terminated.push(found.InstanceId);
    }
  }

  async function resolveImage(input: { plan: Plan }): Promise<string> {
    return resolveImageId(clients, input.plan);
  }

  async function getInstance(input: { region: string; instanceId: string }): Promise<InstanceInfo> {
    return instanceInfo(await describeInstance(clients.ec2(input.region), input.instanceId));
  }

  return { launchInstance, terminateInstance, terminateLaunched, startInstance, stopInstance, getInstance, resolveImage };
}
