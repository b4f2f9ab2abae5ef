/**
 * What the workflows do with their input and with their own bugs. Workflow code only.
 *
 * - Input: a workflow may be started by other means than the CLI (the Web UI, another SDK,
 *   `temporal workflow start`), so each checks its input at start and fails at once, as
 *   `InvalidInput`, naming the field; before, a bad duration threw a TypeError in every task.
 * - Bugs: an error that is not a Temporal failure (a TypeError, a RangeError…) is a bug in this
 *   code, not a verdict on the migration. It is logged, counted, and thrown on: it fails the
 *   workflow *task*, which Temporal retries until a worker with the fix takes it; the run then
 *   goes on from where it was. Nothing is rolled back or replaced for it.
 */
import {
  ApplicationFailure,
  TemporalFailure,
  isCancellation,
  log,
  metricMeter,
  workflowInfo,
} from '@temporalio/workflow';
import { PlanError, validatePlan } from '../plan/validate';
import type { Plan } from '../plan/schema';

/** Fails the run as `InvalidInput` when `plan` is not a valid plan; the problems name their fields. */
export function checkPlan(plan: unknown): asserts plan is Plan {
  try {
    validatePlan(plan, `in the input of ${workflowInfo().workflowType}`);
  } catch (err) {
    if (err instanceof PlanError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInput');
    throw err;
  }
}

/** Fails the run as `InvalidInput` with `problem`, when there is one. */
export function refuseInput(problem: string | undefined): void {
  if (problem)
    throw ApplicationFailure.nonRetryable(
      `invalid input of ${workflowInfo().workflowType}: ${problem}`,
      'InvalidInput',
    );
}

/** Whether `err` is a bug of this code rather than a failure Temporal or an activity reported. */
export function isBug(err: unknown): boolean {
  return !(err instanceof TemporalFailure) && !isCancellation(err);
}

/**
 * For a `catch` that would otherwise treat `err` as a failed step: a bug is logged, counted in
 * `ec2_gpu_migration_workflow_bugs{workflow}` and thrown on, so the workflow task fails and is
 * retried on fixed code. Anything else returns.
 */
export function rethrowBug(err: unknown, where: string): void {
  if (!isBug(err)) return;
  const workflow = workflowInfo().workflowType;
  log.error('a bug in the workflow code: the workflow task fails until a fixed worker takes it', {
    where,
    error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
  });
  metricMeter
    .createCounter(
      'ec2_gpu_migration_workflow_bugs',
      'errors',
      'Errors thrown by workflow code (bugs): each fails a workflow task',
    )
    .add(1, { workflow, where });
  throw err;
}
