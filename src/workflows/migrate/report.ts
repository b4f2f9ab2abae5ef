/**
 * The migration report: before and after, every phase with its figures, cost, security group,
 * approval, images, undo steps and warnings. Built on success and on failure alike. Workflow
 * code only.
 */
import { describeFailure } from '../../shared/failures';
import type { Figure } from '../../shared/migration';
import type { CostRow, MigrationReport } from '../../shared/report';
import type { MigrationRun } from './run';

export async function buildReport(run: MigrationRun): Promise<MigrationReport> {
  const { plan, preflight, newInstance, ingress, status } = run;
  const types = preflight?.instanceTypes ?? [];
  const factsOf = (t?: string) => pickFacts(types.find((x) => x.instanceType === t));
  const cost = await costRows(run);
  const src = preflight?.source;
  const ingressRules = ingress?.final.map((r) => ({
    protocol: r.protocol,
    fromPort: r.fromPort,
    toPort: r.toPort,
    cidr: r.cidr,
    note: ingress?.added.some((a) => a.fromPort === r.fromPort && a.cidr === r.cidr)
      ? 'added for the plan'
      : 'was there before',
  }));
  const { latency, synthesisSeconds } = run;
  return {
    planName: plan.name,
    workflowId: run.workflowId,
    region: plan.region,
    outcome: run.outcome,
    startedAt: run.startedAt,
    endedAt: new Date().toISOString(),
    before: {
      instanceId: plan.source.instanceId,
      instanceType: src?.instanceType,
      market: src?.market,
      publicIp: preflight?.address.publicIp,
      availabilityZone: src?.availabilityZone,
      ...factsOf(src?.instanceType),
    },
    after: newInstance
      ? {
          instanceId: newInstance.instanceId,
          instanceType: newInstance.instanceType,
          market: newInstance.market,
          publicIp: run.afterInstance?.publicIp ?? newInstance.publicIp,
          availabilityZone: newInstance.availabilityZone,
          ...factsOf(newInstance.instanceType),
        }
      : {},
    elasticIp: status.elasticIp,
    phases: status.phases,
    latency,
    latencyLimits: plan.checks.latency
      ? {
          averageMs: { value: plan.checks.latency.maxAverageMs, unit: 'ms', source: 'configured' },
          ...(plan.checks.latency.maxP95Ms !== undefined
            ? { p95Ms: { value: plan.checks.latency.maxP95Ms, unit: 'ms', source: 'configured' } }
            : {}),
        }
      : undefined,
    synthesis:
      synthesisSeconds !== undefined && plan.checks.voiceClone
        ? {
            seconds: { value: synthesisSeconds, unit: 's', source: 'measured' },
            limit: { value: plan.checks.voiceClone.maxSeconds, unit: 's', source: 'configured' },
          }
        : undefined,
    gpu: run.gpu,
    securityGroup: ingress && ingressRules ? { groupId: ingress.groupId, rules: ingressRules } : undefined,
    cost: { rows: cost.rows, priceTableDate: cost.priceTableDate, hoursPerMonth: cost.hoursPerMonth },
    approval: status.approval,
    images: run.images,
    compensations: status.compensations,
    warnings: run.warnings,
    error: status.error,
    guardianWorkflowId: status.guardianWorkflowId,
    ...(status.relaunches?.length ? { relaunches: status.relaunches } : {}),
  };
}

/** What the report says of a month when the prices activity did not (results of workers from before). */
const HOURS_PER_MONTH = 730;

/**
 * Before (the old type, on-demand) and after (the new type, on-demand and Spot), per hour and
 * month, as the prices activity gives them (with its table's date and month).
 */
async function costRows(
  run: MigrationRun,
): Promise<{ rows: CostRow[]; priceTableDate: string; hoursPerMonth: number }> {
  const { plan, preflight, newInstance } = run;
  const cost: CostRow[] = [];
  let priceTableDate = 'unknown';
  let hoursPerMonth = HOURS_PER_MONTH;
  try {
    const afterType = newInstance?.instanceType ?? plan.target.instanceType;
    const priced = [plan.source.instanceId && preflight?.source.instanceType, afterType].filter((t): t is string =>
      Boolean(t),
    );
    const zones = newInstance?.availabilityZone
      ? [newInstance.availabilityZone]
      : (preflight?.subnets ?? []).map((x) => x.availabilityZone).filter((z): z is string => Boolean(z));
    const prices = await run.acts.quick.prices({
      region: plan.region,
      instanceTypes: priced,
      availabilityZones: zones,
    });
    priceTableDate = prices.find((p) => p.priceTableDate)?.priceTableDate ?? priceTableDate;
    hoursPerMonth = prices.find((p) => p.hoursPerMonth)?.hoursPerMonth ?? hoursPerMonth;
    const month = (given: Figure | undefined, f: Figure): Figure =>
      given ??
      (typeof f.value === 'number'
        ? { value: f.value * hoursPerMonth, unit: 'USD', source: f.source }
        : { value: null, unit: 'USD', source: f.source });
    const before = prices.find((p) => p.instanceType === preflight?.source.instanceType);
    const after = prices.find((p) => p.instanceType === afterType);
    if (before)
      cost.push({
        label: 'before',
        instanceType: before.instanceType,
        market: 'on-demand',
        perHour: before.onDemandPerHour,
        perMonth: month(before.onDemandPerMonth, before.onDemandPerHour),
      });
    if (after) {
      const row = { label: 'after', instanceType: after.instanceType } as const;
      cost.push({
        ...row,
        market: 'on-demand',
        perHour: after.onDemandPerHour,
        perMonth: month(after.onDemandPerMonth, after.onDemandPerHour),
      });
      cost.push({
        ...row,
        market: 'spot',
        perHour: after.spotPerHour,
        perMonth: month(after.spotPerMonth, after.spotPerHour),
      });
      // spot.standby: warm runs a second instance beside it all the time.
      if (plan.target.market === 'spot' && plan.spot.standby === 'warm')
        cost.push({
          label: 'warm spare',
          instanceType: after.instanceType,
          market: 'spot',
          perHour: after.spotPerHour,
          perMonth: month(after.spotPerMonth, after.spotPerHour),
        });
    }
  } catch (err) {
    run.warnings.push(`prices could not be read: ${describeFailure(err)}`);
  }
  return { rows: cost, priceTableDate, hoursPerMonth };
}

function pickFacts(t: { vcpus?: number; memoryMiB?: number; gpus?: string } | undefined) {
  return t ? { vcpus: t.vcpus, memoryMiB: t.memoryMiB, gpus: t.gpus } : {};
}
