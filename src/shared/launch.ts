/**
 * A launch: what it needs of the plan (its spec), the choices it tries, and what it returns.
 * Pure: workflow code imports this file.
 */
import type { Plan } from '../plan/schema';

export type Market = 'spot' | 'on-demand';

export interface InstanceInfo {
  instanceId: string;
  instanceType: string;
  market: Market;
  state: string;
  subnetId?: string;
  availabilityZone?: string;
  publicIp?: string;
  privateIp?: string;
  imageId?: string;
  launchTime?: string;
}

export interface LaunchAttempt {
  instanceType: string;
  subnetId: string;
  market: Market;
  error: string;
}

export type LaunchChoice = { instanceType: string; subnetId: string; market: Market };

export interface LaunchResult extends InstanceInfo {
  /** True when an earlier attempt had already launched it (found by tags). */
  reused: boolean;
  /** Choices that had no capacity before this one, in the order tried. */
  skipped: LaunchAttempt[];
  attempt: number;
}

/**
 * What a launch needs of the plan, and no more: a workflow makes it with `launchSpec(plan)`, so
 * an activity input carries a few hundred bytes rather than the whole plan.
 */
export type LaunchTargets = Pick<Plan['target'], 'instanceType' | 'fallbackInstanceTypes' | 'market' | 'subnetIds'>;

export interface LaunchSpec {
  region: string;
  /** Names and tags the instance and its volumes. */
  planName: string;
  /** Never taken as the new instance, whatever its tags say. */
  sourceInstanceId: string;
  /** The types, subnets and market to choose from (`launchChoices` orders them). */
  target: LaunchTargets;
  /**
   * The Spot pools to try, in this order, before on-demand (a guardian's ranking: interrupted
   * pools left out, the rest by placement score and price). Without it: the plan's order.
   */
  spotPools?: { instanceType: string; subnetId: string }[];
  /** False: Spot or nothing (a guardian's return to Spot from on-demand). Default: on-demand after Spot. */
  onDemandFallback?: boolean;
  securityGroupIds: string[];
  /** A public address on the interface, for checks that reach it there (`checks.host: auto`). */
  publicIp: boolean;
  rootVolume: Plan['target']['rootVolume'];
  kmsKeyArn?: string;
  iamInstanceProfile?: string;
  keyName?: string;
}

export interface LaunchInput {
  spec: LaunchSpec;
  workflowId: string;
  /**
   * The run this launch belongs to (a guardian: its first run's id). Its ClientTokens and the tag
   * lookups of earlier attempts are this run's own: a re-run never gets an instance that an
   * earlier run launched (EC2 keeps a ClientToken for 24 hours or more after termination).
   * Missing only in inputs of runs that started before it existed.
   */
  runId?: string;
  /** Names this launch among the run's launches (`launch`, `replace-3`): tags and tokens use it. */
  step: string;
  imageId: string;
  /** Extra tags for the instance (e.g. the guardian's marker). */
  tags?: Record<string, string>;
}

/** The input of launches scheduled by runs from before the spec: the whole plan. Still accepted. */
export type PlanLaunchInput = Omit<LaunchInput, 'spec'> & { plan: Plan };

/**
 * Every (type, subnet, market) to try, best first: types, then subnets, then on-demand. With
 * `spotPools`, the Spot choices are those pools in their order (none: straight to on-demand).
 */
export function launchChoices(
  plan: { target: LaunchTargets } & Pick<LaunchSpec, 'spotPools' | 'onDemandFallback'>,
): LaunchChoice[] {
  const types = [plan.target.instanceType, ...plan.target.fallbackInstanceTypes];
  const markets: Market[] =
    plan.target.market !== 'spot' ? ['on-demand'] : plan.onDemandFallback === false ? ['spot'] : ['spot', 'on-demand'];
  const out: LaunchChoice[] = [];
  for (const market of markets) {
    if (market === 'spot' && plan.spotPools) {
      for (const { instanceType, subnetId } of plan.spotPools) out.push({ instanceType, subnetId, market });
      continue;
    }
    for (const instanceType of types)
      for (const subnetId of plan.target.subnetIds) out.push({ instanceType, subnetId, market });
  }
  return out;
}

export function launchSpec(plan: Plan): LaunchSpec {
  const { target } = plan;
  return {
    region: plan.region,
    planName: plan.name,
    sourceInstanceId: plan.source.instanceId,
    target: {
      instanceType: target.instanceType,
      fallbackInstanceTypes: target.fallbackInstanceTypes,
      market: target.market,
      subnetIds: target.subnetIds,
    },
    securityGroupIds: target.securityGroupIds,
    publicIp: plan.checks.host === 'auto',
    rootVolume: target.rootVolume,
    ...(target.kmsKeyArn ? { kmsKeyArn: target.kmsKeyArn } : {}),
    ...(target.iamInstanceProfile ? { iamInstanceProfile: target.iamInstanceProfile } : {}),
    ...(target.keyName ? { keyName: target.keyName } : {}),
  };
}

/** A launch input of either shape, as the launch reads it. */
export function sliceLaunchInput(input: LaunchInput | PlanLaunchInput): LaunchInput {
  if (!('plan' in input)) return input;
  const { plan, ...rest } = input;
  return { ...rest, spec: launchSpec(plan) };
}
