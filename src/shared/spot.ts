/**
 * Messages and status of the Spot guardian and the per-region event router. Pure: workflow code
 * imports this file.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Plan } from '../plan/schema';
import type { Market } from './launch';
import type { Ledger, LedgerBook } from './ledger';
import type { InterruptedPool, PoolRanking } from './pools';

export const NOTICE_KINDS = ['interruption', 'rebalance', 'stopped', 'manual'] as const;
export type NoticeKind = (typeof NOTICE_KINDS)[number];

/** The `interruption` signal's payload: from the router, the CLI, the Web UI or any tool. */
export interface InterruptionNotice {
  instanceId: string;
  kind: NoticeKind;
  /** When the notice was raised (ISO), if the sender knows; else when it arrived. */
  at?: string;
  /** Where it came from: `queue`, `poll`, `cli`, … (`watch`: the migration's own watch of an on-demand instance) */
  source?: string;
  /** The state the instance was found in (`terminated`, …), when the sender looked. */
  state?: string;
}

/** What started a round: a notice, or the guardian's own return to Spot from on-demand. */
export type RoundKind = NoticeKind | 'back-to-spot';

export interface GuardEvent {
  kind: RoundKind;
  source?: string;
  oldInstanceId: string;
  newInstanceId?: string;
  instanceType?: string;
  market?: string;
  /** The replacement's zone. */
  availabilityZone?: string;
  /** The pool of the instance replaced, left out of this and the next rounds for a while. */
  interruptedPool?: { instanceType: string; availabilityZone: string };
  /** How the replacement's Spot pools were ordered, and the pools left out. */
  pools?: { order: string; tried: string[]; skipped: string[]; sources: PoolRanking['sources'] };
  /** The timeline: notice → launched (RunInstances) → running → agent online → started → checked (healthy) → EIP moved. */
  noticeAt: string;
  launchedAt?: string;
  runningAt?: string;
  /** When the replacement's SSM agent was first seen online. */
  agentOnlineAt?: string;
  /** When its remote steps (`remote.start`, or every step without a golden image) had run. */
  startedAt?: string;
  /** When every check (services, voice clone) had passed. */
  healthyAt?: string;
  /** The replacement's voice clone before the switch (with `checks.voiceClone`). */
  synthesisSeconds?: number;
  eipMovedAt?: string;
  oldTerminatedAt?: string;
  /** The replacement's price, USD/h (Spot: the pool's price at the launch; on-demand: the price table). */
  pricePerHour?: number;
  outcome: 'replaced' | 'failed';
  error?: string;
  /** From notice to the Elastic IP on a healthy replacement. */
  recoveryMs?: number;
  /** The replacement was the warm spare (`spot.standby: warm`): no launch on the way. */
  viaSpare?: boolean;
}

/** The warm spare (`spot.standby: warm`): launched from the golden image, started and checked. */
export interface Spare {
  instanceId: string;
  instanceType: string;
  availabilityZone?: string;
  market: Market;
  /** Where the checks reach it (its public address, or the plan's `checks.host`). */
  host: string;
  launchedAt: string;
  /** When its last full check (every service, the voice clone) passed. */
  checkedAt: string;
  pricePerHour?: number;
  synthesisSeconds?: number;
}

/** What happened to spares, newest last (kept short). */
export interface SpareEvent {
  at: string;
  what: 'ready' | 'checked' | 'check failed' | 'launch failed' | 'lost' | 'promoted' | 'stopped';
  instanceId?: string;
  error?: string;
}

export interface GuardianInput {
  plan: Plan;
  /** The instance to guard (the migration's new instance). */
  instanceId: string;
  /** AMI to launch replacements from; without one, replacements run every remote step. */
  goldenImageId?: string;
  migrationWorkflowId?: string;
  /** The guarded instance's market (the migration may have fallen back to on-demand); unknown: Spot. */
  market?: Market;
  /** State carried across continue-as-new. */
  carried?: GuardianCarried;
}

export interface GuardianCarried {
  replacements: number;
  events: GuardEvent[];
  pending: InterruptionNotice[];
  ignored: { at: string; reason: string; notice?: unknown }[];
  runs: number;
  routerReady: boolean;
  /** The interruption queue's health, as the router last told it. */
  queue?: QueueHealthNotice;
  /**
   * Replacement launches so far, failed ones included: each launch has a step name (and so
   * ClientTokens and tags) of its own. Missing in runs from before it was carried.
   */
  launches?: number;
  /** Pools a notice named, still avoided by replacements (`spot.avoidInterruptedPoolFor`). */
  interruptedPools?: InterruptedPool[];
  /** The guarded instance's market, once known. */
  market?: Market;
  /** On on-demand: when the guardian tries Spot again (`spot.revertAfter` after the fallback or the last try). */
  nextSpotTryAt?: string;
  /** Hours by market, cost against all-on-demand, interruptions by pool. Missing in runs from before it was kept. */
  ledger?: LedgerBook;
  /** With `spot.standby: warm`: the spare, once started and checked. */
  spare?: Spare;
  /** Spare launches so far (each has a step name of its own). */
  spareLaunches?: number;
  /** When the next spare may be launched (after a failed launch: `spot.standbyCheckInterval` later). */
  nextSpareAt?: string;
  spareEvents?: SpareEvent[];
  /** Instances a later migration of the plan handed over (the newest last, kept short). */
  retargets?: Retarget[];
}

/** A migration of the same plan completed while this guardian ran: it guards the new instance. */
export interface RetargetRequest {
  /** The migration's new instance: it holds the Elastic IP. */
  instanceId: string;
  /** The migration that made it. */
  migrationWorkflowId: string;
  /** Its golden image, when already made (else it comes as the `golden-image` signal). */
  goldenImageId?: string;
  market?: Market;
}

export interface Retarget {
  at: string;
  from: string;
  to: string;
  migrationWorkflowId: string;
}

export interface RetargetAnswer {
  guardianId: string;
  /** The instance guarded now. */
  instanceId: string;
  /** The one guarded before (the same when the request was repeated). */
  previousInstanceId: string;
  changed: boolean;
}

/** An EC2 instance id: `i-` and 8 or 17 hex digits (up to 17 accepted). */
export const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** What is wrong with a retarget payload, or undefined: the Update's validator. */
export function retargetProblem(r: unknown): string | undefined {
  const expected =
    'expected {"instanceId": "i-…", "migrationWorkflowId": "migrate-…", "goldenImageId"?: "ami-…", "market"?: "spot"|"on-demand"}';
  if (!r || typeof r !== 'object') return `no payload: ${expected}`;
  const { instanceId, migrationWorkflowId, goldenImageId, market } = r as Record<string, unknown>;
  if (typeof instanceId !== 'string' || !INSTANCE_ID.test(instanceId))
    return `instanceId ${JSON.stringify(instanceId)}: ${expected}`;
  if (typeof migrationWorkflowId !== 'string' || migrationWorkflowId === '')
    return `migrationWorkflowId ${JSON.stringify(migrationWorkflowId)}: ${expected}`;
  if (goldenImageId !== undefined && (typeof goldenImageId !== 'string' || !/^ami-[0-9a-f]+$/.test(goldenImageId)))
    return `goldenImageId ${JSON.stringify(goldenImageId)}: ${expected}`;
  if (market !== undefined && market !== 'spot' && market !== 'on-demand')
    return `market ${JSON.stringify(market)}: ${expected}`;
  return undefined;
}

export interface GuardianStatus {
  workflowId: string;
  planName: string;
  region: string;
  instanceId: string;
  goldenImageId?: string;
  state: 'guarding' | 'replacing' | 'stopped';
  replacements: number;
  /** Runs of this guardian (continue-as-new count + 1). */
  run: number;
  events: GuardEvent[];
  pending: InterruptionNotice[];
  ignored: GuardianCarried['ignored'];
  /** Whether the region's router runs for this guardian (checked at the start of each run). */
  router?: { ok: boolean; at: string; error?: string };
  /** The plan's interruption queue as the router reads it: not ok while reads fail. */
  queue?: QueueHealthNotice;
  /** The guarded instance's market, when known. */
  market?: Market;
  /** On on-demand: when it tries Spot again. */
  nextSpotTryAt?: string;
  /**
   * Hours on Spot and on-demand, the cost against all-on-demand, interruptions by pool, as of
   * `ledger.at`: a query sees the workflow's clock, which stands at its last task. A reader
   * counts up to its own now with `ledgerAt(ledgerBook, now)`.
   */
  ledger?: Ledger;
  ledgerBook?: LedgerBook;
  /** `spot.standby`: `warm` keeps a spare. */
  standby?: 'none' | 'warm';
  /** The warm spare, when one is ready; `spareEvents` say what became of the others. */
  spare?: Spare;
  spareEvents?: SpareEvent[];
  retargets?: Retarget[];
}

export const interruptionSignal = defineSignal<[InterruptionNotice]>('interruption');
export const stopGuardingSignal = defineSignal<[]>('stop');
/** The migration's golden image is ready: replacements start from it (until then, from the plan's image). */
export const goldenImageSignal = defineSignal<[{ imageId: string }]>('golden-image');
export const guardianStatusQuery = defineQuery<GuardianStatus>('status');
export const queueHealthSignal = defineSignal<[QueueHealthNotice]>('queue-health');
/** A later migration of the plan hands its new instance over: validated, and answered once the guardian guards it. */
export const retargetUpdate = defineUpdate<RetargetAnswer, [RetargetRequest]>('retarget');

export const GUARDIAN_SIGNAL_DESCRIPTIONS = {
  interruption:
    'An interruption notice: replace the instance now. Payload: {"instanceId": "i-…", "kind": "interruption"|"rebalance"|"stopped"|"manual"}',
  stop: 'Stop guarding: the instance keeps running, nothing is replaced any more.',
  'golden-image': 'The golden image to launch replacements from: {"imageId": "ami-…"}',
  'queue-health':
    'From the router: whether the interruption queue can be read. {"queueUrl": "…", "ok": true|false, "error": "…", "since": "…"}',
} as const;

/** The router's registration: a guardian asks it to read a queue and poll its instances. */
export interface RouterRegistration {
  guardianId: string;
  queueUrl?: string | null;
  pollIntervalMs: number;
}

export interface RouterInput {
  region: string;
  queueUrls: string[];
  pollIntervalMs: number;
  /** Polls per run before it continues as new (default 500; runs that watch from an activity: watches per run, default 200). */
  pollsPerRun?: number;
  /** How the watch activity runs (defaults: WATCH_DEFAULTS). */
  watch?: Partial<WatchTiming>;
  carried?: RouterCarried;
}

/**
 * The router's watch activity: it returns at the latest after `maxMs`, and heartbeats every
 * `heartbeatMs` (each heartbeat is a billed action on Temporal Cloud; a worker that died is
 * noticed within the heartbeat timeout, twice that).
 */
export interface WatchTiming {
  maxMs: number;
  heartbeatMs: number;
}

export const WATCH_DEFAULTS: WatchTiming = { maxMs: 60 * 60_000, heartbeatMs: 60_000 };

/** What the router hands its watch activity. */
export interface WatchInput extends WatchTiming {
  region: string;
  queueUrls: string[];
  /** Live guarded instances → guardian, as the router knows them. */
  known: Record<string, string>;
  pollIntervalMs: number;
  /** Whether the last scan failed (a scan that works again is then news). */
  scanFailing: boolean;
  /** The queues whose last read failed (a read that works again is then news). */
  failingQueues: string[];
}

/** Why a watch returned: news for the router, or its time was up. */
export interface WatchResult {
  reason: 'messages' | 'deaths' | 'guarded' | 'missed' | 'scan' | 'queue' | 'time';
  /** Scans made (each one DescribeInstances listing, plus by-id confirmations when needed). */
  scans: number;
  describeCalls: number;
  /** Scans that failed, and the last failure. */
  scanErrors: number;
  lastScanError?: { at: string; error: string };
  /** Whether the last scan failed. */
  scanFailing: boolean;
  /** Live instances a listing left out, found alive by id. */
  missedByScan: number;
  /** Known instances found dead (confirmed by id when the listing left them out). */
  deaths: { instanceId: string; guardianId: string }[];
  /** Live guarded instances → guardian, after the last scan that worked. */
  known: Record<string, string>;
  /** Messages read, per queue (not deleted: the router deletes what it delivered). */
  messages: { queueUrl: string; messages: QueueMessage[] }[];
  /** Each queue's reads: failures in a row and the last outcome. */
  queues: { queueUrl: string; ok: boolean; error?: string; at: string; reads: number; readErrors: number }[];
  heartbeats: number;
}

export interface RouterCarried {
  /** Guarded instance → guardian workflow id, as last seen alive. */
  known: Record<string, string>;
  runs: number;
  stats: RouterStats;
  /** Each queue's health, and the guardians that registered it (told when it changes). */
  queues?: Record<string, QueueHealth & { owners: string[] }>;
  lastScanError?: { at: string; error: string };
  /** Whether the last scan failed. */
  scanFailing?: boolean;
  /** What became of the last queue messages (newest last), before each was deleted. */
  notices?: RoutedNotice[];
}

/** One queue message the router took in: routed to a guardian, or dropped with the reason. */
export interface RoutedNotice {
  messageId: string;
  queueUrl: string;
  instanceId?: string;
  kind?: NoticeKind;
  outcome: 'routed' | 'dropped';
  /** The workflow that took it (routed), or that could not (dropped: gone). */
  guardianId?: string;
  /** Why it was dropped. */
  reason?: string;
  /** When it was decided (workflow time), before the message was deleted. */
  at: string;
}

/** How many routed notices the router keeps for its status. */
export const ROUTED_NOTICES_KEPT = 100;

export interface RouterStats {
  polls: number;
  describeCalls: number;
  /** Queue messages a guardian took (its signal was accepted). */
  messagesRouted: number;
  /** Queue messages deleted undelivered: no Spot event for us, nobody guards the instance, or its guardian is gone. */
  messagesDropped: number;
  pollNotices: number;
  /** Live instances a scan left out, found alive when asked for by id (no notice sent). */
  missedByScan?: number;
  /** Scans that failed (the router keeps going and tries again at the next poll). */
  scanErrors?: number;
  /** Queue reads that failed, all queues together. */
  readErrors?: number;
  /** Watch activities that returned, their heartbeats, and those that failed. */
  watches?: number;
  heartbeats?: number;
  watchErrors?: number;
}

/** How one queue's reads go: `ok` until a read fails, and again after the next read that works. */
export interface QueueHealth {
  queueUrl: string;
  ok: boolean;
  /** Failed reads in a row (0 when ok). */
  failures: number;
  /** The last failure, and since when the queue fails (ISO), while not ok. */
  error?: string;
  since?: string;
  /** The last read that worked (ISO). */
  lastReadAt?: string;
}

/** The `queue-health` signal: the router tells a guardian how the queue it registered reads. */
export type QueueHealthNotice = Pick<QueueHealth, 'queueUrl' | 'ok' | 'error' | 'since'>;

export interface RouterStatus {
  region: string;
  queueUrls: string[];
  pollIntervalMs: number;
  guarded: number;
  run: number;
  stats: RouterStats;
  /** One entry per queue: a queue that cannot be read shows here, with its error. */
  queues: QueueHealth[];
  /** The last scan that failed, if any did since the router started. */
  lastScanError?: { at: string; error: string };
  /** Set while scans fail (the last one failed). */
  scanFailing?: boolean;
  /** The last queue messages and what became of each (newest last). */
  notices?: RoutedNotice[];
}

export const registerGuardianSignal = defineSignal<[RouterRegistration]>('register');
export const stopRouterSignal = defineSignal<[]>('stop');
export const routerStatusQuery = defineQuery<RouterStatus>('status');

/** An instance tagged as guarded, as the router's scan finds it. */
export interface GuardedInstance {
  instanceId: string;
  guardianId: string;
  state: string;
  stateReason?: string;
}

export type ParsedEvent =
  { ok: true; instanceId: string; kind: NoticeKind; detailType: string; time?: string } | { ok: false; reason: string };

export interface QueueMessage {
  messageId: string;
  receiptHandle: string;
  event: ParsedEvent;
}
