/**
 * The way back: every undo registered so far runs, newest first, whatever failed; the run then
 * fails with its report in the failure's details. Workflow code only.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  log,
  metricMeter,
  patched,
  sleep,
} from '@temporalio/workflow';
import { ErrorType } from '../../shared/errors';
import { describeFailure, failureType, isCancelled } from '../../shared/failures';
import { rethrowBug } from '../input';
import { MIGRATION, UNDO_FOR_MS, UNDO_PAUSE } from '../options';
import { buildReport } from './report';
import type { Compensation, MigrationRun } from './run';

/** Rolls the run back after `err` and returns what the workflow fails with. */
export async function rollBack(run: MigrationRun, err: unknown): Promise<unknown> {
  const { status } = run;
  const rejected = err instanceof ApplicationFailure && err.type === ErrorType.Rejected;
  if (!status.error) status.error = { type: failureType(err), message: describeFailure(err) };
  if (run.stood) return endStanding(run, err);
  log.error('migration failed; rolling back', { error: status.error });
  status.phase = 'rolling-back';
  run.refreshDetails();
  await CancellationScope.nonCancellable(() => undoAll(run));
  status.phase = status.compensations.some((c) => c.state === 'failed') ? 'failed' : 'rolled-back';
  run.outcome = status.phase === 'rolled-back' ? 'rolled back' : 'failed';
  run.refreshDetails();
  const report = await buildReport(run);
  run.notifier.send({
    kind: status.phase === 'rolled-back' ? 'rolled-back' : 'failed',
    error: status.error.message,
    ...(status.error.phase ? { phase: status.error.phase } : {}),
  });
  await run.notifier.settle();
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

/**
 * A run cancelled or failed once the migration stood: the Elastic IP is on the new instance and
 * the old one is as the decision left it. Nothing is rolled back, and nothing says it was; the
 * report tells what was not done.
 */
async function endStanding(run: MigrationRun, err: unknown): Promise<unknown> {
  const { status, plan } = run;
  const cancelled = isCancelled(err);
  const missing = [
    ...(run.images.golden ? [] : ['the golden image']),
    ...(plan.target.market === 'spot' && !status.guardianWorkflowId ? ['the Spot guardian'] : []),
  ];
  run.warnings.push(
    `${cancelled ? 'cancelled' : 'failed'} after the cut-over: nothing was rolled back; the Elastic IP stays on ${status.newInstanceId}${missing.length ? `; not done: ${missing.join(', ')}` : ''}`,
  );
  log.warn(`migration ${cancelled ? 'cancelled' : 'failed'} after the cut-over; nothing is rolled back`, {
    error: status.error,
  });
  status.phase = cancelled ? 'cancelled' : 'failed';
  run.outcome = cancelled ? 'cancelled' : 'failed';
  run.refreshDetails();
  const report = await buildReport(run);
  run.notifier.send({ kind: cancelled ? 'cancelled' : 'failed', error: status.error?.message ?? 'unknown' });
  // A cancelled run ends at once (whoever cancelled it knows); its notice may go with it.
  if (!cancelled) await run.notifier.settle();
  if (cancelled) return err;
  return ApplicationFailure.create({
    type: status.error?.type,
    message: `migration failed after the cut-over (nothing rolled back; the migration stands): ${status.error?.message ?? ''}`,
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
      // Runs that began before tried each undo once (with its activity's retries).
      await (patched('undo-until-done') ? untilUndone(run, c) : c.run());
      run.status.compensations.push({ name: c.name, state: 'done' });
      // Only what was undone is `compensated`: a kept instance or a failed undo stays as it was.
      if (c.phase && run.record(c.phase).state === 'succeeded') run.record(c.phase).state = 'compensated';
    } catch (err) {
      rethrowBug(err, `undo: ${c.name}`);
      run.status.compensations.push({ name: c.name, state: 'failed', detail: describeFailure(err) });
    }
  }
}

/** An undo that failed for good: its activity said no retry can help (a permanent AWS code). */
const permanent = (err: unknown) =>
  err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable;

/**
 * Runs one undo until it succeeds: between rounds of quick tries, it is shown as failing in the
 * status (`undoFailing`), the Web UI and the metric `ec2_gpu_migration_undo_failures{step}`, so
 * someone can look. It gives up after UNDO_FOR_MS (a day), or at once on a permanent failure.
 */
async function untilUndone(run: MigrationRun, c: Compensation): Promise<void> {
  const since = new Date().toISOString();
  const giveUpAt = Date.parse(since) + UNDO_FOR_MS;
  const tries = MIGRATION.undo.retry.maximumAttempts;
  const failures = metricMeter.createCounter(
    'ec2_gpu_migration_undo_failures',
    'rounds',
    'Rounds of tries of an undo step that failed during a rollback (it is tried again, for up to a day)',
  );
  for (let round = 1; ; round++) {
    try {
      await c.run();
      if (run.status.undoFailing) {
        log.info('the undo step succeeded after failing', { step: c.name, rounds: round });
        delete run.status.undoFailing;
        run.refreshDetails();
      }
      return;
    } catch (err) {
      rethrowBug(err, `undo: ${c.name}`);
      const pauseMs = Math.min(UNDO_PAUSE.maxMs, UNDO_PAUSE.firstMs * 2 ** (round - 1));
      if (permanent(err) || Date.now() + pauseMs > giveUpAt) {
        delete run.status.undoFailing;
        throw err;
      }
      const lastError = describeFailure(err);
      run.status.undoFailing = {
        name: c.name,
        since,
        tries: round * tries,
        lastError,
        nextTryAt: new Date(Date.now() + pauseMs).toISOString(),
      };
      failures.add(1, { step: c.name });
      log.error('an undo step keeps failing; trying again', { step: c.name, round, error: lastError });
      if (round === 1)
        run.notifier.send({ kind: 'undo-failing', step: c.name, error: lastError, since, tries: round * tries });
      run.refreshDetails();
      await sleep(pauseMs, { summary: `undo "${c.name}" failed: trying again` });
    }
  }
}
