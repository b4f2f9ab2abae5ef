import { GetCommandInvocationCommand, SendCommandCommand, type GetCommandInvocationCommandOutput } from '@aws-sdk/client-ssm';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import type { RemoteOutput } from '../shared/migration';
import { ErrorType } from '../shared/errors';
import { attempt, pause, tail } from './util';

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
  status: string;
  durationMs: number;
  attempt: number;
}

const FINAL = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut', 'Undeliverable', 'Terminated', 'InvalidPlatform', 'AccessDenied', 'DeliveryTimedOut', 'ExecutionTimedOut']);

export interface RemoteOptions {
  /** Between polls of a running command and of an agent that has not registered yet. */
  pollIntervalMs: number;
}

/**
 * Runs shell commands on an instance through SSM Run Command (AWS-RunShellScript) and waits for
 * them. The command id is kept in the heartbeat, so a retried attempt after a worker crash waits
 * for the same command instead of running it twice.
 */
export function createRemoteRunner(clients: AwsClients, options: RemoteOptions) {
  async function send(input: RemoteInput): Promise<string> {
    const ssm = clients.ssm(input.region);
    const deadline = Date.now() + (input.agentWaitSeconds ?? 600) * 1000;
    for (;;) {
      try {
        const out = await aws(`run '${input.label}' on ${input.instanceId}`, () =>
          ssm.send(
            new SendCommandCommand({
              DocumentName: 'AWS-RunShellScript',
              InstanceIds: [input.instanceId],
              Comment: `ec2-gpu-migration ${input.label}`.slice(0, 100),
              Parameters: { commands: input.commands, executionTimeout: [String(input.timeoutSeconds ?? 3600)] },
              TimeoutSeconds: Math.min(2_592_000, Math.max(30, input.agentWaitSeconds ?? 600)),
            }),
          ),
        );
        const commandId = out.Command?.CommandId;
        if (!commandId) throw ApplicationFailure.create({ type: 'SendCommandFailed', message: 'SendCommand returned no command id' });
        return commandId;
      } catch (err) {
        // The agent has not registered with SSM yet (a fresh instance takes a minute or two).
        if (err instanceof ApplicationFailure && err.type === 'InvalidInstanceId' && Date.now() < deadline) {
          await pause(options.pollIntervalMs);
          continue;
        }
        throw err;
      }
    }
  }

  async function readInvocation(input: RemoteInput, commandId: string): Promise<GetCommandInvocationCommandOutput | undefined> {
    try {
      return await aws(`read the result of '${input.label}' on ${input.instanceId}`, () =>
        clients.ssm(input.region).send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: input.instanceId })),
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
    const sameStep = (earlierBeat?.label ?? input.label) === input.label && (earlierBeat?.instanceId ?? input.instanceId) === input.instanceId;
    let commandId = input.resume !== false && sameStep ? earlierBeat?.commandId : undefined;
    if (commandId) {
      const earlier = await readInvocation(input, commandId);
      if (earlier?.Status && FINAL.has(earlier.Status) && (earlier.Status !== 'Success' || earlier.ResponseCode !== 0)) commandId = undefined;
    }
    commandId ??= await send(input);
    ctx.heartbeat(beat(commandId));
    let inv: GetCommandInvocationCommandOutput | undefined;
    for (;;) {
      inv = await readInvocation(input, commandId);
      if (inv?.Status && FINAL.has(inv.Status)) break;
      ctx.heartbeat(beat(commandId));
      await ctx.sleep(options.pollIntervalMs);
    }
    return {
      commandId,
      status: inv.Status ?? 'unknown',
      exitCode: inv.ResponseCode ?? -1,
      stdoutTail: tail(inv.StandardOutputContent),
      stderrTail: tail(inv.StandardErrorContent),
      durationMs: Date.now() - started,
      attempt: attempt(),
    };
  }

  /** Runs the commands and fails (retryably) unless they exit 0. */
  async function runChecked(input: RemoteInput): Promise<RemoteResult> {
    const result = await run(input);
    if (result.status !== 'Success' || result.exitCode !== 0) {
      throw ApplicationFailure.create({
        type: ErrorType.RemoteCommandFailed,
        message: `'${input.label}' on ${input.instanceId} ended ${result.status} with exit code ${result.exitCode}${result.stderrTail ? `: ${result.stderrTail.slice(-500)}` : ''}`,
        details: [result],
      });
    }
    return result;
  }

  return { run, runChecked };
}
