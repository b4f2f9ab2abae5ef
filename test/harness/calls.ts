/**
 * Small clients of the test world: one SDK call that must fail, a Run Command read until it
 * ends, one HTTP request that may be dropped.
 */
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import type { AwsError } from '../../src/aws/call';

/** Rejection of `promise`, asserting there is one. */
export async function rejectionOf(promise: Promise<unknown>): Promise<AwsError> {
  try {
    await promise;
  } catch (err) {
    return err as AwsError;
  }
  throw new Error('expected the call to fail, and it succeeded');
}

/** Sends a command and reads its invocation until it is no longer Pending (or, with `untilDone`, InProgress). */
export async function runCommand(
  ssm: SSMClient,
  instanceId: string,
  commands: string[],
  options: { untilDone?: boolean } = {},
) {
  const sent = await ssm.send(
    new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: [instanceId], Parameters: { commands } }),
  );
  const commandId = sent.Command?.CommandId;
  if (!commandId) throw new Error('SendCommand returned no CommandId');
  const waiting = new Set(options.untilDone === false ? ['Pending'] : ['Pending', 'InProgress']);
  for (let read = 1; ; read++) {
    try {
      const invocation = await ssm.send(
        new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
      );
      if (!waiting.has(invocation.Status ?? '')) return { commandId, invocation, reads: read };
    } catch (err) {
      // Right after SendCommand the invocation does not exist yet, as on SSM.
      if ((err as Error).name !== 'InvocationDoesNotExist') throw err;
    }
    if (read >= 250) throw new Error(`command ${commandId} still not done after ${read} reads`);
    // SSM moves a command on with time (ProxyTiming.commandPreludeMs): poll, as a client would.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One HTTP request; resolves with the status, or 'dropped' when the connection was destroyed. */
export async function httpGet(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number | 'dropped'; body: string; servedBy?: string }> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.text(), servedBy: res.headers.get('x-served-by') ?? undefined };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    if (cause?.code === 'ECONNRESET' || cause?.code === 'UND_ERR_SOCKET') return { status: 'dropped', body: '' };
    throw err;
  }
}
