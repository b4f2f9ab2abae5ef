/**
 * Ranks a replacement's Spot pools (a planned type in a planned subnet's zone): the zone's Spot
 * placement score for the planned types, then the current Spot price. Scores and prices are
 * advice: when one cannot be read the ranking says why and orders by what it has.
 */
import {
  DescribeSpotPriceHistoryCommand,
  DescribeSubnetsCommand,
  GetSpotPlacementScoresCommand,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { log } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import { describeInstance } from '../aws/ec2';
import { describeFailure } from '../shared/failures';
import {
  plannedPools,
  poolName,
  rankPools,
  type PoolRanking,
  type RankPoolsInput,
  type RankedPool,
} from '../shared/pools';
import { newestSpotPrices, onDemandPrice } from './pricing';

export function createPoolActivities(clients: AwsClients) {
  async function rankSpotPools(input: RankPoolsInput): Promise<PoolRanking> {
    const ec2 = clients.ec2(input.region);
    const subnets = await aws('describe the planned subnets', () =>
      ec2.send(new DescribeSubnetsCommand({ SubnetIds: input.target.subnetIds })),
    );
    const zoneOf = new Map<string, { name?: string; id?: string }>();
    for (const s of subnets.Subnets ?? [])
      if (s.SubnetId) zoneOf.set(s.SubnetId, { name: s.AvailabilityZone, id: s.AvailabilityZoneId });
    const pools: RankedPool[] = plannedPools(input.target, (id) => zoneOf.get(id)?.name);
    const types = [...new Set(pools.map((p) => p.instanceType))];
    const sources: PoolRanking['sources'] = {};

    let interruptedPool: PoolRanking['interruptedPool'];
    if (input.interruptedInstanceId) {
      try {
        const i = await describeInstance(ec2, input.interruptedInstanceId);
        if (i.InstanceType && i.Placement?.AvailabilityZone)
          interruptedPool = { instanceType: i.InstanceType, availabilityZone: i.Placement.AvailabilityZone };
      } catch (err) {
        // Gone already (terminated long ago): nothing to leave out for it.
        log.warn('could not read the pool of the interrupted instance', { error: describeFailure(err) });
      }
    }
    const avoid = [...input.avoid];
    if (interruptedPool) avoid.push({ ...interruptedPool, at: input.noticeAt ?? new Date().toISOString() });

    if (input.order === 'placement-score') {
      try {
        // One request for the planned types together, scored per zone: EC2 advises three types or
        // more, and gives one or two a low score whatever the zone.
        const scored = await aws('read Spot placement scores', () =>
          ec2.send(
            new GetSpotPlacementScoresCommand({
              InstanceTypes: types,
              TargetCapacity: 1,
              SingleAvailabilityZone: true,
              RegionNames: [input.region],
              MaxResults: 10,
            }),
          ),
        );
        const byZoneId = new Map<string, number>();
        for (const s of scored.SpotPlacementScores ?? [])
          if (s.AvailabilityZoneId && s.Score !== undefined) byZoneId.set(s.AvailabilityZoneId, s.Score);
        for (const pool of pools) {
          const zoneId = zoneOf.get(pool.subnetId)?.id;
          const score = zoneId ? byZoneId.get(zoneId) : undefined;
          if (score !== undefined) pool.score = score;
        }
        sources.scores = 'GetSpotPlacementScores';
      } catch (err) {
        sources.scores = `not read: ${describeFailure(err)}`;
        log.warn('Spot placement scores could not be read; ordering by price', { error: sources.scores });
      }
    }
    // Read for every order: the ledger prices what runs (the `plan` order does not use them).
    try {
      const history = await aws('read Spot prices of the planned types', () =>
        ec2.send(
          new DescribeSpotPriceHistoryCommand({
            InstanceTypes: types as _InstanceType[],
            ProductDescriptions: ['Linux/UNIX'],
            StartTime: new Date(),
            MaxResults: 1000,
          }),
        ),
      );
      const latest = newestSpotPrices(history.SpotPriceHistory);
      for (const pool of pools) {
        const price = latest.get(poolName(pool))?.price;
        if (price !== undefined && Number.isFinite(price)) pool.pricePerHour = price;
      }
      sources.prices = 'DescribeSpotPriceHistory';
    } catch (err) {
      sources.prices = `not read: ${describeFailure(err)}`;
      log.warn('Spot prices could not be read', { error: sources.prices });
    }
    const prices: NonNullable<PoolRanking['prices']> = { spot: {}, onDemand: {} };
    for (const pool of pools) if (pool.pricePerHour !== undefined) prices.spot[poolName(pool)] = pool.pricePerHour;
    for (const t of types) {
      const od = onDemandPrice(input.region, t).value;
      if (typeof od === 'number') prices.onDemand[t] = od;
    }
    return {
      ...rankPools(pools, input.order, avoid),
      sources,
      prices,
      ...(interruptedPool ? { interruptedPool } : {}),
    };
  }
  return { rankSpotPools };
}
