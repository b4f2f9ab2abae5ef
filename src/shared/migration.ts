/**
 * The migration's messages and status, shared by the workflow, the CLI and the tests.
 * Pure: workflow code imports this file.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Plan } from '../plan/schema';

export const PHASES = [
  { name: 'preflight', title: 'Preflight' },
  { name: 'launch', title: 'Launch GPU instance' },
  { name: 'security-group', title: 'Security group' },
  { name: 'setup', title: 'Environment setup' },
  { name: 'source', title: 'Source migration' },
  { name: 'build', title: 'Docker image build' },
  { name: 'start', title: 'Service start check' },
  { name: 'voice-test', title: 'Voice clone test' },
  { name: 'connectivity', title: 'External connectivity' },
  { name: 'eip-switch', title: 'Elastic IP switch' },
  { name: 'performance', title: 'Performance test' },
  { name: 'stop-old', title: 'Stop old instance' },
] as const;

export type PhaseName = (typeof PHASES)[number]['name'];
export type PhaseState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'compensated';
/** Top-level `phase` of the status query: the phase running now, or where the run stands. */
export type MigrationPhase =
  | PhaseName
  | 'awaiting-approval'
  /** A new Spot instance was lost before the migration stood: a new one is on its way. */
  | 'relaunching'
  | 'rolling-back'
  /** The migration stands (the Elastic IP on the new instance): the golden image and the guardian follow. */
  | 'finalizing'
  | 'completed'
  /** Cancelled once the migration stood: nothing was rolled back. */
  | 'cancelled'
  | 'rolled-back'
  | 'failed';

/** A number or fact with where it came from. Nothing is an estimate dressed as a result. */
export interface Figure {
  value: number | string | null;
  unit?: string;
  source: 'measured' | 'configured' | 'not reported by the instance' | 'price table';
}

/**
 * What a remote step printed, as SSM Run Command keeps it: GetCommandInvocation holds only the
 * first 24,000 characters of stdout and the first 8,000 of stderr. The record shows the last
 * 2,000 characters of what SSM kept; `cut` says when SSM dropped the rest of a stream.
 */
export interface RemoteOutput {
  exitCode: number;
  stdoutTail: string;
  stderrTail: string;
  cut?: string;
}

export interface PhaseRecord {
  name: PhaseName;
  title: string;
  state: PhaseState;
  attempts: number;
  startedAt?: string;
  endedAt?: string;
  durationMs?: number;
  figures: Record<string, Figure>;
  output?: RemoteOutput;
  lastError?: string;
}

export interface ApprovalRecord {
  decision: 'approved' | 'rejected' | 'timed-out';
  by?: string;
  comment?: string;
  at: string;
  via?: 'signal' | 'update';
}

export interface IgnoredMessage {
  name: string;
  at: string;
  reason: string;
}

export interface MigrationStatus {
  workflowId: string;
  planName: string;
  region: string;
  phase: MigrationPhase;
  phases: PhaseRecord[];
  oldInstanceId: string;
  newInstanceId?: string;
  elasticIp?: string;
  approval?: ApprovalRecord;
  ignoredMessages: IgnoredMessage[];
  compensations: { name: string; state: 'done' | 'failed' | 'skipped'; detail?: string }[];
  /**
   * The undo step the rollback keeps trying while it fails (for up to a day): cleared once it
   * succeeds. A person may have to look (AWS down in the region, a permission taken away).
   */
  undoFailing?: { name: string; since: string; tries: number; lastError: string; nextTryAt: string };
  error?: { type: string; message: string; phase?: PhaseName };
  guardianWorkflowId?: string;
  /** A guardian of the plan already ran (an earlier migration's): it was handed the new instance at the decision. */
  guardianHandedOver?: { guardianWorkflowId: string; previousInstanceId: string };
  /** New Spot instances lost before the migration stood, each replaced by a relaunch. */
  relaunches?: Relaunch[];
  /** The golden image of the new instance, made while the migration waits for approval. */
  golden?: { instanceId: string; state: 'making' | 'made' | 'failed' | 'discarded'; imageId?: string };
}

/**
 * A new Spot instance that got a notice (or died) before the migration stood, and what the
 * migration did: before the Elastic IP switch it launched again in another pool; after it, the
 * Elastic IP went back to the old instance first, and approval was asked again.
 */
export interface Relaunch {
  instanceId: string;
  /** Its pool, `type@zone`, left out of the next launch for spot.avoidInterruptedPoolFor. */
  pool?: string;
  kind: string;
  source?: string;
  noticeAt: string;
  /** The phase the migration was in. */
  during: MigrationPhase;
  /** After the switch: when the Elastic IP was back on the old instance. */
  elasticIpBackAt?: string;
  /** Golden images of it that were being made, discarded with their snapshots. */
  goldenDiscarded?: string[];
  /** The instance launched in its place (set once it runs). */
  replacedBy?: string;
}

export interface MigrationInput {
  plan: Plan;
  /** Leave the new instance running after a rollback, for debugging. */
  keepFailed?: boolean;
  timeouts?: MigrationTimeouts;
}

export interface MigrationTimeouts {
  /**
   * Heartbeat timeout, in whole seconds from 1 to 600, of the long activities (launch, images,
   * stop, remote steps, undo steps): a worker that dies inside one is noticed this long after its
   * last heartbeat, and the activity is retried on another. Default 60 (remote steps 120).
   */
  heartbeatSeconds?: number;
  /**
   * Start-to-close timeout, in whole seconds from 1 to 3600, of the quick activities (preflight,
   * security group, Elastic IP, GPU facts, prices) and of the service checks: a worker that dies
   * inside one is noticed this long after the attempt started. Default 120 (checks 600).
   */
  activitySeconds?: number;
}

const TIMEOUT_KEYS = ['heartbeatSeconds', 'activitySeconds'] as const;
const TIMEOUT_RANGES: Record<(typeof TIMEOUT_KEYS)[number], number> = { heartbeatSeconds: 600, activitySeconds: 3600 };

/** What is wrong with `timeouts` of a MigrationInput, or undefined when it is usable. */
export function timeoutsProblem(timeouts: unknown): string | undefined {
  if (timeouts === undefined) return undefined;
  if (typeof timeouts !== 'object' || timeouts === null || Array.isArray(timeouts))
    return 'timeouts: expected a mapping such as {"heartbeatSeconds": 30}';
  const unknown = Object.keys(timeouts).filter((k) => !(TIMEOUT_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) return `timeouts.${unknown[0]}: expected a known key (${TIMEOUT_KEYS.join(', ')})`;
  for (const key of TIMEOUT_KEYS) {
    const value = (timeouts as MigrationTimeouts)[key];
    const max = TIMEOUT_RANGES[key];
    if (value !== undefined && !(typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= max)) {
      return `timeouts.${key}: expected a whole number of seconds from 1 to ${max}, got ${JSON.stringify(value)}`;
    }
  }
  return undefined;
}

export interface ApprovePayload {
  by: string;
  comment?: string;
}
export interface RejectPayload {
  by: string;
  reason: string;
}
export type Decision = ({ decision: 'approve' } & ApprovePayload) | ({ decision: 'reject' } & RejectPayload);

export const approveSignal = defineSignal<[ApprovePayload]>('approve');
export const rejectSignal = defineSignal<[RejectPayload]>('reject');
export const decideUpdate = defineUpdate<ApprovalRecord, [Decision]>('decide');
export const statusQuery = defineQuery<MigrationStatus>('status');

export const SIGNAL_DESCRIPTIONS = {
  approve:
    'Approve the cut-over: stop the old instance (after an AMI backup). Payload: {"by": "your name", "comment": "optional"}',
  reject:
    'Reject the cut-over: roll back (Elastic IP to the old instance, terminate the new one). Payload: {"by": "your name", "reason": "why"}',
} as const;
