import { WorkflowFailedError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { PlanError } from '../plan/load';
import { ConfigError } from '../config';
import { TemporalUnreachable } from '../connection';

/** Exit codes, a contract: 0 ok, 1 the workflow failed (or could not be reached), 2 bad input. */
export const EXIT = { ok: 0, failed: 1, badInput: 2 } as const;

/** Bad input on the command line: exit 2, nothing started. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A decision or request the workflow turned down: exit 2, nothing changed. */
export class RefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedError';
  }
}

/** The one place errors become messages and exit codes. */
export function handleError(err: unknown, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  if (err instanceof PlanError) {
    write(
      `error: ${err.message}\nNothing was started. Fix the fields above; \`migration plan FILE\` checks a plan without touching AWS.\n`,
    );
    return EXIT.badInput;
  }
  if (err instanceof ConfigError) {
    write(`error: ${err.message}\nNothing was started. Fix or unset ${err.variable}.\n`);
    return EXIT.badInput;
  }
  if (err instanceof UsageError) {
    write(`error: ${err.message}\n`);
    return EXIT.badInput;
  }
  if (err instanceof RefusedError) {
    write(`refused: ${err.message}\nNothing changed.\n`);
    return EXIT.badInput;
  }
  if (err instanceof WorkflowUpdateFailedError) {
    write(`refused: ${(err.cause as Error | undefined)?.message ?? err.message}\nNothing changed.\n`);
    return EXIT.badInput;
  }
  if (err instanceof WorkflowNotFoundError) {
    write(`error: no workflow ${err.workflowId ?? ''} in this namespace (is TEMPORAL_NAMESPACE right?)\n`);
    return EXIT.badInput;
  }
  if (err instanceof TemporalUnreachable) {
    write(`error: ${err.message}\n`);
    return EXIT.failed;
  }
  if (err instanceof WorkflowFailedError) {
    write(`the workflow failed: ${(err.cause as Error | undefined)?.message ?? err.message}\n`);
    return EXIT.failed;
  }
  if (err instanceof Error && /credential/i.test(err.name + err.message)) {
    write(
      `error: AWS credentials: ${err.message}\nThey are looked up through the AWS SDK's default chain: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, SSO, or an instance role.\n`,
    );
    return EXIT.failed;
  }
  write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.failed;
}
