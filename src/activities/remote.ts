import { createHash } from 'node:crypto';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  type Command,
  type GetCommandInvocationCommandOutput,
} from '@aws-sdk/client-ssm';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import type { RemoteOutput } from '../shared/migration';
import { ErrorType } from '../shared/errors';
import { isDead } from '../shared/instance-states';
import { executionTimeout, outputCut, shellScript } from './ssm-script';
import { attempt, tail, withHeartbeat } from './util';

export interface RemoteInput {
  region: string;
  instanceId: string;
  /** What this is, for the command's comment and errors: `setup`, `check openvoice`. */
  label: string;
  commands: string[];
  /** The command's own limit on the instance. */
  timeoutSeconds?: number;
  /** How long to wait for the SSM agent to register before this attempt fails. */
  agentWaitSeconds?: number;
  /**
   * Take over the command an earlier attempt of this activity sent with the same label on the
   * same instance (default true). Checks set false: a retried check must look again.
   */
  resume?: boolean;
}

export interface RemoteResult extends RemoteOutput {
  commandId: string;
  /** When this worker first saw the instance's SSM agent online. */
  agentOnlineAt?: string;
  status: string;
  durationMs: number;
  attempt: number;
}

/** Polls of a command between two looks at its instance's state. */
const INSTANCE_CHECK_EVERY = 5;

const FINAL = new Set([
  'Success',
  'Failed',
  'Cancelled',
  'TimedOut',
  'Undeliverable',
  'Terminated',
  'InvalidPlatform',
  'AccessDenied',
  'DeliveryTimedOut',
  'ExecutionTimedOut',
]);

export interface RemoteOptions {
  /** Between polls of a running command and of an agent that has not registered yet. */
  pollIntervalMs: number;
}

/**
 * A mark for the commands of one step of one activity: the same on every attempt, different for
 * every other activity, run, step or instance. It goes into the command's comment, so a retried
 * attempt finds its command in ListCommands even when the worker died before the command id
 * reached a heartbeat.
 */
export function stepMark(
  run: { workflowId: string; runId: string; activityId: string },
  input: Pick<RemoteInput, 'label' | 'instanceId'>,
): string {
  const hash = createHash('sha256')
    .update([run.workflowId, run.runId, run.activityId, input.label, input.instanceId].join('\n'))
    .digest('hex');
  return `step-${hash.slice(0, 16)}`;
}

/**
 * Runs shell commands on an instance through SSM Run Command (AWS-RunShellScript) and waits for
 * them. A retried attempt (after a worker crash, say) waits for the command its step already sent
 * instead of running it twice: the command id is in the heartbeat, and when the worker died
 * before that heartbeat went out, the step's mark in the command's comment finds it.
 */
export function createRemoteRunner(clients: AwsClients, options: RemoteOptions) {
  /** Instances whose SSM agent was seen Online (by region), and when: no need to ask again. */
  const online = new Map<string, string>();
  const agentKey = (input: RemoteInput) => `${input.region}/${input.instanceId}`;

  /**
   * Waits until the instance's SSM agent has registered (DescribeInstanceInformation: Online),
   * polling with backoff: a fresh instance takes a minute or two. Asking SSM this way costs one
   * cheap call per poll instead of a SendCommand that fails. Each poll that finds it not online
   * also asks EC2 whether the instance still runs (the agent of a terminated one never comes).
   */
  async function agentOnline(input: RemoteInput, deadline: number): Promise<void> {
    const key = agentKey(input);
    if (online.has(key)) return;
    const ssm = clients.ssm(input.region);
    for (let wait = Math.min(250, options.pollIntervalMs); ; wait = Math.min(wait * 2, options.pollIntervalMs * 5)) {
      const out = await aws(`ask SSM whether the agent on ${input.instanceId} is online`, () =>
        ssm.send(
          new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [input.instanceId] }] }),
        ),
      );
      if (out.InstanceInformationList?.some((i) => i.InstanceId === input.instanceId && i.PingStatus === 'Online')) {
        online.set(key, new Date().toISOString());
        return;
      }
      // An instance that stopped running (terminated between two steps, say) never comes online.
      await mustBeRunning(input, 'so its SSM agent will never come online');
      if (Date.now() >= deadline) return; // SendCommand then says why (InvalidInstanceId).
      await Context.current().sleep(wait);
    }
  }

  async function send(input: RemoteInput, mark: string): Promise<string> {
    const ssm = clients.ssm(input.region);
    const deadline = Date.now() + (input.agentWaitSeconds ?? 600) * 1000;
    await agentOnline(input, deadline);
    for (;;) {
      try {
        const out = await aws(`run '${input.label}' on ${input.instanceId}`, () =>
          ssm.send(
            new SendCommandCommand({
              DocumentName: 'AWS-RunShellScript',
              InstanceIds: [input.instanceId],
              Comment: `ec2-gpu-migration ${mark} ${input.label}`.slice(0, 100),
              Parameters: {
                commands: shellScript(input.commands),
                executionTimeout: [executionTimeout(input.timeoutSeconds ?? 3600)],
              },
              TimeoutSeconds: Math.min(2_592_000, Math.max(30, input.agentWaitSeconds ?? 600)),
            }),
          ),
        );
        const commandId = out.Command?.CommandId;
        if (!commandId)
          throw ApplicationFailure.create({ type: 'SendCommandFailed', message: 'SendCommand returned no command id' });
        return commandId;
      } catch (err) {
        // The agent has not registered with SSM yet (a fresh instance takes a minute or two), or
        // the instance is shutting down or terminated: SSM answers both the same way.
        if (err instanceof ApplicationFailure && err.type === 'InvalidInstanceId' && Date.now() < deadline) {
          await mustBeRunning(input, 'so SSM cannot run the command');
          await Context.current().sleep(options.pollIntervalMs);
          continue;
        }
        throw err;
      }
    }
  }

  /** The latest command on the instance whose comment carries `mark`, if any. */
  async function findSent(input: RemoteInput, mark: string): Promise<string | undefined> {
    const ssm = clients.ssm(input.region);
    let latest: Command | undefined;
    let NextToken: string | undefined;
    do {
      const page = await aws(`look for the '${input.label}' command on ${input.instanceId}`, () =>
        ssm.send(new ListCommandsCommand({ InstanceId: input.instanceId, NextToken })),
      );
      for (const c of page.Commands ?? []) {
        if (!c.Comment?.split(' ').includes(mark)) continue;
        if (!latest || (c.RequestedDateTime?.getTime() ?? 0) > (latest.RequestedDateTime?.getTime() ?? 0)) latest = c;
      }
      NextToken = page.NextToken;
    } while (NextToken);
    return latest?.CommandId;
  }

  async function readInvocation(
    input: RemoteInput,
    commandId: string,
  ): Promise<GetCommandInvocationCommandOutput | undefined> {
    try {
      return await aws(`read the result of '${input.label}' on ${input.instanceId}`, () =>
        clients
          .ssm(input.region)
          .send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: input.instanceId })),
      );
    } catch (err) {
      // Right after SendCommand the invocation may not exist yet.
      if (err instanceof ApplicationFailure && err.type === 'InvocationDoesNotExist') return undefined;
      throw err;
    }
  }

  async function run(input: RemoteInput): Promise<RemoteResult> {
    const ctx = Context.current();
    const started = Date.now();
    // A command an earlier attempt sent for this same step: wait for it if it still runs or take
    // its success; after a failure, run the commands again. An activity may run several
    // commands (one per private service), so the heartbeat says which step its command was for
    // (details without a label come from a worker that ran one command per activity).
    const beat = (id: string) => ({ commandId: id, label: input.label, instanceId: input.instanceId });
    const earlierBeat = ctx.info.heartbeatDetails as Partial<ReturnType<typeof beat>> | undefined;
    const sameStep =
      (earlierBeat?.label ?? input.label) === input.label &&
      (earlierBeat?.instanceId ?? input.instanceId) === input.instanceId;
    const resume = input.resume !== false;
    const mark = stepMark(
      {
        workflowId: ctx.info.workflowExecution?.workflowId ?? '',
        runId: ctx.info.workflowExecution?.runId ?? ctx.info.activityRunId ?? '',
        activityId: ctx.info.activityId,
      },
      input,
    );
    let commandId = resume && sameStep ? earlierBeat?.commandId : undefined;
    // Alive from the first moment, however slow AWS answers: until the command id is known the
    // details name the step only (a retry then finds the command by its mark).
    const inv = await withHeartbeat(
      async () => {
        // The worker may have died between SendCommand and the heartbeat that would have told us.
        if (resume && !commandId && ctx.info.attempt > 1) commandId = await findSent(input, mark);
        if (commandId) {
          const earlier = await readInvocation(input, commandId);
          if (
            earlier?.Status &&
            FINAL.has(earlier.Status) &&
            (earlier.Status !== 'Success' || earlier.ResponseCode !== 0)
          )
            commandId = undefined;
        }
        const id = (commandId ??= await send(input, mark));
        ctx.heartbeat(beat(id));
        for (let polls = 1; ; polls++) {
          const read = await readInvocation(input, id);
          if (read?.Status && FINAL.has(read.Status)) return read;
          // SSM keeps a command to an instance that stopped running Pending or InProgress until its
          // timeout (up to hours): ask EC2 now and then, and give up at once when it is gone.
          if (polls % INSTANCE_CHECK_EVERY === 0) await mustBeRunning(input, `so command ${id} can never finish`);
          ctx.heartbeat(beat(id));
          await ctx.sleep(options.pollIntervalMs);
        }
      },
      () => (commandId ? beat(commandId) : { label: input.label, instanceId: input.instanceId }),
      1_000,
    );
    const cut = outputCut(inv.StandardOutputContent, inv.StandardErrorContent);
    const agentOnlineAt = online.get(agentKey(input));
    return {
      commandId: commandId ?? '',
      status: inv.Status ?? 'unknown',
      exitCode: inv.ResponseCode ?? -1,
      stdoutTail: tail(inv.StandardOutputContent),
      stderrTail: tail(inv.StandardErrorContent),
      ...(cut ? { cut } : {}),
      durationMs: Date.now() - started,
      attempt: attempt(),
      ...(agentOnlineAt ? { agentOnlineAt } : {}),
    };
  }

  /**
   * Fails the step, not retryably, once EC2 says its instance no longer runs: neither a command
   * nor an agent wait can end well then. No answer about the instance (throttling, EC2's lag
   * right after a launch) lets the step go on; it asks again later.
   */
  async function mustBeRunning(input: RemoteInput, consequence: string): Promise<void> {
    let state: string | undefined;
    try {
      const out = await clients
        .ec2(input.region)
        .send(new DescribeInstancesCommand({ InstanceIds: [input.instanceId] }));
      state = out.Reservations?.[0]?.Instances?.[0]?.State?.Name;
    } catch (err) {
      Context.current().log.warn('could not read the instance state', {
        instanceId: input.instanceId,
        error: (err as Error).message,
      });
      return;
    }
    if (!isDead(state)) return;
    throw ApplicationFailure.create({
      type: ErrorType.InstanceNotRunning,
      message: `'${input.label}' on ${input.instanceId}: the instance is ${state}, ${consequence}`,
      nonRetryable: true,
    });
  }

  /** Runs the commands and fails (retryably) unless they exit 0. */
  async function runChecked(input: RemoteInput): Promise<RemoteResult> {
    const result = await run(input);
    if (result.status !== 'Success' || result.exitCode !== 0) {
      throw ApplicationFailure.create({
        type: ErrorType.RemoteCommandFailed,
        message: `'${input.label}' on ${input.instanceId} ended ${result.status} with exit code ${result.exitCode}${result.stderrTail ? `: ${result.stderrTail.slice(-500)}` : ''}${result.cut ? ` (${result.cut})` : ''}`,
        details: [result],
      });
    }
    return result;
  }

  return { run, runChecked };
}
