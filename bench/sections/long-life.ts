/**
 * Section 5, long life. A month of 5 s polls is 518,400 polls, too many to run. The router
 * watches its region from one activity that returns with news or after `watch.maxMs` (an hour by
 * default); here it watches at 1 s polls with watches of 10 s and heartbeats every 2 s, with few
 * watches per run so several runs close. The histories say how many events and billed Temporal
 * Cloud actions a watch costs, the router how many heartbeats; a month at the defaults is
 * extrapolated from those (and labelled so). The guardian goes through some recoveries, and its
 * runs show that continue-as-new keeps every run bounded.
 */
import { routerWorkflowId } from '../../src/shared/constants';
import { WATCH_DEFAULTS } from '../../src/shared/spot';
import type { spotEventRouter } from '../../src/workflows';
import { createQueue, endSpotWorkflows, waitForGuardian } from '../../test/harness/spot';
import { eventsByCause, fetchEvents, runsOf, type HistoryEvent } from '../history';
import { guardedService, routerStatusOf, startGuardian } from '../spot';
import { openAccount, spawnBenchWorker, type Stack } from '../stack';
import { sleep, summarize, type Summary } from '../stats';
import { recoverOnce, waitRouterKnows } from './recovery';

export interface LongLifeResult {
  pollIntervalMs: number;
  router: {
    /** The watch as run here (scaled down from WATCH_DEFAULTS). */
    watchMs: number;
    heartbeatMs: number;
    watches: number;
    watchesPerRun: number;
    polls: number;
    runs: number;
    closedRuns: number;
    /** History length of every closed run. */
    eventsPerClosedRun: number[];
    maxEventsPerRun: number;
    totalEvents: number;
    /** Events of one watch: its activity and the workflow task it wakes. */
    eventsPerWatch: number;
    /** Billed actions of one watch in the history (its activity scheduled; timers, signals). */
    actionsPerWatch: number;
    /** Heartbeats a watch called (an upper bound on those the SDK sent, which it throttles). */
    heartbeatsPerWatch: number;
    /** Events and actions of a run that are no watch (start, registration, continue-as-new). */
    eventsPerRunFixed: number;
    actionsPerRunFixed: number;
  };
  guardian: {
    recoveries: number;
    runs: number;
    /** History length of each run that ended in a recovery (continue-as-new). */
    eventsPerRecoveryRun: Summary;
    maxEventsPerRun: number;
    totalEvents: number;
    /** Events the polls added to the guardian's run while nothing happened. */
    eventsAddedByPolls: number;
    recovery: Summary;
  };
  /** Extrapolated, not measured: 30 days of 5 s polls, with the default watch (WATCH_DEFAULTS). */
  month: {
    polls: number;
    watches: number;
    heartbeats: number;
    routerRuns: number;
    routerEventsPerRun: number;
    routerEvents: number;
    routerActions: number;
    guardianEvents: number;
  };
}

/**
 * The history events that are billed actions on Temporal Cloud: a run started (or continued as
 * new), an activity scheduled, a timer started, a signal sent or received, a child started.
 */
const BILLED = new Set([
  'WORKFLOW_EXECUTION_STARTED',
  'ACTIVITY_TASK_SCHEDULED',
  'TIMER_STARTED',
  'SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED',
  'WORKFLOW_EXECUTION_SIGNALED',
  'START_CHILD_WORKFLOW_EXECUTION_INITIATED',
]);
const billed = (events: readonly HistoryEvent[]) => events.filter((e) => BILLED.has(e.type)).length;

const REGION = 'ap-northeast-1';
const MONTH_MS = 30 * 86_400_000;
const MONTH_POLLS = MONTH_MS / 5_000;
/** The router's default watches per run (src/workflows/router.ts). */
const DEFAULT_WATCHES_PER_RUN = 200;
const WATCH = { maxMs: 10_000, heartbeatMs: 2_000 };

export async function benchLongLife(
  stack: Stack,
  options: { watches: number; watchesPerRun: number; recoveries: number; log: (s: string) => void },
): Promise<LongLifeResult> {
  const account = await openAccount(stack, REGION);
  const worker = await spawnBenchWorker(stack, account);
  const routerId = routerWorkflowId(REGION);
  let guardianId = '';
  try {
    const queueUrl = await createQueue(account.direct, REGION);
    const pollIntervalMs = 1000;
    // The router first, with short watches and few of them per run, so that runs close here.
    await stack.client.workflow.start<typeof spotEventRouter>('spotEventRouter', {
      taskQueue: worker.taskQueue,
      workflowId: routerId,
      args: [
        { region: REGION, queueUrls: [queueUrl], pollIntervalMs, pollsPerRun: options.watchesPerRun, watch: WATCH },
      ],
    });
    const svc = await guardedService(account, { spot: { pollInterval: '1s', interruptionQueueUrl: queueUrl } });
    guardianId = svc.guardianId;
    const guardian = await startGuardian(stack.client, worker.taskQueue, svc.plan, svc.instanceId, svc.seeded.imageId);
    await waitForGuardian(guardian, 'guarding', (s) => s.state === 'guarding', 120_000);
    await waitRouterKnows(stack, 1, REGION);

    const router = stack.client.workflow.getHandle(routerId);
    const guardianLength = async () => (await stack.client.workflow.getHandle(guardianId).describe()).historyLength;
    const before = await guardianLength();
    const t0 = Date.now();
    for (let watches = 0; watches < options.watches;) {
      await sleep(2000);
      watches = (await routerStatusOf(router)).stats.watches ?? 0;
      options.log(`  ${watches}/${options.watches} watches (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    }
    const eventsAddedByPolls = (await guardianLength()) - before;
    const idle = (await routerStatusOf(router)).stats;
    const recoveriesFrom = Date.now();

    const recovery: number[] = [];
    let current = svc.instanceId;
    for (let i = 0; i < options.recoveries; i++) {
      const r = await recoverOnce(stack, account, guardianId, queueUrl, current);
      recovery.push(r.sample.recordedMs);
      current = r.newInstanceId;
      options.log(`  recovery ${i + 1}/${options.recoveries}: ${r.sample.recordedMs} ms`);
    }

    // The router: runs closed by continue-as-new before the recoveries hold watches only.
    const routerRuns = await runsOf(stack.client, routerId);
    const quiet = routerRuns.filter(
      (r) => r.status === 'CONTINUED_AS_NEW' && (r.closeTime ?? Infinity) <= recoveriesFrom,
    );
    let watchEvents = 0;
    let watchActions = 0;
    let quietActions = 0;
    let quietWatches = 0;
    for (const run of quiet) {
      const events = await fetchEvents(stack.client, routerId, run.runId);
      watchEvents += eventsByCause(events).watchRegion ?? 0;
      const watches = events.filter(
        (e) =>
          e.type === 'ACTIVITY_TASK_SCHEDULED' &&
          e.raw.activityTaskScheduledEventAttributes?.activityType?.name === 'watchRegion',
      ).length;
      quietWatches += watches;
      watchActions += watches;
      quietActions += billed(events);
    }
    const quietEvents = quiet.reduce((sum, r) => sum + r.historyLength, 0);
    const eventsPerWatch = quietWatches ? watchEvents / quietWatches : NaN;
    const actionsPerWatch = quietWatches ? watchActions / quietWatches : NaN;
    const eventsPerRunFixed = quiet.length ? (quietEvents - watchEvents) / quiet.length : NaN;
    const actionsPerRunFixed = quiet.length ? (quietActions - watchActions) / quiet.length : NaN;
    const closed = routerRuns.filter((r) => r.status === 'CONTINUED_AS_NEW');
    const heartbeatsPerWatch = (idle.heartbeats ?? 0) / Math.max(1, idle.watches ?? 0);

    const guardianRuns = await runsOf(stack.client, guardianId);
    // Every run after the first one starts from a recovery; the first also holds the start-up.
    const recoveryRuns = guardianRuns.filter((r, i) => i > 0 && r.status === 'CONTINUED_AS_NEW');
    const firstRun = guardianRuns[0];

    // A month at the defaults: an idle watch returns after maxMs, having heartbeaten at its start
    // and every heartbeatMs (as measured here at the scaled watch: compare heartbeatsPerWatch
    // with 1 + watchMs / heartbeatMs).
    const monthWatches = Math.ceil(MONTH_MS / WATCH_DEFAULTS.maxMs);
    const monthHeartbeats = monthWatches * (1 + Math.floor(WATCH_DEFAULTS.maxMs / WATCH_DEFAULTS.heartbeatMs));
    const monthRuns = Math.ceil(monthWatches / DEFAULT_WATCHES_PER_RUN);
    const routerEventsPerRun = Math.round(DEFAULT_WATCHES_PER_RUN * eventsPerWatch + eventsPerRunFixed);
    const perRecovery = summarize(recoveryRuns.map((r) => r.historyLength));
    return {
      pollIntervalMs,
      router: {
        watchMs: WATCH.maxMs,
        heartbeatMs: WATCH.heartbeatMs,
        watches: idle.watches ?? 0,
        watchesPerRun: options.watchesPerRun,
        polls: idle.polls,
        runs: routerRuns.length,
        closedRuns: closed.length,
        eventsPerClosedRun: closed.map((r) => r.historyLength),
        maxEventsPerRun: Math.max(0, ...routerRuns.map((r) => r.historyLength)),
        totalEvents: routerRuns.reduce((sum, r) => sum + r.historyLength, 0),
        eventsPerWatch,
        actionsPerWatch,
        heartbeatsPerWatch,
        eventsPerRunFixed,
        actionsPerRunFixed,
      },
      guardian: {
        recoveries: recovery.length,
        runs: guardianRuns.length,
        eventsPerRecoveryRun: perRecovery,
        maxEventsPerRun: Math.max(0, ...guardianRuns.map((r) => r.historyLength)),
        totalEvents: guardianRuns.reduce((sum, r) => sum + r.historyLength, 0),
        eventsAddedByPolls,
        recovery: summarize(recovery),
      },
      month: {
        polls: MONTH_POLLS,
        watches: monthWatches,
        heartbeats: monthHeartbeats,
        routerRuns: monthRuns,
        routerEventsPerRun,
        routerEvents: Math.round(monthWatches * eventsPerWatch + monthRuns * eventsPerRunFixed),
        routerActions: Math.round(monthWatches * actionsPerWatch + monthHeartbeats + monthRuns * actionsPerRunFixed),
        // Ten recoveries in the month: the first run (start-up and recovery 1), nine recovery
        // runs, and the run that guards now; polls add nothing to the guardian.
        guardianEvents: Math.round(
          (firstRun?.historyLength ?? 0) +
            9 * perRecovery.median +
            (guardianRuns[guardianRuns.length - 1]?.historyLength ?? 0),
        ),
      },
    };
  } finally {
    await endSpotWorkflows(stack.client, REGION, guardianId ? [guardianId] : []);
    await worker.stop();
    await account.close();
  }
}
