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
  type Image,
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
import { TAG_PLAN, TAG_RUN, TAG_STEP, TAG_WORKFLOW } from '../shared/constants';
import { ErrorType } from '../shared/errors';
import { attempt, clientToken, withHeartbeat } from './util';
import { GONE_STATES, KEPT_STATES, type InstanceState } from '../shared/instance-states';

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
  /**
   * The run this launch belongs to (a guardian: its first run's id). Its ClientTokens and the tag
   * lookups of earlier attempts are this run's own: a re-run never gets an instance that an
   * earlier run launched (EC2 keeps a ClientToken for 24 hours or more after termination).
   * Missing only in inputs of runs that started before it existed.
   */
  runId?: string;
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

/** What a launch attempt heartbeats, so that the next attempt goes on from there. */
interface LaunchProgress {
  /** The instance RunInstances returned, as soon as it did. */
  instanceId?: string;
  skipped?: LaunchAttempt[];
  /** Passes over every choice that ended with none launched: each pass gets new ClientTokens. */
  round?: number;
}

export type LaunchChoice = { instanceType: string; subnetId: string; market: Market };

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

/** StateReason codes of an instance that terminated in `pending` and that another pool may not share. */
const POOL_STATE_REASONS = /^Server\./;

/** How an instance that EC2 accepted ended before it ran: its StateReason, or undefined while it lives. */
export function deathOf(i: Instance): { code: string; message: string } | undefined {
  const state = i.State?.Name;
  if (!GONE_STATES.includes(state as InstanceState)) return undefined;
  return { code: i.StateReason?.Code || 'unknown', message: i.StateReason?.Message || `the instance is ${state}` };
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

/**
 * Waits until the instance runs, or returns it as it is when EC2 terminated it instead (the
 * running waiter fails on `terminated`): the caller reads its StateReason.
 */
export async function waitRunningOrDead(ec2: EC2Client, instanceId: string): Promise<Instance> {
  try {
    return await waitRunning(ec2, instanceId);
  } catch (err) {
    const [now] = await describeInstances(ec2, `describe ${instanceId}`, { InstanceIds: [instanceId] });
    if (now && deathOf(now)) return now;
    throw err;
  }
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
  const { plan, workflowId, step } = input;
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
        Groups: plan.target.securityGroupIds,
        DeleteOnTermination: true,
        ...(plan.checks.host === 'auto' ? { AssociatePublicIpAddress: true } : {}),
      },
    ],
    ...(clientToken ? { ClientToken: clientToken } : {}),
    BlockDeviceMappings: [
      {
        DeviceName: root.deviceName,
        Ebs: {
          VolumeSize: plan.target.rootVolume.sizeGiB,
          VolumeType: plan.target.rootVolume.type,
          DeleteOnTermination: true,
          Encrypted: true,
          ...(plan.target.kmsKeyArn ? { KmsKeyId: plan.target.kmsKeyArn } : {}),
        },
      },
    ],
    // Hop limit 2: containers on the instance (one hop more) can get an IMDSv2 token and so the
    // instance role's credentials.
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 2 },
    TagSpecifications: [
      { ResourceType: 'instance', Tags: resourceTags(plan, workflowId, step, { ...runTag, ...input.tags }) },
      { ResourceType: 'volume', Tags: resourceTags(plan, workflowId, step, runTag) },
    ],
    ...(plan.target.iamInstanceProfile ? { IamInstanceProfile: { Name: plan.target.iamInstanceProfile } } : {}),
    ...(plan.target.keyName ? { KeyName: plan.target.keyName } : {}),
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

/** Errors that mean "not this choice": try the next type, subnet or market at once. */
const SKIP_CHOICE_CODES: ReadonlySet<string> = new Set([
  ...CAPACITY_CODES,
  'Unsupported',
  'InsufficientFreeAddressesInSubnet',
]);

/** Every (type, subnet, market) to try, best first: types, then subnets, then on-demand. */
export function launchChoices(plan: Plan): LaunchChoice[] {
  const types = [plan.target.instanceType, ...plan.target.fallbackInstanceTypes];
  const markets: Market[] = plan.target.market === 'spot' ? ['spot', 'on-demand'] : ['on-demand'];
  const out: LaunchChoice[] = [];
  for (const market of markets)
    for (const instanceType of types)
      for (const subnetId of plan.target.subnetIds) out.push({ instanceType, subnetId, market });
  return out;
}

export function createInstanceActivities(clients: AwsClients) {
  /**
   * Phase 1 (and the guardian's replacement): launches the target, or finds the one an earlier
   * attempt launched, and waits until it runs. A choice without capacity, not offered in its
   * zone, or whose instance EC2 terminated in `pending` for a server reason moves on to the
   * next choice; an instance terminated for a client reason (a KMS key, a snapshot) fails.
   */
  async function launchInstance(input: LaunchInput): Promise<LaunchResult> {
    const { plan, workflowId, step } = input;
    const ec2 = clients.ec2(plan.region);
    const ctx = Context.current();
    const progress: LaunchProgress = { ...((ctx.info.heartbeatDetails as LaunchProgress | undefined) ?? {}) };
    const beat = () => ctx.heartbeat(progress);
    const adopt = async (instance: Instance): Promise<LaunchResult | undefined> => {
      if (!instance.InstanceId || deathOf(instance)) return undefined;
      if (instance.InstanceId === plan.source.instanceId) {
        throw ApplicationFailure.create({
          type: 'LaunchFailed',
          message: `the instance found for ${step} is the source instance ${plan.source.instanceId}; refusing to use it as the new one`,
          nonRetryable: true,
        });
      }
      const running = instance.State?.Name === 'running' ? instance : await waitRunning(ec2, instance.InstanceId);
      return { ...instanceInfo(running), reused: true, skipped: progress.skipped ?? [], attempt: attempt() };
    };

    // What an earlier attempt launched: the instance id it heartbeat, else its tags.
    if (progress.instanceId) {
      const [earlier] = await describeInstances(ec2, `look at ${progress.instanceId}, launched by an earlier attempt`, {
        InstanceIds: [progress.instanceId],
      }).catch(() => []);
      const found = earlier ? await adopt(earlier) : undefined;
      if (found) return found;
    }
    const tagged = await findLaunched(ec2, workflowId, step, input.runId);
    if (tagged) {
      const found = await adopt(tagged);
      if (found) return found;
    }

    const root = await imageRoot(ec2, input.imageId);
    if (root.snapshotGiB !== undefined && plan.target.rootVolume.sizeGiB < root.snapshotGiB) {
      throw ApplicationFailure.create({
        type: 'InvalidBlockDeviceMapping',
        message: `target.rootVolume.sizeGiB is ${plan.target.rootVolume.sizeGiB} GiB, smaller than the root snapshot of ${input.imageId} (${root.snapshotGiB} GiB); set it to at least ${root.snapshotGiB}`,
        nonRetryable: true,
      });
    }
    const round = progress.round ?? 0;
    // A retry goes on from where the attempt before it got in this round: the choices it skipped
    // stay skipped, and the next one's token replays what that attempt may have launched before
    // its heartbeat (throttled by the SDK) carried the instance id; from the first choice again,
    // one that has capacity by now would launch a second instance.
    const skipped: LaunchAttempt[] = [...(progress.skipped ?? [])];
    const tried = (c: LaunchChoice) =>
      skipped.some((x) => x.instanceType === c.instanceType && x.subnetId === c.subnetId && x.market === c.market);
    for (const choice of launchChoices(plan)) {
      if (tried(choice)) continue;
      const token = clientToken(
        workflowId,
        input.runId ?? '',
        step,
        String(round),
        choice.instanceType,
        choice.subnetId,
        choice.market,
      );
      const what = `launch ${choice.instanceType} (${choice.market}) in ${choice.subnetId}`;
      try {
        const out = await aws(what, () => ec2.send(new RunInstancesCommand(launchRequest(input, choice, root, token))));
        const instanceId = out.Instances?.[0]?.InstanceId;
        if (!instanceId)
          throw ApplicationFailure.create({ type: 'LaunchFailed', message: 'RunInstances returned no instance' });
        progress.instanceId = instanceId;
        beat();
        const running = await waitRunningOrDead(ec2, instanceId);
        const death = deathOf(running);
        if (!death) return { ...instanceInfo(running), reused: false, skipped, attempt: attempt() };
        progress.instanceId = undefined;
        if (!POOL_STATE_REASONS.test(death.code)) {
          throw ApplicationFailure.create({
            type: 'LaunchTerminated',
            message: `${what}: EC2 terminated ${instanceId} while it was pending: ${death.code}: ${death.message}${death.code === 'Client.InternalError' ? ' (often a KMS key for the EBS volumes that the caller may not use)' : ''}`,
            nonRetryable: true,
          });
        }
        skipped.push({ ...choice, error: `${death.code} (${instanceId} terminated while pending)` });
      } catch (err) {
        if (!(err instanceof ApplicationFailure) || !SKIP_CHOICE_CODES.has(err.type ?? '')) throw err;
        skipped.push({ ...choice, error: `${err.type}` });
      }
      progress.skipped = skipped;
      beat();
    }
    // The next attempt makes new requests (new tokens): these ones would only be replayed.
    progress.round = round + 1;
    progress.skipped = [];
    beat();
    throw ApplicationFailure.create({
      type: ErrorType.NoCapacity,
      message: `no capacity for any choice: ${skipped.map((s) => `${s.instanceType}/${s.market}/${s.subnetId}: ${s.error}`).join('; ')}`,
      details: [skipped],
    });
  }

  /** Compensation and clean-up: terminates an instance (gone already is fine). */
  async function terminateInstance(input: {
    region: string;
    instanceId: string;
  }): Promise<{ instanceId: string; state: string }> {
    const ec2 = clients.ec2(input.region);
    try {
      await aws(`terminate ${input.instanceId}`, () =>
        ec2.send(new TerminateInstancesCommand({ InstanceIds: [input.instanceId] })),
      );
    } catch (err) {
      if (err instanceof ApplicationFailure && err.type === 'InvalidInstanceID.NotFound')
        return { instanceId: input.instanceId, state: 'gone' };
      throw err;
    }
    await withHeartbeat(() =>
      aws(`wait for ${input.instanceId} to terminate`, () =>
        waitUntilInstanceTerminated(
          {
            client: ec2,
            maxWaitTime: 900,
            minDelay: 2,
            maxDelay: 15,
            abortSignal: Context.current().cancellationSignal,
          },
          { InstanceIds: [input.instanceId] },
        ),
      ),
    );
    return { instanceId: input.instanceId, state: 'terminated' };
  }

  /** Compensation of stop-old: starts the old instance again and waits until it runs. */
  async function startInstance(input: { region: string; instanceId: string }): Promise<InstanceInfo> {
    const ec2 = clients.ec2(input.region);
    await aws(`start ${input.instanceId}`, () =>
      ec2.send(new StartInstancesCommand({ InstanceIds: [input.instanceId] })),
    );
    return instanceInfo(await waitRunning(ec2, input.instanceId));
  }

  /** Stops an instance (never terminates it) and waits until it is stopped. */
  async function stopInstance(input: { region: string; instanceId: string }): Promise<InstanceInfo> {
    const ec2 = clients.ec2(input.region);
    await aws(`stop ${input.instanceId}`, () =>
      ec2.send(new StopInstancesCommand({ InstanceIds: [input.instanceId] })),
    );
    await withHeartbeat(() =>
      aws(`wait for ${input.instanceId} to stop`, () =>
        waitUntilInstanceStopped(
          {
            client: ec2,
            maxWaitTime: 1800,
            minDelay: 2,
            maxDelay: 15,
            abortSignal: Context.current().cancellationSignal,
          },
          { InstanceIds: [input.instanceId] },
        ),
      ),
    );
    return instanceInfo(await describeInstance(ec2, input.instanceId));
  }

  /** Rollback of a launch: terminates whatever this run launched for `step` (found by tags). */
  async function terminateLaunched(input: {
    region: string;
    workflowId: string;
    step: string;
    runId?: string;
  }): Promise<{ terminated: string[] }> {
    const ec2 = clients.ec2(input.region);
    const terminated: string[] = [];
    for (;;) {
      const found = await findLaunched(ec2, input.workflowId, input.step, input.runId);
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

  return {
    launchInstance,
    terminateInstance,
    terminateLaunched,
    startInstance,
    stopInstance,
    getInstance,
    resolveImage,
  };
}
