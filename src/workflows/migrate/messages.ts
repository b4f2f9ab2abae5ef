/**
 * The messages a migration run takes: a person's decision (the `approve`/`reject` signals and
 * the `decide` update, one validation for all three) and the new Spot instance's notices while
 * the migration still stands by the old instance. An invalid message is recorded in the status,
 * never thrown away silently. Workflow code only.
 */
import { ApplicationFailure, log, setDefaultSignalHandler, setHandler } from '@temporalio/workflow';
import { ErrorType } from '../../shared/errors';
import { SIGNAL_DESCRIPTIONS, approveSignal, decideUpdate, rejectSignal, type Decision } from '../../shared/migration';
import { NOTICE_KINDS, interruptionSignal } from '../../shared/spot';
import type { MigrationRun } from './run';

type Kind = 'approve' | 'reject';

/** Why a decision cannot be taken now, or undefined when it can. */
function refusal(run: MigrationRun, d: Partial<Decision> | undefined, kind: Kind): string | undefined {
  const approvers = run.plan.approval.approvers;
  if (!d || typeof d !== 'object')
    return `${kind} needs a JSON object payload such as {"by": "your name"${kind === 'reject' ? ', "reason": "why"' : ''}}`;
  if (typeof d.by !== 'string' || d.by.trim() === '') return `${kind} needs "by": the name of the person deciding`;
  const reason = (d as { reason?: unknown }).reason;
  if (kind === 'reject' && (typeof reason !== 'string' || !reason.trim()))
    return 'reject needs "reason": why the migration is rejected';
  if ('comment' in d && d.comment !== undefined && typeof d.comment !== 'string') return '"comment" must be a string';
  const earlier = run.decision;
  if (earlier?.decision === 'timed-out')
    return `too late: the approval timed out at ${earlier.at} (approval.timeout ${run.plan.approval.timeout}); the Elastic IP stays on the new instance and the old instance still runs: stop it by hand once satisfied`;
  if (earlier) return `already ${earlier.decision} by ${earlier.by ?? 'someone'} at ${earlier.at}`;
  if (run.status.phase !== 'awaiting-approval') return `no decision is awaited now (phase: ${run.status.phase})`;
  if (kind === 'approve' && approvers.length > 0 && !approvers.includes(d.by.trim()))
    return `${d.by} is not an approver (approval.approvers: ${approvers.join(', ')})`;
  return undefined;
}

/**
 * A signal not acted on: recorded in the status, and shown at once in the Web UI's current
 * details (a signal's sender is told only that it was delivered).
 */
function refuse(run: MigrationRun, name: string, reason: string): void {
  run.status.ignoredMessages.push({ name, at: new Date().toISOString(), reason });
  log.warn('refused a signal', { signal: name, reason });
  run.refreshDetails();
  // The router's notices are machine talk; a person's signal is worth telling about.
  if (name !== 'interruption') run.notifier.send({ kind: 'signal-refused', name, reason });
}

function accept(run: MigrationRun, d: Decision, via: 'signal' | 'update') {
  run.decision = {
    decision: d.decision === 'approve' ? 'approved' : 'rejected',
    by: d.by.trim(),
    comment: d.decision === 'approve' ? d.comment : d.reason,
    at: new Date().toISOString(),
    via,
  };
  run.status.approval = run.decision;
  run.notifier.send({
    kind: run.decision.decision === 'approved' ? 'approved' : 'rejected',
    by: run.decision.by ?? '?',
    ...(run.decision.comment ? { comment: run.decision.comment } : {}),
    via,
  });
  return run.decision;
}

export function setApprovalHandlers(run: MigrationRun): void {
  const onSignal = (kind: Kind) => (payload: unknown) => {
    const problem = refusal(run, payload as Partial<Decision>, kind);
    if (problem) return refuse(run, kind, problem);
    accept(run, { ...(payload as object), decision: kind } as Decision, 'signal');
  };
  setHandler(approveSignal, onSignal('approve'), { description: SIGNAL_DESCRIPTIONS.approve });
  // A signal of another name is not kept waiting unseen: it is refused where people look.
  setDefaultSignalHandler((name) =>
    refuse(
      run,
      name,
      `no signal "${name}" here: send approve {"by": "name"} or reject {"by": "name", "reason": "…"} (or the update decide, which answers at once)`,
    ),
  );
  setHandler(rejectSignal, onSignal('reject'), { description: SIGNAL_DESCRIPTIONS.reject });
  setHandler(decideUpdate, (d) => accept(run, d, 'update'), {
    description:
      'Approve or reject, answered at once: {"decision": "approve"|"reject", "by": "name", "comment"|"reason": "…"}',
    validator: (d) => {
      const kind = d?.decision;
      if (kind !== 'approve' && kind !== 'reject') throw new Error('"decision" must be "approve" or "reject"');
      const problem = refusal(run, d, kind);
      if (problem) throw new Error(problem);
    },
  });
}

/**
 * From the launch (runs that began before: from the Elastic IP switch) until the guardian takes
 * over, the migration itself owns the new Spot instance's notices (the router sends them here):
 * while the old instance still runs, a lost new one is launched again (or, in runs that began
 * before, the migration rolls back to the old one), never left without anyone watching.
 */
export function setNoticeHandler(run: MigrationRun): void {
  setHandler(
    interruptionSignal,
    (n) => {
      const { status } = run;
      if (
        !run.guarding ||
        !n ||
        typeof n !== 'object' ||
        n.instanceId !== status.newInstanceId ||
        !NOTICE_KINDS.includes(n.kind)
      ) {
        return refuse(
          run,
          'interruption',
          run.guarding
            ? `not a notice for the new instance ${status.newInstanceId}`
            : 'the new instance is not guarded by the migration now',
        );
      }
      run.notice ??= { ...n, at: n.at ?? new Date().toISOString() };
    },
    {
      description:
        "A Spot notice for the new instance (from the region's router) while the migration still stands by the old one: the Elastic IP goes back to the old one and a new instance is launched.",
    },
  );
}

/**
 * Fails the run when the new instance got a notice `during` a step (a Spot notice, or the watch
 * of an on-demand one finding it stopped): the rollback goes back to the old one.
 */
export function failIfInterrupted(run: MigrationRun, during: string, oldState = 'which still runs'): void {
  const { notice } = run;
  if (!notice) return;
  if (notice.source === 'watch')
    throw ApplicationFailure.create({
      type: ErrorType.InstanceNotRunning,
      message: `the new instance ${notice.instanceId} stopped running (${notice.state ?? 'not running'}, seen by the watch) ${during}: the Elastic IP goes back to ${run.plan.source.instanceId}, ${oldState}`,
      nonRetryable: true,
    });
  throw ApplicationFailure.create({
    type: ErrorType.SpotInterrupted,
    message: `the new Spot instance ${notice.instanceId} was interrupted (${notice.kind} notice, from the ${notice.source ?? 'signal'}) ${during}: the Elastic IP goes back to ${run.plan.source.instanceId}, ${oldState}`,
    nonRetryable: true,
  });
}
