/**
 * One replacement round of a guardian: launch from the golden image (or the plan's, running
 * every remote step), check, move the Elastic IP, verify from outside, terminate the old
 * instance. Workflow code only.
 */
import { ApplicationFailure, log, patched, sleep } from '@temporalio/workflow';
import { durationMs } from '../../plan/duration';
import type { Plan } from '../../plan/schema';
import { checkHost } from '../../shared/check-host';
import { checksSpec } from '../../shared/checks';
import { TAG_GUARDED } from '../../shared/constants';
import { describeFailure } from '../../shared/failures';
import { launchSpec } from '../../shared/launch';
import { poolName, type PoolRanking } from '../../shared/pools';
import { imagePlan } from '../../shared/plan-slices';
import type { GuardEvent, GuardianCarried, InterruptionNotice, RoundKind } from '../../shared/spot';
import type { LaunchResult, LaunchSpec } from '../../shared/launch';
import { checksOptions, REPLACEMENT, summarized } from '../options';
import { rankedPools } from '../spot-pools';
import { rethrowBug } from '../input';

const quick = summarized(REPLACEMENT.quick, () => 'replacement');
const long = summarized(REPLACEMENT.long, () => 'replacement');
const remote = summarized(REPLACEMENT.remote, () => 'replacement');
/** A return to Spot launches once: no capacity now means the next try, spot.revertAfter later. */
const longOnce = summarized(
  {
    ...REPLACEMENT.long,
    retry: { ...REPLACEMENT.long.retry, maximumAttempts: 1 },
  },
  () => 'replacement',
);

/** Tries of one replacement before the guardian waits for the next notice or poll. */
export const REPLACEMENT_TRIES = 3;

/** What a round reads and changes of its guardian. */
export interface Guarded {
  readonly plan: Plan;
  readonly guardianId: string;
  readonly firstRunId: string;
  readonly carried: GuardianCarried;
  /** The instance guarded: the round sets it to the replacement once the Elastic IP is on it. */
  instanceId: string;
  goldenImageId?: string;
  /** The prices the last ranking read (for the ledger). */
  prices?: PoolRanking['prices'];
}

/** What starts a round: a notice for the guarded instance, or the return to Spot from on-demand. */
export type RoundTrigger = Pick<InterruptionNotice, 'at' | 'source'> & { kind: RoundKind };

/** Where a launch goes and under which step; `once`: no retry of the launch activity. */
export interface LaunchPlace {
  spotPools?: LaunchSpec['spotPools'];
  onDemandFallback?: boolean;
  once?: boolean;
  runId?: string;
  step: string;
}

/** The timeline fields `bringUp` fills. */
export type BringUpTimeline = Pick<
  GuardEvent,
  | 'newInstanceId'
  | 'instanceType'
  | 'market'
  | 'availabilityZone'
  | 'launchedAt'
  | 'runningAt'
  | 'pricePerHour'
  | 'agentOnlineAt'
  | 'startedAt'
  | 'synthesisSeconds'
  | 'healthyAt'
>;

/**
 * Launches an instance for the guardian (tagged as guarded by it) from the golden image, or the
 * plan's image with every remote step, and makes it ready: what the migration's phases 5-8
 * proved, every service answering and a voice clone within the plan's limit. `onLaunched` hears
 * the instance id as soon as it runs. Fills `timeline` as it goes; throws when it is not ready.
 */
export async function bringUp(
  g: Guarded,
  place: LaunchPlace,
  timeline: BringUpTimeline,
  onLaunched: (instanceId: string) => void = () => undefined,
): Promise<{ launched: LaunchResult; host: string }> {
  const { plan, guardianId } = g;
  const checks = summarized(checksOptions(plan.checks, '5 minutes'), () => 'replacement');
  const launched = await (place.once ? longOnce : long).launchInstance({
    spec: {
      ...launchSpec(plan),
      ...(place.spotPools ? { spotPools: place.spotPools } : {}),
      ...(place.onDemandFallback === false ? { onDemandFallback: false } : {}),
    },
    workflowId: guardianId,
    runId: place.runId,
    step: place.step,
    imageId: g.goldenImageId ?? (await quick.resolveImage({ plan: imagePlan(plan) })),
    tags: { [TAG_GUARDED]: guardianId },
  });
  onLaunched(launched.instanceId);
  const runningAt = new Date().toISOString();
  const pool = poolName({ instanceType: launched.instanceType, availabilityZone: launched.availabilityZone });
  const pricePerHour = launched.market === 'spot' ? g.prices?.spot[pool] : g.prices?.onDemand[launched.instanceType];
  Object.assign(timeline, {
    newInstanceId: launched.instanceId,
    instanceType: launched.instanceType,
    market: launched.market,
    ...(launched.availabilityZone ? { availabilityZone: launched.availabilityZone } : {}),
    launchedAt: launched.launchTime ?? runningAt,
    runningAt,
    ...(pricePerHour !== undefined ? { pricePerHour } : {}),
  });
  const host = checkHost(plan.checks, launched.publicIp);
  if (!host)
    throw ApplicationFailure.nonRetryable(
      `replacement ${launched.instanceId} has no public address`,
      'NoPublicAddress',
    );
  // Without a golden image the replacement is a bare image: every remote step runs.
  const steps: [string, string[]][] = g.goldenImageId
    ? [['start', plan.remote.start]]
    : [
        ['setup', plan.remote.setup],
        ['source', plan.remote.deploy],
        ['build', plan.remote.build],
        ['start', plan.remote.start],
      ];
  for (const [label, commands] of steps) {
    if (!commands.length) continue;
    const ran = await remote.runRemote({
      region: plan.region,
      instanceId: launched.instanceId,
      label,
      commands,
      timeoutSeconds: 3600,
    });
    timeline.agentOnlineAt ??= ran.agentOnlineAt;
  }
  timeline.startedAt = new Date().toISOString();
  await checks.checkServices({ spec: checksSpec(plan), instanceId: launched.instanceId, host, scope: 'all' });
  // Ready means what the migration's phases 5-8 proved: every service answers, and a voice
  // clone comes back within the plan's limit (a GPU that is not used still answers health checks).
  if (plan.checks.voiceClone && patched('replacement-voice-check')) {
    const synthesis = await checks.voiceCloneTest({ spec: checksSpec(plan), host });
    timeline.synthesisSeconds = synthesis.seconds;
  }
  timeline.healthyAt = new Date().toISOString();
  return { launched, host };
}

/**
 * The switch to a ready instance: the Elastic IP moves to it (it is guarded from then on), it is
 * checked from outside, and the instance it replaces (`event.oldInstanceId`) is terminated.
 * Throws only when the check from outside fails, after the move.
 */
export async function cutOver(g: Guarded, instanceId: string, event: GuardEvent): Promise<void> {
  const { plan } = g;
  const checks = summarized(checksOptions(plan.checks, '5 minutes'), () => 'replacement');
  const moved = await quick.associateAddress({
    region: plan.region,
    allocationId: plan.elasticIp.allocationId,
    instanceId,
  });
  event.eipMovedAt = new Date().toISOString();
  g.instanceId = instanceId;
  g.carried.replacements++;
  await checks.checkServices({
    spec: checksSpec(plan),
    instanceId,
    host: checkHost(plan.checks, moved.publicIp),
    scope: 'public',
  });
  event.recoveryMs = Date.parse(event.eipMovedAt) - Date.parse(event.noticeAt);
  try {
    await long.terminateInstance({ region: plan.region, instanceId: event.oldInstanceId });
    event.oldTerminatedAt = new Date().toISOString();
  } catch (err) {
    log.warn('could not terminate the old instance', {
      oldInstanceId: event.oldInstanceId,
      error: describeFailure(err),
    });
  }
  event.outcome = 'replaced';
}

/**
 * One round. `backToSpot`: the guarded instance runs on-demand and is healthy; the round
 * launches on Spot only (no on-demand fallback), once, and leaves everything as it was if that
 * fails.
 */
export async function replace(
  g: Guarded,
  notice: RoundTrigger,
  options: { backToSpot?: boolean } = {},
): Promise<GuardEvent> {
  const { plan, guardianId, carried } = g;
  const noticeAt = notice.at ?? new Date().toISOString();
  const oldInstanceId = g.instanceId;
  carried.interruptedPools ??= [];
  const ranked = await rankedPools(
    plan,
    carried.interruptedPools,
    options.backToSpot ? undefined : oldInstanceId,
    noticeAt,
  );
  if (ranked?.prices) g.prices = ranked.prices;
  const tries = options.backToSpot ? 1 : REPLACEMENT_TRIES;
  /** What every try's event starts from, and the round's event when every try failed. */
  const unreplaced: GuardEvent = {
    kind: notice.kind,
    source: notice.source,
    oldInstanceId,
    noticeAt,
    outcome: 'failed',
    ...ranked?.event,
  };
  let lastError = '';
  for (let attempt = 1; attempt <= tries; attempt++) {
    // A step of its own for every launch, failed rounds included, in this chain of runs only: a
    // failed try's ClientTokens would only replay its terminated instances (EC2 keeps them for
    // 24 hours or more). Runs that began before keep their step names.
    const perLaunch = patched('launch-per-run');
    if (perLaunch) carried.launches = (carried.launches ?? carried.replacements) + 1;
    const step = perLaunch ? `replace-${carried.launches}` : `replace-${carried.replacements + 1}-try-${attempt}`;
    const runId = perLaunch ? g.firstRunId : undefined;
    const event: GuardEvent = { ...unreplaced };
    try {
      const { launched } = await bringUp(
        g,
        {
          spotPools: ranked?.spotPools,
          ...(options.backToSpot ? { onDemandFallback: false } : {}),
          once: options.backToSpot === true,
          runId,
          step,
        },
        event,
      );
      await cutOver(g, launched.instanceId, event);
      return event;
    } catch (err) {
      // A bug is not a failed replacement: the task fails until fixed code takes it.
      rethrowBug(err, 'replacement');
      lastError = describeFailure(err);
      log.error('replacement failed', { attempt, error: lastError });
      // Never leave a half-made replacement running; the EIP stays where it is (moved only
      // once a replacement is healthy).
      if (g.instanceId === oldInstanceId)
        await quick
          .terminateLaunched({ region: plan.region, workflowId: guardianId, runId, step })
          .catch(() => undefined);
      else return { ...event, outcome: 'replaced', error: `verification after the move failed: ${lastError}` };
      if (attempt < tries) await sleep(durationMs(plan.checks.interval));
    }
  }
  return { ...unreplaced, error: lastError };
}
