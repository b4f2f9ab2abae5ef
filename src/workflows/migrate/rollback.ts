/**
 * The way back: every undo registered so far runs, newest first, whatever failed; the run then
 * fails with its report in the failure's details. Workflow code only.
 */
import { ApplicationFailure, CancellationScope, log } from '@temporalio/workflow';
import { ErrorType } from '../../shared/errors';
import { describeFailure, failureType, isCancelled } from '../../shared/failures';
import { buildReport } from './report';
import type { MigrationRun } from './run';

/** Rolls the run back after `err` and returns what the workflow fails with. */
export async function rollBack(run: MigrationRun, err: unknown): Promise<unknown> {
  const { status } = run;
  const rejected = err instanceof ApplicationFailure && err.type === ErrorType.Rejected;
  if (!status.error) status.error = { type: failureType(err), message: describeFailure(err) };
  log.error('migration failed; rolling back', { error: status.error });
  status.phase = 'rolling-back';
  run.refreshDetails();
  await CancellationScope.nonCancellable(() => undoAll(run));
  status.phase = status.compensations.some((c) => c.state === 'failed') ? 'failed' : 'rolled-back';
  run.outcome = status.phase === 'rolled-back' ? 'rolled back' : 'failed';
  run.refreshDetails();
  const report = await buildReport(run);
  // A cancelled run ends cancelled (after its rollback), as the person asked.
  if (isCancelled(err)) return err;
  const ending = run.outcome === 'rolled back' ? 'rolled back' : 'its rollback did not finish';
  return ApplicationFailure.create({
    type: status.error.type,
    message: `${rejected ? 'migration rejected' : 'migration failed'} and ${ending}: ${status.error.message}`,
    nonRetryable: true,
    details: [report],
  });
}

async function undoAll(run: MigrationRun): Promise<void> {
  for (const c of run.compensations) {
    if (run.keepFailed && c.keepable) {
      run.status.compensations.push({ name: c.name, state: 'skipped', detail: '--keep-failed' });
      continue;
    }
    try {
      await c.run();
      run.status.compensations.push({ name: c.name, state: 'done' });
      // Only what was undone is `compensated`: a kept instance or a failed undo stays as it was.
      if (c.phase && run.record(c.phase).state === 'succeeded') run.record(c.phase).state = 'compensated';
    } catch (err) {
      run.status.compensations.push({ name: c.name, state: 'failed', detail: describeFailure(err) });
    }
  }
}
