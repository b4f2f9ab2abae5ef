/**
 * The checks' inputs and results, and the slice of the plan they need. Pure: workflow code
 * imports this file.
 */
import type { Plan } from '../plan/schema';
import type { Figure } from './migration';

/** What the checks need of the plan: where, which services, and how they are checked. */
export interface ChecksSpec {
  region: string;
  services: Plan['services'];
  checks: Pick<Plan['checks'], 'requestTimeoutSeconds' | 'voiceClone' | 'latency'>;
}

export function checksSpec(plan: Plan): ChecksSpec {
  const { requestTimeoutSeconds, voiceClone, latency } = plan.checks;
  return {
    region: plan.region,
    services: plan.services,
    checks: {
      requestTimeoutSeconds,
      ...(voiceClone ? { voiceClone } : {}),
      ...(latency ? { latency } : {}),
    },
  };
}

/** The spec of a check's input, also of one scheduled before the spec (it carries the whole plan). */
export function specOf(input: { spec: ChecksSpec } | { plan: Plan }): ChecksSpec {
  return 'plan' in input ? checksSpec(input.plan) : input.spec;
}

export interface ServiceCheck {
  service: string;
  port: number;
  public: boolean;
  via: 'http' | 'ssm';
  ok: boolean;
  status?: number;
  ms?: number;
  error?: string;
}

export interface ChecksInput {
  spec: ChecksSpec;
  instanceId: string;
  /** The address public services are checked at (the instance's, or the Elastic IP). */
  host: string;
  scope: 'all' | 'public';
}

export interface GpuFacts {
  name: Figure;
  memory: Figure;
  driver: Figure;
  cuda: Figure;
}

export interface LatencyResult {
  samples: number[];
  figures: Record<'averageMs' | 'p50Ms' | 'p95Ms' | 'maxMs' | 'minMs', Figure>;
  attempt: number;
}

export interface SynthesisResult {
  seconds: number;
  status: number;
  bytes: number;
  attempt: number;
}

/** A voice-clone or latency test at `host`. */
export interface HttpTestInput {
  spec: ChecksSpec;
  host: string;
}

/** The same inputs as runs from before the spec send them. */
export type PlanChecksInput = Omit<ChecksInput, 'spec'> & { plan: Plan };
export type PlanHttpTestInput = Omit<HttpTestInput, 'spec'> & { plan: Plan };
