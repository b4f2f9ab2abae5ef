import {
  RunInstancesCommand,
  StartInstancesCommand,
  TerminateInstancesCommand,
  waitUntilInstanceRunning,
  waitUntilInstanceStopped,
  waitUntilInstanceTerminated,
  StopInstancesCommand,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import {
  deathOf,
  describeInstance,
  describeInstances,
  findLaunched,
  imageRoot,
  instanceInfo,
  launchRequest,
  resolveImageId,
} from '../aws/ec2';
import { CAPACITY_CODES } from '../aws/retry';
import { isDead } from '../shared/instance-states';
import type { ImagePlan } from '../shared/plan-slices';
import { ErrorType } from '../shared/errors';
import {
  launchChoices,
  sliceLaunchInput,
  type InstanceInfo,
  type LaunchAttempt,
  type LaunchChoice,
  type LaunchInput,
  type LaunchResult,
  type PlanLaunchInput,
} from '../shared/launch';
import { attempt, clientToken, withHeartbeat } from './util';

/** What `watchInstance` returns: the instance stopped running, in `state` (`gone`: EC2 no longer knows it). */
export interface InstanceLoss {
  instanceId: string;
  state: string;
  /** EC2's StateReason, when it gives one. */
  reason?: string;
}

/** What a launch attempt heartbeats, so that the next attempt goes on from there. */
interface LaunchProgress {
  /** The instance RunInstances returned, as soon as it did. */
  instanceId?: string;
  skipped?: LaunchAttempt[];
  /** Passes over every choice that ended with none launched: each pass gets new ClientTokens. */
  round?: number;
}

/** StateReason codes of an instance that terminated in `pending` and that another pool may not share. */
const POOL_STATE_REASONS = /^Server\./;

/** An EC2 client and the first delay of its waiters (seconds; they back off from there to 15 s). */
interface Waiting {
  ec2: EC2Client;
  minDelay: number;
}

/** An EC2 waiter over one instance, heartbeating while it waits and stopped when the activity is cancelled. */
async function waitFor(
  { ec2, minDelay }: Waiting,
  instanceId: string,
  until: string,
  waiter: typeof waitUntilInstanceRunning,
  maxWaitTime: number,
  beat?: () => unknown,
): Promise<void> {
  await withHeartbeat(
    () =>
      aws(`wait for ${instanceId} to ${until}`, () =>
        waiter(
          { client: ec2, maxWaitTime, minDelay, maxDelay: 15, abortSignal: Context.current().cancellationSignal },
          { InstanceIds: [instanceId] },
        ),
      ),
    beat,
  );
}

async function waitRunning(w: Waiting, instanceId: string, maxWaitTime = 900): Promise<Instance> {
  await waitFor(w, instanceId, 'run', waitUntilInstanceRunning, maxWaitTime, () => ({ instanceId }));
  return describeInstance(w.ec2, instanceId);
}

/**
 * Waits until the instance runs, or returns it as it is when EC2 terminated it instead (the
 * running waiter fails on `terminated`): the caller reads its StateReason.
 */
async function waitRunningOrDead(w: Waiting, instanceId: string): Promise<Instance> {
  try {
    return await waitRunning(w, instanceId);
  } catch (err) {
    const [now] = await describeInstances(w.ec2, `describe ${instanceId}`, { InstanceIds: [instanceId] });
    if (now && deathOf(now)) return now;
    throw err;
  }
}

/** Errors that mean "not this choice": try the next type, subnet or market at once. */
const SKIP_CHOICE_CODES: ReadonlySet<string> = new Set([
  ...CAPACITY_CODES,
  'Unsupported',
  'InsufficientFreeAddressesInSubnet',
]);

/**
 * `waitDelaySeconds`: the first pause of the EC2 waiters (instance running, stopped,
 * terminated); 2 s, as the SDK's own waiters, unless the worker polls faster.
 */
export function createInstanceActivities(clients: AwsClients, waitDelaySeconds = 2) {
  const waiting = (ec2: EC2Client): Waiting => ({ ec2, minDelay: waitDelaySeconds });
  /**
   * Phase 1 (and the guardian's replacement): launches the target, or finds the one an earlier
   * attempt launched, and waits until it runs. A choice without capacity, not offered in its
   * zone, or whose instance EC2 terminated in `pending` for a server reason moves on to the
   * next choice; an instance terminated for a client reason (a KMS key, a snapshot) fails.
   */
  async function launchInstance(raw: LaunchInput | PlanLaunchInput): Promise<LaunchResult> {
    // Runs scheduled before the spec send the whole plan: the same launch follows from it.
    const input = sliceLaunchInput(raw);
    const { spec, workflowId, step } = input;
    const ec2 = clients.ec2(spec.region);
    const ctx = Context.current();
    const progress: LaunchProgress = { ...((ctx.info.heartbeatDetails as LaunchProgress | undefined) ?? {}) };
    const beat = () => ctx.heartbeat(progress);
    const adopt = async (instance: Instance): Promise<LaunchResult | undefined> => {
      if (!instance.InstanceId || deathOf(instance)) return undefined;
      if (instance.InstanceId === spec.sourceInstanceId) {
        throw ApplicationFailure.create({
          type: 'LaunchFailed',
          message: `the instance found for ${step} is the source instance ${spec.sourceInstanceId}; refusing to use it as the new one`,
          nonRetryable: true,
        });
      }
      const running =
        instance.State?.Name === 'running' ? instance : await waitRunning(waiting(ec2), instance.InstanceId);
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
    if (root.snapshotGiB !== undefined && spec.rootVolume.sizeGiB < root.snapshotGiB) {
      throw ApplicationFailure.create({
        type: 'InvalidBlockDeviceMapping',
        message: `target.rootVolume.sizeGiB is ${spec.rootVolume.sizeGiB} GiB, smaller than the root snapshot of ${input.imageId} (${root.snapshotGiB} GiB); set it to at least ${root.snapshotGiB}`,
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
    for (const choice of launchChoices(spec)) {
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
        const running = await waitRunningOrDead(waiting(ec2), instanceId);
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
    await waitFor(waiting(ec2), input.instanceId, 'terminate', waitUntilInstanceTerminated, 900);
    return { instanceId: input.instanceId, state: 'terminated' };
  }

  /** Compensation of stop-old: starts the old instance again and waits until it runs. */
  async function startInstance(input: { region: string; instanceId: string }): Promise<InstanceInfo> {
    const ec2 = clients.ec2(input.region);
    await aws(`start ${input.instanceId}`, () =>
      ec2.send(new StartInstancesCommand({ InstanceIds: [input.instanceId] })),
    );
    return instanceInfo(await waitRunning(waiting(ec2), input.instanceId));
  }

  /** Stops an instance (never terminates it) and waits until it is stopped. */
  async function stopInstance(input: { region: string; instanceId: string }): Promise<InstanceInfo> {
    const ec2 = clients.ec2(input.region);
    await aws(`stop ${input.instanceId}`, () =>
      ec2.send(new StopInstancesCommand({ InstanceIds: [input.instanceId] })),
    );
    await waitFor(waiting(ec2), input.instanceId, 'stop', waitUntilInstanceStopped, 1800);
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

  async function resolveImage(input: { plan: ImagePlan }): Promise<string> {
    return resolveImageId(clients, input.plan);
  }

  async function getInstance(input: { region: string; instanceId: string }): Promise<InstanceInfo> {
    return instanceInfo(await describeInstance(clients.ec2(input.region), input.instanceId));
  }

  /**
   * While a person decides: returns once the instance stops running (stopping, stopped, shutting
   * down, terminated, or unknown to EC2 three looks in a row), looking every `everyMs` (the
   * first look one interval in: the performance test has just looked). It
   * heartbeats meanwhile, so a worker that dies in it is noticed and the watch goes on elsewhere;
   * the workflow cancels it when the wait is over. An answer that is not about the instance
   * (throttling, a network error) is looked past; a refusal (IAM) fails it.
   */
  async function watchInstance(input: { region: string; instanceId: string; everyMs: number }): Promise<InstanceLoss> {
    const ec2 = clients.ec2(input.region);
    const ctx = Context.current();
    let unknown = 0;
    return withHeartbeat(async () => {
      for (;;) {
        // The performance test has just looked at it: the first look is one interval in.
        await ctx.sleep(input.everyMs);
        try {
          const [found] = await describeInstances(ec2, `look at ${input.instanceId}`, {
            InstanceIds: [input.instanceId],
          });
          const state = found?.State?.Name;
          if (found && state && isDead(state)) {
            const reason = found.StateReason?.Message;
            return { instanceId: input.instanceId, state, ...(reason ? { reason } : {}) };
          }
          unknown = found ? 0 : unknown + 1;
        } catch (err) {
          if (err instanceof ApplicationFailure && err.type === 'InvalidInstanceID.NotFound') unknown++;
          else if (err instanceof ApplicationFailure && err.nonRetryable) throw err;
          else ctx.log.warn('could not look at the instance; looking again', { error: (err as Error).message });
        }
        if (unknown >= 3) return { instanceId: input.instanceId, state: 'gone' };
      }
    });
  }

  return {
    launchInstance,
    terminateInstance,
    terminateLaunched,
    startInstance,
    stopInstance,
    getInstance,
    watchInstance,
    resolveImage,
  };
}
