/**
 * What the workflows tell people: the events of a migration and of a guardian, as the `notify`
 * activity takes them. The receivers (`MIGRATION_NOTIFY_URLS`) are the worker's secret and never
 * enter a workflow; the events carry only what a history holds anyway.
 */
import type { GuardEvent } from './spot';

interface Base {
  workflowId: string;
  planName: string;
  region: string;
  /** When it happened (workflow time). */
  at: string;
}

export type NotifyEvent = Base &
  (
    | {
        kind: 'awaiting-approval';
        newInstanceId: string;
        oldInstanceId: string;
        /** When the wait ends without a decision (approval.timeout). */
        deadline: string;
        approvers: string[];
      }
    | { kind: 'approved' | 'rejected'; by: string; comment?: string; via?: string }
    /** A signal the run did not act on (the Web UI told its sender only that it was delivered). */
    | { kind: 'signal-refused'; name: string; reason: string }
    | { kind: 'completed'; outcome: string; instanceId?: string; warnings: string[] }
    | { kind: 'rolled-back' | 'failed' | 'cancelled'; error: string; phase?: string }
    | { kind: 'undo-failing'; step: string; error: string; since: string; tries: number }
    | { kind: 'spot-notice'; instanceId: string; noticeKind: string; source?: string }
    /** The replacement round, with its timeline. */
    | { kind: 'replaced'; round: GuardEvent }
    | { kind: 'replacement-failed'; round: GuardEvent }
    | { kind: 'on-demand-fallback' | 'back-to-spot'; instanceId: string; instanceType?: string }
    | { kind: 'router-unhealthy'; error: string }
  );

export type NotifyKind = NotifyEvent['kind'];

export const NOTIFY_KINDS: readonly NotifyKind[] = [
  'awaiting-approval',
  'approved',
  'rejected',
  'signal-refused',
  'completed',
  'rolled-back',
  'failed',
  'cancelled',
  'undo-failing',
  'spot-notice',
  'replaced',
  'replacement-failed',
  'on-demand-fallback',
  'back-to-spot',
  'router-unhealthy',
];

/** What the notify activity did. */
export interface NotifyResult {
  /** Receivers that took it (this attempt and earlier ones). */
  sent: number;
  /** No receiver is configured: the text went to the worker's log (and the demo's screen). */
  printed?: boolean;
}
