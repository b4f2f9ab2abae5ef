/**
 * Where the next Spot instance goes after a notice: the pool of the instance a notice named (and
 * any other still within `spot.avoidInterruptedPoolFor`) left out, the rest in `spot.poolOrder`.
 * A guardian's replacement and a migration's relaunch both ask here. Workflow code only.
 */
import { log, patched } from '@temporalio/workflow';
import { durationMs } from '../plan/duration';
import type { Plan } from '../plan/schema';
import { describeFailure } from '../shared/failures';
import type { LaunchSpec } from '../shared/launch';
import { poolName, samePool, stillAvoided, type InterruptedPool, type PoolRanking } from '../shared/pools';
import type { GuardEvent } from '../shared/spot';
import { REPLACEMENT, summarized } from './options';

const advice = summarized(REPLACEMENT.advice, () => 'pool advice');

export interface PoolChoice {
  /** The launch's Spot choices, best first. */
  spotPools: LaunchSpec['spotPools'];
  /** What the round's (or relaunch's) record shows of the ranking. */
  event: Pick<GuardEvent, 'interruptedPool' | 'pools'>;
  prices?: PoolRanking['prices'];
}

/**
 * Ranks the Spot pools for the next launch. `avoided` is the caller's list of interrupted pools:
 * expired entries go, the pool of `interruptedInstanceId` comes in. Undefined (the plan's order,
 * nothing left out) for on-demand plans, in runs that began before, or when the ranking cannot
 * be had: a recovery never waits on advice.
 */
export async function rankedPools(
  plan: Plan,
  avoided: InterruptedPool[],
  /** The instance a notice named (its pool is left out); none on a return to Spot. */
  interruptedInstanceId: string | undefined,
  noticeAt: string,
): Promise<PoolChoice | undefined> {
  if (plan.target.market !== 'spot' || !patched('ranked-pools')) return undefined;
  const windowMs = durationMs(plan.spot.avoidInterruptedPoolFor ?? '3m');
  const order = plan.spot.poolOrder ?? 'placement-score';
  const current = stillAvoided(avoided, Date.now(), windowMs);
  avoided.splice(0, avoided.length, ...current);
  try {
    const { instanceType, fallbackInstanceTypes, subnetIds } = plan.target;
    const ranking = await advice.rankSpotPools({
      region: plan.region,
      target: { instanceType, fallbackInstanceTypes, subnetIds },
      order,
      avoid: avoided,
      ...(windowMs > 0 && interruptedInstanceId ? { interruptedInstanceId, noticeAt } : {}),
    });
    const hit = ranking.interruptedPool;
    if (hit && !avoided.some((p) => p.at === noticeAt && samePool(p, hit))) avoided.push({ ...hit, at: noticeAt });
    return {
      spotPools: ranking.pools.map(({ instanceType, subnetId }) => ({ instanceType, subnetId })),
      event: {
        ...(hit ? { interruptedPool: hit } : {}),
        pools: {
          order,
          tried: ranking.pools.map(poolName),
          skipped: ranking.skipped.map((s) => `${poolName(s.pool)} (${s.reason})`),
          sources: ranking.sources,
        },
      },
      prices: ranking.prices,
    };
  } catch (err) {
    log.warn('could not rank the Spot pools; trying them in the plan order', { error: describeFailure(err) });
    return undefined;
  }
}
