/**
 * The warm spare of a guardian (`spot.standby: warm`): a second instance from the golden image,
 * in another Spot pool, started and fully checked every `spot.standbyCheckInterval`. On a notice
 * for the serving instance the Elastic IP moves to it after a quick check, with no boot on the
 * way. Workflow code only.
 */
import { ApplicationFailure, CancellationScope, isCancellation, log, metricMeter } from '@temporalio/workflow';
import { checksSpec } from '../../shared/checks';
import { describeFailure } from '../../shared/failures';
import { closeSpare, openSpare, type LedgerBook } from '../../shared/ledger';
import type { GuardEvent, Spare, SpareEvent } from '../../shared/spot';
import { checksOptions, REPLACEMENT, summarized } from '../options';
import { rankedPools } from '../spot-pools';
import { bringUp, cutOver, type BringUpTimeline, type Guarded, type RoundTrigger } from './replace';
import { rethrowBug } from '../input';

const quick = summarized(REPLACEMENT.quick, () => 'warm spare');
const long = summarized(REPLACEMENT.long, () => 'warm spare');

/** Spare events kept in the status. */
const KEEP_SPARE_EVENTS = 20;

/** What became of spares, as a metric (workflow metrics: emitted once, never on replay). */
const spareCounter = () =>
  metricMeter.createCounter(
    'ec2_gpu_migration_guardian_spare_events',
    'events',
    'Warm spare events by kind: ready, checked, check failed, launch failed, lost, promoted, stopped',
  );

export function noteSpare(g: Guarded, what: SpareEvent['what'], instanceId?: string, error?: string): void {
  spareCounter().add(1, { what });
  const events = (g.carried.spareEvents ??= []);
  events.push({
    at: new Date().toISOString(),
    what,
    ...(instanceId ? { instanceId } : {}),
    ...(error ? { error } : {}),
  });
  if (events.length > KEEP_SPARE_EVENTS) events.splice(0, events.length - KEEP_SPARE_EVENTS);
  if (what === 'ready' || what === 'checked' || what === 'promoted') log.info(`spare ${what}`, { instanceId });
  else log.warn(`spare ${what}`, { instanceId, error });
}

/**
 * Launches a spare and makes it ready (remote.start, every service, the voice clone). Spot only,
 * in a pool other than the serving instance's when the plan has another. `lost(id)` says whether
 * a notice named the instance while it was being made: it is then terminated, not kept. A spare
 * that fails is terminated and the next is tried `retryMs` later.
 */
export async function launchSpare(
  g: Guarded,
  book: LedgerBook,
  retryMs: number,
  hooks: { onLaunched: (instanceId: string) => void; lost: (instanceId: string) => boolean },
): Promise<void> {
  const { plan, carried } = g;
  const n = (carried.spareLaunches ?? 0) + 1;
  carried.spareLaunches = n;
  const step = `spare-${n}`;
  const now = new Date().toISOString();
  // The serving instance's pool is left out (a copy of the avoided pools: a spare is no notice);
  // with no other pool planned, the spare shares it.
  let ranked = await rankedPools(plan, [...(carried.interruptedPools ?? [])], g.instanceId, now);
  if (ranked && ranked.spotPools?.length === 0)
    ranked = await rankedPools(plan, [...(carried.interruptedPools ?? [])], undefined, now);
  if (ranked?.prices) g.prices = ranked.prices;
  const timeline: BringUpTimeline = {};
  try {
    const { launched, host } = await bringUp(
      g,
      { spotPools: ranked?.spotPools, onDemandFallback: false, runId: g.firstRunId, step },
      timeline,
      hooks.onLaunched,
    );
    if (hooks.lost(launched.instanceId))
      throw ApplicationFailure.create({
        type: 'SpareLost',
        nonRetryable: true,
        message: `a notice came for ${launched.instanceId} while it started`,
      });
    const spare: Spare = {
      instanceId: launched.instanceId,
      instanceType: launched.instanceType,
      ...(launched.availabilityZone ? { availabilityZone: launched.availabilityZone } : {}),
      market: launched.market,
      host,
      launchedAt: timeline.launchedAt ?? now,
      checkedAt: timeline.healthyAt ?? new Date().toISOString(),
      ...(timeline.pricePerHour !== undefined ? { pricePerHour: timeline.pricePerHour } : {}),
      ...(timeline.synthesisSeconds !== undefined ? { synthesisSeconds: timeline.synthesisSeconds } : {}),
    };
    carried.spare = spare;
    carried.nextSpareAt = undefined;
    const onDemandPerHour = g.prices?.onDemand[spare.instanceType];
    openSpare(book, {
      instanceId: spare.instanceId,
      market: spare.market,
      instanceType: spare.instanceType,
      ...(spare.availabilityZone ? { availabilityZone: spare.availabilityZone } : {}),
      since: spare.launchedAt,
      ...(spare.pricePerHour !== undefined ? { pricePerHour: spare.pricePerHour } : {}),
      ...(onDemandPerHour !== undefined ? { onDemandPerHour } : {}),
    });
    noteSpare(g, 'ready', spare.instanceId);
  } catch (err) {
    rethrowBug(err, 'spare launch');
    await quick
      .terminateLaunched({ region: plan.region, workflowId: g.guardianId, runId: g.firstRunId, step })
      .catch(() => undefined);
    const lost = timeline.newInstanceId !== undefined && hooks.lost(timeline.newInstanceId);
    // A spare lost to a notice is made again at once; one that failed, after a pause.
    carried.nextSpareAt = new Date(Date.now() + (lost ? 0 : retryMs)).toISOString();
    noteSpare(g, lost ? 'lost' : 'launch failed', timeline.newInstanceId, describeFailure(err));
  }
}

/** The full check of the spare: every service and the voice clone. One that fails is dropped. */
export async function checkSpare(g: Guarded, book: LedgerBook): Promise<void> {
  const spare = g.carried.spare;
  if (!spare) return;
  const checks = summarized(checksOptions(g.plan.checks, '5 minutes'), () => 'warm spare');
  const spec = checksSpec(g.plan);
  try {
    await checks.checkServices({ spec, instanceId: spare.instanceId, host: spare.host, scope: 'all' });
    if (g.plan.checks.voiceClone)
      spare.synthesisSeconds = (await checks.voiceCloneTest({ spec, host: spare.host })).seconds;
    spare.checkedAt = new Date().toISOString();
    noteSpare(g, 'checked', spare.instanceId);
  } catch (err) {
    if (isCancellation(err)) throw err;
    rethrowBug(err, 'spare check');
    await dropSpare(g, book, 'check failed', describeFailure(err));
  }
}

/** The spare goes (terminated): it failed, a notice named it, or the guardian stops. */
export async function dropSpare(g: Guarded, book: LedgerBook, why: SpareEvent['what'], error?: string): Promise<void> {
  const spare = g.carried.spare;
  if (!spare) return;
  g.carried.spare = undefined;
  closeSpare(book, Date.now());
  noteSpare(g, why, spare.instanceId, error);
  // Even when the work that dropped it is cancelled: a spare nobody tracks would run unseen.
  await CancellationScope.nonCancellable(() =>
    long
      .terminateInstance({ region: g.plan.region, instanceId: spare.instanceId })
      .catch((err: unknown) =>
        log.warn('could not terminate the spare', { instanceId: spare.instanceId, error: describeFailure(err) }),
      ),
  );
}

/**
 * A notice for the serving instance, answered with the spare: a quick check of its public
 * services from outside (one try), then the Elastic IP moves to it, it is checked from outside, and the old instance
 * is terminated. Undefined when the spare fails its quick check: it is dropped, and the caller
 * replaces the way it does without a spare.
 */
export async function promoteSpare(
  g: Guarded,
  book: LedgerBook,
  trigger: RoundTrigger,
): Promise<GuardEvent | undefined> {
  const spare = g.carried.spare;
  if (!spare) return undefined;
  const noticeAt = trigger.at ?? new Date().toISOString();
  const event: GuardEvent = {
    kind: trigger.kind,
    source: trigger.source,
    oldInstanceId: g.instanceId,
    noticeAt,
    outcome: 'failed',
    viaSpare: true,
    newInstanceId: spare.instanceId,
    instanceType: spare.instanceType,
    market: spare.market,
    ...(spare.availabilityZone ? { availabilityZone: spare.availabilityZone } : {}),
    launchedAt: spare.launchedAt,
    ...(spare.pricePerHour !== undefined ? { pricePerHour: spare.pricePerHour } : {}),
    ...(spare.synthesisSeconds !== undefined ? { synthesisSeconds: spare.synthesisSeconds } : {}),
  };
  const once = summarized(checksOptions({ ...g.plan.checks, attempts: 1 }, '1 minute'), () => 'warm spare');
  try {
    // From outside only, one try: the private services passed the last full check, and their
    // check (Run Command) costs seconds.
    await once.checkServices({
      spec: checksSpec(g.plan),
      instanceId: spare.instanceId,
      host: spare.host,
      scope: 'public',
    });
  } catch (err) {
    rethrowBug(err, 'spare quick check');
    await dropSpare(g, book, 'check failed', `quick check before the switch: ${describeFailure(err)}`);
    return undefined;
  }
  event.healthyAt = new Date().toISOString();
  // From here it serves: its hours as a spare end when the address moves.
  g.carried.spare = undefined;
  try {
    await cutOver(g, spare.instanceId, event);
  } catch (err) {
    rethrowBug(err, 'switch to the spare');
    if (g.instanceId !== spare.instanceId) {
      // The address did not move: the spare stays the spare, and the caller replaces as without one.
      g.carried.spare = spare;
      log.warn('could not move the Elastic IP to the spare', { error: describeFailure(err) });
      return undefined;
    }
    event.outcome = 'replaced';
    event.error = `verification after the move failed: ${describeFailure(err)}`;
  }
  closeSpare(book, Date.parse(event.eipMovedAt ?? new Date().toISOString()));
  noteSpare(g, 'promoted', spare.instanceId);
  // After the switch, off its path: the pool the notice named, for the ledger and for where the
  // next spare goes (left out for spot.avoidInterruptedPoolFor, as after a launched replacement).
  const ranked = await rankedPools(g.plan, (g.carried.interruptedPools ??= []), event.oldInstanceId, noticeAt);
  if (ranked?.event.interruptedPool) event.interruptedPool = ranked.event.interruptedPool;
  if (ranked?.prices) g.prices = ranked.prices;
  return event;
}
