/**
 * What a failure says, however deep Temporal wrapped it: its type, its message, the attempts it
 * took and a remote step's output. Pure: workflow code imports this file.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  ChildWorkflowFailure,
  NexusOperationFailure,
} from '@temporalio/common';
import { ErrorType } from './errors';
import type { PhaseRecord } from './migration';

/** The failure an activity raised, without Temporal's ActivityFailure wrapper. */
export function rootCause(err: unknown): unknown {
  return err instanceof ActivityFailure && err.cause ? err.cause : err;
}

/** A cancellation, direct or as the cause of an activity, child or operation that was cancelled. */
export function isCancelled(err: unknown): boolean {
  return (
    err instanceof CancelledFailure ||
    ((err instanceof ActivityFailure || err instanceof ChildWorkflowFailure || err instanceof NexusOperationFailure) &&
      err.cause instanceof CancelledFailure)
  );
}

/** The failure's type: an ApplicationFailure's type (the AWS code for AWS calls), else its name. */
export function failureType(err: unknown): string {
  const cause = rootCause(err);
  if (cause instanceof ApplicationFailure && cause.type) return cause.type;
  if (isCancelled(err)) return 'Cancelled';
  return cause instanceof Error ? cause.name : 'Error';
}

/** The failure's own message (an activity's, not Temporal's "Activity task failed"). */
export function describeFailure(err: unknown): string {
  const cause = rootCause(err);
  return cause instanceof Error ? cause.message : String(cause);
}

/** The attempts the failed activity made, as it stamped them in the failure's details. */
export function failedAttempts(err: unknown): number {
  const cause = rootCause(err);
  if (cause instanceof ApplicationFailure) {
    const meta = (cause.details ?? []).find(
      (d): d is { attempt: number } => typeof d === 'object' && d !== null && 'attempt' in d,
    );
    if (meta) return meta.attempt;
  }
  return 1;
}

/** The exit code and output tails of a remote step that exited non-zero. */
export function remoteOutputOf(err: unknown): PhaseRecord['output'] | undefined {
  const cause = rootCause(err);
  if (!(cause instanceof ApplicationFailure) || cause.type !== ErrorType.RemoteCommandFailed) return undefined;
  const d = (cause.details ?? [])[0] as
    { exitCode?: number; stdoutTail?: string; stderrTail?: string; cut?: string } | undefined;
  return d && typeof d.exitCode === 'number'
    ? {
        exitCode: d.exitCode,
        stdoutTail: d.stdoutTail ?? '',
        stderrTail: d.stderrTail ?? '',
        ...(d.cut ? { cut: d.cut } : {}),
      }
    : undefined;
}
