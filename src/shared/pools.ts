/**
 * Spot pools: an instance type in an availability zone. A replacement chooses among the planned
 * types across the planned subnets, skips the pools that were just interrupted, and tries the
 * rest by Spot placement score, then by price (or by price alone, or in the plan's own order).
 * Pure: workflow code imports this file.
 */
import type { LaunchTargets } from './launch';

export type PoolOrder = 'placement-score' | 'price' | 'plan';

/** One place a Spot instance can be launched: a planned type in a planned subnet. */
export interface Pool {
  instanceType: string;
  subnetId: string;
  /** The subnet's zone (name), when known. */
  availabilityZone?: string;
}

/** A pool as ranked: with what it was ranked by. */
export interface RankedPool extends Pool {
  /** Spot placement score of the zone (1–10) for the planned types; undefined: not among the scored. */
  score?: number;
  /** Current Spot price, USD/h; undefined: none published for the pool. */
  pricePerHour?: number;
}

/** A pool that a notice said is short of capacity, and when. */
export interface InterruptedPool {
  instanceType: string;
  availabilityZone: string;
  at: string;
}

export interface PoolRanking {
  /** The Spot pools to try, best first: the launch's Spot choices, in this order. */
  pools: RankedPool[];
  /** Pools left out, with why (an interrupted pool, until when). */
  skipped: { pool: Pool; reason: string }[];
  /** What the ranking rested on; a source that could not be read says why, and the order falls back. */
  sources: { scores?: string; prices?: string };
  /** The pool of the instance a notice named, when the ranking was asked for it. */
  interruptedPool?: { instanceType: string; availabilityZone: string };
  /** Prices read for the ranking, USD/h: Spot by pool (`type@zone`, skipped pools too), on-demand by type. */
  prices?: { spot: Record<string, number>; onDemand: Record<string, number> };
}

export interface RankPoolsInput {
  region: string;
  target: Pick<LaunchTargets, 'instanceType' | 'fallbackInstanceTypes' | 'subnetIds'>;
  order: PoolOrder;
  /** Pools to leave out, still within their avoidance window. */
  avoid: InterruptedPool[];
  /** The instance a notice named: its pool is looked up, returned, and left out too. */
  interruptedInstanceId?: string;
  /** When that notice came (ISO). */
  noticeAt?: string;
}

/** Every planned pool, in the plan's order: types first, then subnets. */
export function plannedPools(
  target: RankPoolsInput['target'],
  zoneOf: (subnetId: string) => string | undefined,
): Pool[] {
  const types = [target.instanceType, ...target.fallbackInstanceTypes];
  return types.flatMap((instanceType) =>
    target.subnetIds.map((subnetId) => {
      const availabilityZone = zoneOf(subnetId);
      return { instanceType, subnetId, ...(availabilityZone ? { availabilityZone } : {}) };
    }),
  );
}

/** The interrupted pools still avoided at `nowMs` (a window of 0 avoids none). */
export function stillAvoided(pools: readonly InterruptedPool[], nowMs: number, windowMs: number): InterruptedPool[] {
  if (windowMs <= 0) return [];
  return pools.filter((p) => Date.parse(p.at) + windowMs > nowMs);
}

/** A pool's name: `g4dn.xlarge@us-east-2a`. */
export const poolName = (p: { instanceType: string; availabilityZone?: string; subnetId?: string }): string =>
  `${p.instanceType}@${p.availabilityZone ?? p.subnetId ?? '?'}`;

export const samePool = (
  a: { instanceType: string; availabilityZone?: string },
  b: { instanceType: string; availabilityZone?: string },
) => a.instanceType === b.instanceType && a.availabilityZone === b.availabilityZone;

/**
 * Orders `pools` and leaves out the avoided ones. `placement-score`: the zone's score, highest
 * first (a zone not scored counts as lowest), then the price, lowest first (no price: last),
 * then the plan's order. `price`: the price, then the plan's order. `plan`: the plan's order.
 */
export function rankPools(
  pools: readonly RankedPool[],
  order: PoolOrder,
  avoid: readonly InterruptedPool[],
): Pick<PoolRanking, 'pools' | 'skipped'> {
  const skipped: PoolRanking['skipped'] = [];
  const kept: { pool: RankedPool; index: number }[] = [];
  pools.forEach((pool, index) => {
    const hit = avoid.find((a) => samePool(pool, a));
    if (hit)
      skipped.push({
        pool: { instanceType: pool.instanceType, subnetId: pool.subnetId, availabilityZone: pool.availabilityZone },
        reason: `interrupted at ${hit.at}`,
      });
    else kept.push({ pool, index });
  });
  const byScore = (a: RankedPool, b: RankedPool) => (b.score ?? 0) - (a.score ?? 0);
  const byPrice = (a: RankedPool, b: RankedPool) =>
    (a.pricePerHour ?? Number.POSITIVE_INFINITY) - (b.pricePerHour ?? Number.POSITIVE_INFINITY) || 0;
  kept.sort((a, b) => {
    if (order === 'placement-score') {
      const s = byScore(a.pool, b.pool);
      if (s !== 0) return s;
    }
    if (order !== 'plan') {
      const p = byPrice(a.pool, b.pool);
      if (p !== 0) return p;
    }
    return a.index - b.index;
  });
  return { pools: kept.map((k) => k.pool), skipped };
}
