/**
 * What a guardian keeps account of: each round in its ledger (hours by market, cost against
 * all-on-demand, interruptions by pool) and in the worker's metrics. Workflow code only.
 */
import { metricMeter } from '@temporalio/workflow';
import { countInterruption, switchTo, type LedgerBook } from '../../shared/ledger';
import { poolName } from '../../shared/pools';
import type { GuardEvent } from '../../shared/spot';
import type { Guarded } from './replace';

/** The guardians' metrics (workflow metrics: emitted once, never on replay). */
export const guardianMetrics = () => ({
  rounds: metricMeter.createCounter(
    'ec2_gpu_migration_guardian_rounds',
    'rounds',
    'Replacement rounds by kind (interruption, rebalance, stopped, manual, back-to-spot) and outcome',
  ),
  interruptions: metricMeter.createCounter(
    'ec2_gpu_migration_guardian_interruptions',
    'notices',
    'Notices for guarded instances, by pool (instance type @ zone)',
  ),
  recovery: metricMeter.createHistogram(
    'ec2_gpu_migration_guardian_recovery_seconds',
    'float',
    's',
    'From a notice to the Elastic IP on a checked replacement',
  ),
});

export type GuardianMetrics = ReturnType<typeof guardianMetrics>;

/** A round in the ledger and the metrics. */
export function account(
  book: LedgerBook,
  g: Pick<Guarded, 'prices'>,
  metrics: GuardianMetrics,
  event: GuardEvent,
): void {
  const current = book.current;
  const hit = event.interruptedPool;
  if (hit && current.instanceId === event.oldInstanceId) {
    // What the guardian had not known of the instance it guarded (the migration's): its pool and prices.
    current.instanceType ??= hit.instanceType;
    current.availabilityZone ??= hit.availabilityZone;
    if (current.pricePerHour === undefined) {
      const price =
        current.market === 'on-demand' ? g.prices?.onDemand[hit.instanceType] : g.prices?.spot[poolName(hit)];
      if (price !== undefined) current.pricePerHour = price;
    }
    if (current.onDemandPerHour === undefined && g.prices?.onDemand[hit.instanceType] !== undefined)
      current.onDemandPerHour = g.prices.onDemand[hit.instanceType];
  }
  if (hit && event.kind !== 'back-to-spot') {
    countInterruption(book, poolName(hit));
    metrics.interruptions.add(1, { pool: poolName(hit) });
  }
  metrics.rounds.add(1, { kind: event.kind, outcome: event.outcome });
  if (event.outcome !== 'replaced' || !event.newInstanceId || !event.eipMovedAt) return;
  if (event.recoveryMs !== undefined) metrics.recovery.record(event.recoveryMs / 1000, { kind: event.kind });
  const onDemandPerHour = event.instanceType ? g.prices?.onDemand[event.instanceType] : undefined;
  switchTo(book, {
    instanceId: event.newInstanceId,
    since: event.eipMovedAt,
    ...(event.market === 'spot' || event.market === 'on-demand' ? { market: event.market } : {}),
    ...(event.instanceType ? { instanceType: event.instanceType } : {}),
    ...(event.availabilityZone ? { availabilityZone: event.availabilityZone } : {}),
    ...(event.pricePerHour !== undefined ? { pricePerHour: event.pricePerHour } : {}),
    ...(onDemandPerHour !== undefined ? { onDemandPerHour } : {}),
  });
}
