/**
 * Reading workflow histories for timings: when each activity was scheduled, started and closed,
 * how long workflow tasks waited for a worker, and how many events a run holds. Event times are
 * the server's clock, which on this machine is the benchmark's clock too.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const EventType = temporal.api.enums.v1.EventType;
type RawEvent = temporal.api.history.v1.IHistoryEvent;

export interface HistoryEvent {
  id: number;
  /** e.g. ACTIVITY_TASK_SCHEDULED */
  type: string;
  /** Epoch milliseconds. */
  at: number;
  raw: RawEvent;
}

export interface ActivityTiming {
  activityType: string;
  scheduledAt: number;
  startedAt?: number;
  closedAt?: number;
  attempt?: number;
  outcome?: string;
}

function num(value: unknown): number {
  if (typeof value === 'number') return value;
  if (value && typeof value === 'object' && 'toNumber' in value) return (value as { toNumber(): number }).toNumber();
  return Number(value ?? 0);
}

function timeOf(e: RawEvent): number {
  const t = e.eventTime;
  return t ? num(t.seconds) * 1000 + num(t.nanos) / 1e6 : NaN;
}

function typeName(e: RawEvent): string {
  const name = EventType[e.eventType ?? 0] ?? String(e.eventType);
  return name.replace(/^EVENT_TYPE_/, '');
}

export async function fetchEvents(client: Client, workflowId: string, runId?: string): Promise<HistoryEvent[]> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  return (history.events ?? []).map((raw) => ({ id: num(raw.eventId), type: typeName(raw), at: timeOf(raw), raw }));
}

/** Every activity of a run, in the order it was scheduled. */
export function activityTimings(events: readonly HistoryEvent[]): ActivityTiming[] {
  const byScheduled = new Map<number, ActivityTiming>();
  const out: ActivityTiming[] = [];
  for (const e of events) {
    const r = e.raw;
    if (e.type === 'ACTIVITY_TASK_SCHEDULED') {
      const t: ActivityTiming = {
        activityType: r.activityTaskScheduledEventAttributes?.activityType?.name ?? '?',
        scheduledAt: e.at,
      };
      byScheduled.set(e.id, t);
      out.push(t);
      continue;
    }
    const ref =
      r.activityTaskStartedEventAttributes?.scheduledEventId ??
      r.activityTaskCompletedEventAttributes?.scheduledEventId ??
      r.activityTaskFailedEventAttributes?.scheduledEventId ??
      r.activityTaskTimedOutEventAttributes?.scheduledEventId ??
      r.activityTaskCanceledEventAttributes?.scheduledEventId;
    if (ref === undefined || ref === null) continue;
    const t = byScheduled.get(num(ref));
    if (!t) continue;
    if (e.type === 'ACTIVITY_TASK_STARTED') {
      t.startedAt = e.at;
      t.attempt = num(r.activityTaskStartedEventAttributes?.attempt);
    } else {
      t.closedAt = e.at;
      t.outcome = e.type.replace(/^ACTIVITY_TASK_/, '').toLowerCase();
    }
  }
  return out;
}

/** Schedule-to-start of every workflow task of a run (ms). */
export function workflowTaskWaits(events: readonly HistoryEvent[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < events.length; i++) {
    if (events[i].type !== 'WORKFLOW_TASK_SCHEDULED') continue;
    const started = events.slice(i + 1, i + 3).find((e) => e.type === 'WORKFLOW_TASK_STARTED');
    if (started) out.push(started.at - events[i].at);
  }
  return out;
}

/** Schedule-to-start of every activity of a run (ms). */
export function activityWaits(events: readonly HistoryEvent[]): number[] {
  return activityTimings(events)
    .filter((t) => t.startedAt !== undefined)
    .map((t) => (t.startedAt as number) - t.scheduledAt);
}

export interface RunInfo {
  runId: string;
  status: string;
  historyLength: number;
  startTime: number;
  closeTime?: number;
}

/** Every run of a workflow id, oldest first, with its event count. */
export async function runsOf(client: Client, workflowId: string): Promise<RunInfo[]> {
  const runs: RunInfo[] = [];
  for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
    runs.push({
      runId: wf.runId,
      status: wf.status.name,
      historyLength: wf.historyLength,
      startTime: wf.startTime.getTime(),
      closeTime: wf.closeTime?.getTime(),
    });
  }
  return runs.sort((a, b) => a.startTime - b.startTime);
}

/**
 * Events of a run by what caused them: each activity's own events go to its type; a workflow
 * task (scheduled, started, completed) goes to what woke the workflow up (the activity that
 * completed, `timer`, `signal`, …); timers to `timer`.
 */
export function eventsByCause(events: readonly HistoryEvent[]): Record<string, number> {
  const out: Record<string, number> = {};
  const add = (k: string, n = 1) => (out[k] = (out[k] ?? 0) + n);
  const typeOfScheduled = new Map<number, string>();
  let lastCause = 'start';
  for (const e of events) {
    const r = e.raw;
    if (e.type === 'ACTIVITY_TASK_SCHEDULED') {
      const t = r.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
      typeOfScheduled.set(e.id, t);
      add(t);
    } else if (e.type.startsWith('ACTIVITY_TASK_')) {
      const ref =
        r.activityTaskStartedEventAttributes?.scheduledEventId ??
        r.activityTaskCompletedEventAttributes?.scheduledEventId ??
        r.activityTaskFailedEventAttributes?.scheduledEventId ??
        r.activityTaskTimedOutEventAttributes?.scheduledEventId;
      const t = typeOfScheduled.get(num(ref)) ?? '?';
      add(t);
      if (e.type !== 'ACTIVITY_TASK_STARTED') lastCause = t;
    } else if (e.type.startsWith('TIMER_')) {
      add('timer');
      if (e.type === 'TIMER_FIRED') lastCause = 'timer';
    } else if (e.type.startsWith('WORKFLOW_TASK_')) {
      add(lastCause);
    } else if (e.type === 'WORKFLOW_EXECUTION_SIGNALED') {
      add('signal');
      lastCause = 'signal';
    } else {
      const k = e.type.toLowerCase();
      add(k);
      lastCause = k;
    }
  }
  return out;
}
