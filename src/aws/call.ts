import { ApplicationFailure } from '@temporalio/common';
import { isPermanentAwsError } from '../shared/errors';

/** An AWS SDK error: its `name` is the AWS error code (`InvalidAMIID.NotFound`). */
export interface AwsError extends Error {
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; requestId?: string };
  Code?: string;
}

/**
 * Runs one AWS call and rethrows a failure as an ApplicationFailure whose type is the AWS code,
 * non-retryable when no retry can fix it (isPermanentAwsError). `what` says what we were doing.
 */
export async function aws<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toFailure(what, err);
  }
}

export function toFailure(what: string, err: unknown): Error {
  if (err instanceof ApplicationFailure) return err;
  if (!(err instanceof Error)) return new Error(`${what}: ${String(err)}`);
  if (err.name === 'AbortError') return err;
  const code = (err as AwsError).Code ?? err.name;
  return ApplicationFailure.create({
    type: code,
    message: `${what}: ${code}: ${err.message}`,
    nonRetryable: isPermanentAwsError(code, err.message),
    cause: err,
  });
}
