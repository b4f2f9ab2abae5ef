/**
 * A Spot migration guarded from its first second. The new instance carries the migration's
 * guard tag from its launch, so the region's router (joined before the launch) sends the
 * migration every notice for it: interruption, rebalance, or the poll finding it gone.
 *
 * - Before the Elastic IP switch, the migration launches again in another pool and goes on from
 *   the launch.
 * - After the switch and before a person approved, the Elastic IP goes back to the old instance
 *   first (it still runs), the golden image being made of the lost one is discarded, and approval
 *   is asked again once a new instance has passed every check.
 *
 * Workflow code only.
 */
import { ActivityFailure, CancellationScope, condition, log, patched } from '@temporalio/workflow';
import { durationMs } from '../../plan/duration';
import { TAG_GUARDED } from '../../shared/constants';
import { describeFailure, isCancelled } from '../../shared/failures';
import { isDead } from '../../shared/instance-states';
import type { LaunchSpec } from '../../shared/launch';
import type { Relaunch } from '../../shared/migration';
import { planRef } from '../../shared/plan-slices';
import { poolName } from '../../shared/pools';
import { joinSpotRouter } from '../router';
import { rankedPools } from '../spot-pools';
import { awaitApproval, makeGolden } from './cut-over';
import { failIfInterrupted } from './messages';
import {
  checkConnectivity,
  launch,
  openIngress,
  performanceTest,
  setUp,
  startServices,
  switchElasticIp,
  voiceTest,
} from './phases';
import type { MigrationRun, NewInstance } from './run';

/** New instances lost before the migration stands, relaunched; one more rolls the migration back. */
export const MAX_RELAUNCHES = 3;

/** What `untilNotice` returns when the new instance was lost meanwhile. */
const LOST = Symbol('lost');

/**
 * Launch through the person's decision, relaunching a lost Spot instance. Returns the instance
 * the migration stands on, and whether it was approved or the wait timed out; a rejection throws.
 */
export async function untilDecided(
  run: MigrationRun,
  imageId: string,
): Promise<{ vm: NewInstance; decision: 'approved' | 'timed-out' }> {
  const { plan } = run;
  const spot = plan.target.market === 'spot';
  // The router runs before the instance exists: its first notice has somewhere to go.
  if (spot) await joinSpotRouter(plan, run.workflowId);
  let spotPools: LaunchSpec['spotPools'];
  for (let n = 1; ; n++) {
    const vm = await launch(run, imageId, {
      step: n === 1 ? 'launch' : `launch-${n}`,
      ...(spotPools ? { spotPools } : {}),
      ...(spot ? { tags: { [TAG_GUARDED]: run.workflowId } } : {}),
    });
    const lost = run.status.relaunches?.at(-1);
    if (lost) lost.replacedBy = vm.instanceId;
    if (spot) run.guarding = true;
    // Security groups deny inbound traffic by default: the planned ingress is in place before
    // anything is checked from outside.
    if (n === 1) await openIngress(run);
    const built = await untilNotice(run, vm, async () => {
      await setUp(run, vm);
      await run.remoteStep('source', vm, plan.remote.deploy);
      await run.remoteStep('build', vm, plan.remote.build);
      await startServices(run, vm);
      await voiceTest(run, vm);
      await checkConnectivity(run, vm);
    });
    if (built === LOST) {
      spotPools = await relaunch(run, vm, false);
      continue;
    }
    const decided = await untilNotice(run, vm, async () => {
      const served = await switchElasticIp(run, vm);
      await performanceTest(run, served);
      goldenMeanwhile(run, vm);
      // A Spot instance lost meanwhile is the router's to notice; an on-demand one has a watch.
      return spot ? awaitApproval(run) : watched(run, vm, () => awaitApproval(run));
    });
    if (decided === LOST) {
      spotPools = await relaunch(run, vm, true);
      continue;
    }
    return { vm, decision: decided };
  }
}

/**
 * Runs `work` until it ends or the new instance gets a notice, which cancels it. A failure of
 * `work` while the instance turns out to be gone (no notice came: it died silently) counts as a
 * notice too. Unguarded (on-demand) runs just run `work`.
 */
async function untilNotice<T>(run: MigrationRun, vm: NewInstance, work: () => Promise<T>): Promise<T | typeof LOST> {
  if (!run.guarding) return work();
  const scope = new CancellationScope();
  let settled = false;
  const working = scope.run(work);
  working.then(
    () => (settled = true),
    () => (settled = true),
  );
  await condition(() => settled || run.notice !== undefined);
  if (run.notice) {
    if (!settled) scope.cancel();
    await working.catch(() => undefined);
    return LOST;
  }
  try {
    return await working;
  } catch (err) {
    if (await diedMeanwhile(run, vm, err)) return LOST;
    throw err;
  }
}

/** How often an on-demand instance is looked at during the wait, for plans made before approval.watchInterval. */
const WATCH_INTERVAL = '30s';

/**
 * Runs `work` (the wait for a person) while an activity watches the new on-demand instance: one
 * that stops running meanwhile becomes a notice, which ends the wait and rolls the run back, so
 * the Elastic IP goes back to the old instance at once instead of at the decision. The watch is
 * a safety net: when it fails, the wait goes on without it (stop-old still checks the instance).
 */
async function watched<T>(run: MigrationRun, vm: NewInstance, work: () => Promise<T>): Promise<T> {
  if (!patched('watch-during-approval')) return work();
  const { plan } = run;
  const scope = new CancellationScope();
  const watching = scope.run(() =>
    run.acts.watch.watchInstance.executeWithOptions(
      { startToCloseTimeout: durationMs(plan.approval.timeout) + 10 * 60_000 },
      [
        {
          region: plan.region,
          instanceId: vm.instanceId,
          everyMs: durationMs(plan.approval.watchInterval ?? WATCH_INTERVAL),
        },
      ],
    ),
  );
  let settled = false;
  watching.then(
    (lost) => {
      settled = true;
      log.warn('the new instance stopped running during the approval wait', { ...lost });
      run.notice ??= {
        instanceId: lost.instanceId,
        kind: 'stopped',
        source: 'watch',
        state: lost.state,
        at: new Date().toISOString(),
      };
    },
    (err: unknown) => {
      settled = true;
      if (isCancelled(err)) return;
      run.warnings.push(
        `the watch of ${vm.instanceId} during the approval wait failed, and the wait went on without it: ${describeFailure(err)}`,
      );
    },
  );
  try {
    return await work();
  } finally {
    // Only a watch still running is cancelled (one that ended with the loss needs nothing).
    if (!settled) scope.cancel();
  }
}

/** Whether a step failed because its instance is gone: then it is taken as a notice from the check. */
async function diedMeanwhile(run: MigrationRun, vm: NewInstance, err: unknown): Promise<boolean> {
  if (run.notice) return true;
  if (!(err instanceof ActivityFailure) || isCancelled(err)) return false;
  let state: string | undefined;
  try {
    state = (await run.acts.quick.getInstance({ region: run.plan.region, instanceId: vm.instanceId })).state;
  } catch {
    return false;
  }
  if (!isDead(state)) return false;
  run.notice = { instanceId: vm.instanceId, kind: 'stopped', at: new Date().toISOString(), source: 'check' };
  return true;
}

/** The golden image of `vm`, made while the person decides; its undo discards it. */
function goldenMeanwhile(run: MigrationRun, vm: NewInstance): void {
  const scope = new CancellationScope();
  const progress: NonNullable<MigrationRun['status']['golden']> = { instanceId: vm.instanceId, state: 'making' };
  run.status.golden = progress;
  const undo: NonNullable<MigrationRun['goldenUndo']> = {
    name: `discard the golden image of ${vm.instanceId}`,
    run: async () => {
      // Only an image still being made is cancelled: an activity that already ended is not.
      if (progress.state === 'making') scope.cancel();
      const discarded = await discardGolden(run, vm);
      progress.state = 'discarded';
      return discarded;
    },
  };
  run.undoable(undo);
  run.goldenUndo = undo;
  run.golden = scope.run(async () => {
    const imageId = await makeGolden(run, vm);
    if (progress.state === 'making')
      Object.assign(progress, imageId ? { state: 'made', imageId } : { state: 'failed' });
    return imageId;
  });
}

const discardGolden = (run: MigrationRun, vm: { instanceId: string }) =>
  run.acts.undoWaiting.discardImages({
    plan: planRef(run.plan),
    workflowId: run.workflowId,
    step: 'golden',
    sourceInstanceId: vm.instanceId,
  });

/**
 * After a notice for `vm`: the Elastic IP back on the old instance (after the switch), its golden
 * image discarded, `vm` terminated, the phases from the launch on to do again. Returns the Spot
 * pools for the next launch, the lost one left out. Past MAX_RELAUNCHES it fails the run, which
 * rolls back to the old instance.
 */
async function relaunch(run: MigrationRun, vm: NewInstance, afterSwitch: boolean): Promise<LaunchSpec['spotPools']> {
  const { plan, status } = run;
  const notice = run.notice ?? { instanceId: vm.instanceId, kind: 'stopped' as const };
  const relaunches = (status.relaunches ??= []);
  if (relaunches.length >= MAX_RELAUNCHES) {
    // The run fails for the notice, not for the step it cancelled.
    delete status.error;
    failIfInterrupted(run, `during ${status.phase}, after ${relaunches.length} relaunches`);
  }
  run.guarding = false;
  const record: Relaunch = {
    instanceId: vm.instanceId,
    kind: notice.kind,
    ...(notice.source ? { source: notice.source } : {}),
    noticeAt: notice.at ?? new Date().toISOString(),
    during: status.phase,
  };
  relaunches.push(record);
  log.warn('the new Spot instance was lost before the migration stood; launching again', { ...record });
  status.phase = 'relaunching';
  run.refreshDetails();
  if (afterSwitch) {
    await run.acts.undo.associateAddress({
      region: plan.region,
      allocationId: plan.elasticIp.allocationId,
      instanceId: plan.source.instanceId,
    });
    record.elasticIpBackAt = new Date().toISOString();
  }
  // Never waited for: it is being reclaimed, and the next launch need not wait either. The
  // launch's undo terminates it too, should the run roll back.
  void run.acts.undoWaiting
    .terminateInstance({ region: plan.region, instanceId: vm.instanceId })
    .catch((err) =>
      run.warnings.push(`the lost instance ${vm.instanceId} could not be terminated: ${describeFailure(err)}`),
    );
  const undo = run.goldenUndo;
  if (undo && status.golden?.instanceId === vm.instanceId) {
    run.golden = undefined;
    run.goldenUndo = undefined;
    const at = run.compensations.indexOf(undo);
    if (at >= 0) run.compensations.splice(at, 1);
    const discarded = await undo.run();
    if (discarded.deregistered.length) record.goldenDiscarded = discarded.deregistered;
  }
  const ranked = await rankedPools(plan, run.interruptedPools, vm.instanceId, record.noticeAt);
  const hit = ranked?.event.interruptedPool;
  record.pool = hit
    ? poolName(hit)
    : poolName({ instanceType: vm.instanceType, availabilityZone: vm.availabilityZone });
  startOver(run);
  return ranked?.spotPools;
}

/** The phases from the launch on are to run again: their records start afresh; so does the decision. */
function startOver(run: MigrationRun): void {
  const { status } = run;
  for (const rec of status.phases) {
    if (rec.name === 'preflight' || rec.name === 'stop-old') continue;
    if (rec.name === 'security-group' && rec.state === 'succeeded') continue;
    Object.assign(rec, { state: 'pending', attempts: 0, figures: {} });
    for (const key of ['startedAt', 'endedAt', 'durationMs', 'output', 'lastError'] as const) delete rec[key];
  }
  delete status.error;
  delete status.approval;
  run.decision = undefined;
  run.notice = undefined;
}
