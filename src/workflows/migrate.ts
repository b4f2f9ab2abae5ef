/**
 * The migration of one service onto a GPU instance, phase by phase, each undo registered beside
 * its step. The bookkeeping (status, messages, phase runner, report) is in `./migrate/`.
 * Workflow code only.
 */
import { patched } from '@temporalio/workflow';
import type { MigrationInput } from '../shared/migration';
import type { MigrationReport } from '../shared/report';
import { afterCutOver, awaitApproval, handOverGuardian, stopOld } from './migrate/cut-over';
import { setApprovalHandlers, setNoticeHandler } from './migrate/messages';
import {
  checkConnectivity,
  launch,
  openIngress,
  performanceTest,
  preflight,
  setUp,
  startServices,
  switchElasticIp,
  voiceTest,
} from './migrate/phases';
import { buildReport } from './migrate/report';
import { rollBack } from './migrate/rollback';
import { untilDecided } from './migrate/guarded';
import { MigrationRun } from './migrate/run';
import { checkPlan, rethrowBug } from './input';

export async function migrateToGpu(input: MigrationInput): Promise<MigrationReport> {
  // Started by other means than the CLI, a bad plan fails the run at once (runs that began before trusted it).
  if (patched('validate-input')) checkPlan(input?.plan);
  const run = new MigrationRun(input);
  const { plan } = run;
  setApprovalHandlers(run);
  setNoticeHandler(run);
  try {
    const imageId = await preflight(run);
    const { vm, decision } = patched('guard-from-launch')
      ? await untilDecided(run, imageId) // a lost Spot instance: launch again
      : await decidedUnguarded(run, imageId);
    await handOverGuardian(run, vm); // a guardian of the plan that already runs guards vm from now on
    if (decision === 'approved') await stopOld(run, vm); // vm still serves? undo: start the old instance again
    run.stand();
    await afterCutOver(run, vm); // on Spot, the guardian; the golden image
    if (decision === 'timed-out')
      run.warnings.push(
        `approval timed out after ${plan.approval.timeout}: the old instance ${plan.source.instanceId} still runs and the Elastic IP is on ${vm.instanceId}; stop the old instance by hand once satisfied`,
      );
    run.afterInstance = await run.acts.quick.getInstance({ region: plan.region, instanceId: vm.instanceId });
    run.status.phase = 'completed';
  } catch (err) {
    // A bug fails the workflow task, retried until a fixed worker takes it: a good cut-over
    // is never rolled back for it.
    rethrowBug(err, `phase ${run.status.phase}`);
    throw await rollBack(run, err);
  }
  run.refreshDetails();
  const report = await buildReport(run);
  run.notifier.send({
    kind: 'completed',
    outcome: run.outcome,
    ...(run.afterInstance ? { instanceId: run.afterInstance.instanceId } : {}),
    warnings: run.warnings,
  });
  await run.notifier.settle();
  return report;
}

/** Runs that began before the guard from the launch: a notice after the switch rolls back. */
async function decidedUnguarded(run: MigrationRun, imageId: string) {
  const { plan } = run;
  const vm = await launch(run, imageId); // undo: terminate it
  // Security groups deny inbound traffic by default: the planned ingress is in place before
  // anything is checked from outside (runs that began before this order keep theirs).
  const ingressFirst = patched('ingress-before-public-checks');
  if (ingressFirst) await openIngress(run); // undo: the security-group changes
  await setUp(run, vm);
  await run.remoteStep('source', vm, plan.remote.deploy);
  await run.remoteStep('build', vm, plan.remote.build);
  await startServices(run, vm);
  await voiceTest(run, vm);
  if (!ingressFirst) await openIngress(run);
  await checkConnectivity(run, vm);
  const served = await switchElasticIp(run, vm); // undo: move it back; on Spot, guard it
  await performanceTest(run, served);
  const decision = await awaitApproval(run); // rejected, or a Spot notice: roll back
  return { vm, decision };
}
