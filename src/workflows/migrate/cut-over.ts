/**
 * The cut-over: a person's decision, stopping the old instance (with a backup of it), and what
 * follows once the migration stands: the golden image and, on Spot, the guardian. Workflow code
 * only.
 */
import {
  ApplicationFailure,
  ParentClosePolicy,
  condition,
  getExternalWorkflowHandle,
  log,
  patched,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { durationMs } from '../../plan/duration';
import { checkHost } from '../../shared/check-host';
import { guardianWorkflowId, spotTaskQueue } from '../../shared/constants';
import { ErrorType } from '../../shared/errors';
import { describeFailure, isCancelled } from '../../shared/failures';
import { planRef } from '../../shared/plan-slices';
import { GUARDED_INSTANCE, PLAN_NAME } from '../../shared/search-attributes';
import { goldenImageSignal, interruptionSignal } from '../../shared/spot';
import { spotGuardian } from '../guardian';
import { failIfInterrupted } from './messages';
import type { MigrationRun, NewInstance } from './run';

/**
 * Waits for a person. A rejection or a Spot notice fails the run (and so rolls it back); a
 * timeout leaves both instances running, the Elastic IP on the new one.
 */
export async function awaitApproval(run: MigrationRun): Promise<'approved' | 'timed-out'> {
  const { plan, status } = run;
  failIfInterrupted(run, 'during the performance tests');
  status.phase = 'awaiting-approval';
  run.refreshDetails();
  run.notifier.send({
    kind: 'awaiting-approval',
    newInstanceId: status.newInstanceId ?? '?',
    oldInstanceId: plan.source.instanceId,
    deadline: new Date(Date.now() + durationMs(plan.approval.timeout)).toISOString(),
    approvers: plan.approval.approvers,
  });
  log.info('waiting for approval', { workflowId: run.workflowId, timeout: plan.approval.timeout });
  const decided = await condition(
    () => run.decision !== undefined || run.notice !== undefined,
    durationMs(plan.approval.timeout),
    { summary: `waiting for approval (${plan.approval.timeout}): approve or reject ${run.workflowId}` },
  );
  failIfInterrupted(run, 'while awaiting approval');
  if (!decided) {
    run.decision = { decision: 'timed-out', at: new Date().toISOString() };
    status.approval = run.decision;
    run.record('stop-old').state = 'skipped';
    run.record('stop-old').figures.skipped = {
      value: 'approval timed out: the old instance still runs; the Elastic IP is on the new instance',
      source: 'measured',
    };
    run.outcome = 'approval timed out';
    // Nobody is waited for any more: nothing may say so while the rest is done.
    status.phase = 'finalizing';
    run.refreshDetails();
    return 'timed-out';
  }
  if (run.decision?.decision === 'rejected')
    throw ApplicationFailure.create({
      type: ErrorType.Rejected,
      message: `rejected by ${run.decision.by}: ${run.decision.comment ?? ''}`,
      nonRetryable: true,
    });
  return 'approved';
}

/**
 * After the decision, before anything of the old instance is touched: the new instance still
 * runs, holds the Elastic IP and answers there. The wait for a person can be long; an instance
 * lost during it (terminated, the address gone with it) fails the phase, and the rollback moves
 * the Elastic IP back to the old instance, which still runs.
 */
async function stillServing(run: MigrationRun, vm: NewInstance): Promise<void> {
  const { plan } = run;
  const { quick, checks } = run.acts;
  const lost = (why: string) =>
    ApplicationFailure.create({
      type: ErrorType.InstanceNotRunning,
      message: `the new instance ${vm.instanceId} ${why} after the decision: the old instance ${plan.source.instanceId} is not stopped`,
      nonRetryable: true,
    });
  const instance = await quick.getInstance({ region: plan.region, instanceId: vm.instanceId });
  if (instance.state !== 'running') throw lost(`is ${instance.state}`);
  const address = await quick.describeAddress({ region: plan.region, allocationId: plan.elasticIp.allocationId });
  if (address.instanceId !== vm.instanceId)
    throw lost(`no longer holds the Elastic IP (it is on ${address.instanceId ?? 'no instance'})`);
  await checks.checkServices({
    spec: run.checks,
    instanceId: vm.instanceId,
    host: checkHost(plan.checks, address.publicIp),
    scope: 'public',
  });
}

/** Phase 11: the old instance stopped, and an image of it as a backup, with its undo. */
export async function stopOld(run: MigrationRun, vm: NewInstance): Promise<void> {
  const { plan } = run;
  const { long } = run.acts;
  const old = { region: plan.region, instanceId: plan.source.instanceId };
  run.undoable({
    name: `start ${plan.source.instanceId} again`,
    phase: 'stop-old',
    run: () => run.acts.undoWaiting.startInstance(old),
  });
  await run.phase(
    'stop-old',
    async () => {
      // Runs that began before stop it unchecked.
      if (patched('serving-before-stop')) await stillServing(run, vm);
      // The backup is taken of the stopped instance: an image of a running one (NoReboot) is
      // only crash-consistent. Runs that began before keep the old order.
      const stopFirst = patched('backup-after-stop');
      const stoppedBefore = stopFirst ? await long.stopInstance(old) : undefined;
      const backup = await long.createImage({
        plan: planRef(plan),
        workflowId: run.workflowId,
        step: 'backup',
        instanceId: plan.source.instanceId,
        stamp: run.startedAt.slice(0, 10),
      });
      run.images.backup = backup.imageId;
      const stopped = stoppedBefore ?? (await long.stopInstance(old));
      return { ...stopped, backupImageId: backup.imageId, attempt: backup.attempt };
    },
    (r) => ({
      backupImage: { value: r.backupImageId, source: 'measured' },
      oldState: { value: r.state, source: 'measured' },
    }),
  );
  // Interrupted while the old one stopped: start it again and move the Elastic IP back.
  failIfInterrupted(run, 'while the old instance was being stopped', 'which the rollback starts again first');
}

/**
 * After the decision, before the old instance is stopped: a guardian of the plan that already
 * runs (an earlier migration's, guarding the instance this one replaces) is handed the new
 * instance, so it never takes the stopped old one for a lost Spot instance and moves the Elastic
 * IP back to a replacement of it. It refuses only what it cannot do (the Elastic IP is not on the
 * new instance, or it is stopping): then the run fails and rolls back.
 */
export async function handOverGuardian(run: MigrationRun, vm: NewInstance): Promise<void> {
  const { plan, status } = run;
  if (plan.target.market !== 'spot' || !patched('hand-over-guardian')) return;
  const guardianId = guardianWorkflowId(plan.name);
  const answer = await run.acts.long.handOverToGuardian({
    guardianId,
    request: { instanceId: vm.instanceId, migrationWorkflowId: run.workflowId, market: vm.market },
    updateId: `hand-over-${run.runId}`,
  });
  if (!answer.running || !answer.changed) return;
  status.guardianHandedOver = { guardianWorkflowId: guardianId, previousInstanceId: answer.previousInstanceId };
  run.warnings.push(
    `${guardianId} was already guarding ${answer.previousInstanceId} (an earlier migration of the plan): it now guards ${vm.instanceId}`,
  );
  log.info('handed the new instance over to the running guardian', { ...status.guardianHandedOver });
}

/** The golden image of the new instance, and its Spot guardian when it runs on Spot. */
export async function afterCutOver(run: MigrationRun, vm: NewInstance): Promise<void> {
  const { plan, status, images } = run;
  const { quick } = run.acts;
  // The guardian first: the golden image takes minutes, and the service must not wait for it
  // unguarded. It replaces from the plan's image until it is told of the golden one.
  const guardFirst = vm.market === 'spot' && patched('guard-before-golden');
  if (guardFirst) {
    status.guardianWorkflowId = await startGuardian(run, vm, undefined);
    run.guarding = false;
    // A notice that came in between goes on to the guardian.
    if (run.notice) await getExternalWorkflowHandle(status.guardianWorkflowId).signal(interruptionSignal, run.notice);
  }
  // Made while the migration waited for approval, or now (runs that began before).
  const golden = await (run.golden ?? makeGolden(run, vm));
  if (golden) images.golden = golden;
  // Older golden images of the plan (earlier runs) are billed for their snapshots: keep the newest.
  if (images.golden && patched('prune-golden-images')) {
    try {
      const keep = plan.spot.keepGoldenImages ?? 3;
      const pruned = await quick.pruneGoldenImages({ plan: planRef(plan), keep, inUse: images.golden });
      if (pruned.deregistered.length) images.deregistered = pruned.deregistered;
    } catch (err) {
      run.warnings.push(
        `older golden images of ${plan.name} could not be cleaned up (migration cleanup --plan lists them): ${describeFailure(err)}`,
      );
    }
  }
  if (guardFirst) {
    if (images.golden)
      await getExternalWorkflowHandle(status.guardianWorkflowId as string).signal(goldenImageSignal, {
        imageId: images.golden,
      });
  } else if (vm.market === 'spot' || (plan.target.market === 'spot' && patched('guard-on-demand-fallback'))) {
    // A Spot plan that launched on-demand (no Spot capacity anywhere) is guarded too: its
    // guardian goes back to Spot every spot.revertAfter.
    status.guardianWorkflowId = await startGuardian(run, vm, images.golden);
    // Guarded by the migration from its launch: a notice that came in between goes on too.
    if (run.guarding) {
      run.guarding = false;
      if (run.notice) await getExternalWorkflowHandle(status.guardianWorkflowId).signal(interruptionSignal, run.notice);
    }
  }
}

/**
 * The golden image of the new instance, for fast replacements: undefined, with a warning, when
 * it cannot be made (and silently when the wait for it was cancelled: its instance was lost).
 */
export async function makeGolden(run: MigrationRun, vm: NewInstance): Promise<string | undefined> {
  const { plan, workflowId } = run;
  try {
    // The new instance keeps serving while its image is taken (NoReboot): what is in its page
    // cache goes to disk first, so the image holds what the app wrote.
    if (patched('sync-before-golden')) {
      await run.acts.remote.runRemote({
        region: plan.region,
        instanceId: vm.instanceId,
        label: 'sync before the golden image',
        commands: ['sync'],
        timeoutSeconds: 600,
      });
    }
    const golden = await run.acts.long.createImage({
      plan: planRef(plan),
      workflowId,
      step: 'golden',
      instanceId: vm.instanceId,
      stamp: run.startedAt.slice(0, 10),
    });
    return golden.imageId;
  } catch (err) {
    if (!isCancelled(err))
      run.warnings.push(`the golden image of ${vm.instanceId} could not be made: ${describeFailure(err)}`);
    return undefined;
  }
}

/**
 * Starts the Spot guardian as a child that outlives this run (ABANDON). If one already runs
 * for the plan (an earlier migration's), it was handed the new instance at the decision
 * (`handOverGuardian`), and what follows (a notice, the golden image) goes to that one.
 */
async function startGuardian(run: MigrationRun, vm: NewInstance, goldenImageId: string | undefined): Promise<string> {
  const { plan, workflowId: migrationWorkflowId } = run;
  const { instanceId, market } = vm;
  const id = guardianWorkflowId(plan.name);
  try {
    await startChild(spotGuardian, {
      workflowId: id,
      parentClosePolicy: ParentClosePolicy.ABANDON,
      // On the spot queue, so its recoveries never wait behind migration activities (runs that
      // began before start it on their own queue, which the workers poll too).
      ...(patched('spot-task-queue') ? { taskQueue: spotTaskQueue(workflowInfo().taskQueue) } : {}),
      args: [{ plan, instanceId, goldenImageId, migrationWorkflowId, market }],
      staticSummary: `guardian of ${plan.name}: ${instanceId} (${market ?? plan.target.market}), ${plan.region}`,
      staticDetails: `Keeps **${plan.name}** running behind the Elastic IP \`${plan.elasticIp.allocationId}\` in ${plan.region}: on a Spot notice it launches a replacement and moves the address. Started by \`${migrationWorkflowId}\`; the instance it guards now is in its current details and its \`GuardedInstance\` search attribute.`,
      // Listed by plan and by the instance it guards, where the namespace has the attributes.
      ...(run.indexed
        ? {
            typedSearchAttributes: [
              { key: PLAN_NAME, value: plan.name },
              { key: GUARDED_INSTANCE, value: instanceId },
            ],
          }
        : {}),
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    log.info('a guardian already runs for this plan: it guards the new instance', { guardianWorkflowId: id });
  }
  return id;
}
