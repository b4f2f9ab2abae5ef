/**
 * Section 5, long life. A month of 5 s polls is 518,400 polls, too many to run; instead the
 * router polls a few hundred times at 1 s (with fewer polls per run than its default 500, so
 * several runs close), the guardian goes through some recoveries, and the histories say how
 * many events a poll, a queue read and a recovery cost. A month is extrapolated from those
 * (and labelled so), and the runs show that continue-as-new keeps every run bounded.
 */
import { routerWorkflowId } from '../../src/shared/constants';
import type { spotEventRouter } from '../../src/workflows';
import { createQueue, endSpotWorkflows, waitForGuardian } from '../../test/harness/spot';
import { eventsByCause, fetchEvents, runsOf } from '../history';
import { guardedService, routerStatusOf, startGuardian } from '../spot';
import { openAccount, spawnBenchWorker, type Stack } from '../stack';
import { sleep, summarize, type Summary } from '../stats';
import { recoverOnce, waitRouterKnows } from './recovery';

export interface LongLifeResult {
  pollIntervalMs: number;
  router: {
    polls: number;
    pollsPerRun: number;
    runs: number;
    closedRuns: number;
    /** History length of every closed run. */
    eventsPerClosedRun: number[];
    maxEventsPerRun: number;
    totalEvents: number;
    /** Events of the DescribeInstances poll (its activity, timer and workflow tasks), per poll. */
    eventsPerPoll: number;
    /** Events of one queue read (long poll), its activity and workflow task. */
    eventsPerRead: number;
    /** Queue reads per poll in this run (moto answers an idle long poll after 1–2 s). */
    readsPerPoll: number;
    /** Events of a run that are neither polls nor reads (start, registration, continue-as-new). */
    eventsPerRunFixed: number;
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
  /** Extrapolated, not measured: 30 days of 5 s polls. */
  month: {
    polls: number;
    routerRuns: number;
    routerEventsPerRun: number;
    routerEvents: number;
    guardianEvents: number;
  };
}

const REGION = 'ap-northeast-1';
const MONTH_POLLS = (30 * 86_400) / 5;
const DEFAULT_POLLS_PER_RUN = 500;

export async function benchLongLife(
  stack: Stack,
  options: { polls: number; pollsPerRun: number; recoveries: number; log: (s: string) => void },
): Promise<LongLifeResult> {
  const account = await openAccount(stack, REGION);
  const worker = await spawnBenchWorker(stack, account);
  const routerId = routerWorkflowId(REGION);
  let guardianId = '';
  try {
    const queueUrl = await createQueue(account.direct, REGION);
    const pollIntervalMs = 1000;
    // The router first, with fewer polls per run than its default, so that runs close here.
    await stack.client.workflow.start<typeof spotEventRouter>('spotEventRouter', {
      taskQueue: worker.taskQueue,
      workflowId: routerId,
      args: [{ region: REGION, queueUrls: [queueUrl], pollIntervalMs, pollsPerRun: options.pollsPerRun }],
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
    for (let polls = 0; polls < options.polls;) {
      await sleep(2000);
      polls = (await routerStatusOf(router)).stats.polls;
      options.log(`  ${polls}/${options.polls} polls (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    }
    const eventsAddedByPolls = (await guardianLength()) - before;
    const pollsDone = (await routerStatusOf(router)).stats.polls;
    const recoveriesFrom = Date.now();

    const recovery: number[] = [];
    let current = svc.instanceId;
    for (let i = 0; i < options.recoveries; i++) {
      const r = await recoverOnce(stack, account, guardianId, queueUrl, current);
      recovery.push(r.sample.recordedMs);
      current = r.newInstanceId;
      options.log(`  recovery ${i + 1}/${options.recoveries}: ${r.sample.recordedMs} ms`);
    }

    // The router: runs closed by continue-as-new before the recoveries hold polls and reads only.
    const routerRuns = await runsOf(stack.client, routerId);
    const quiet = routerRuns.filter(
      (r) => r.status === 'CONTINUED_AS_NEW' && (r.closeTime ?? Infinity) <= recoveriesFrom,
    );
    const byCause: Record<string, number> = {};
    let reads = 0;
    for (const run of quiet) {
      const events = await fetchEvents(stack.client, routerId, run.runId);
      for (const [k, v] of Object.entries(eventsByCause(events))) byCause[k] = (byCause[k] ?? 0) + v;
      reads += events.filter(
        (e) =>
          e.type === 'ACTIVITY_TASK_SCHEDULED' &&
          e.raw.activityTaskScheduledEventAttributes?.activityType?.name === 'receiveSpotEvents',
      ).length;
    }
    const quietPolls = quiet.length * options.pollsPerRun;
    const quietEvents = quiet.reduce((sum, r) => sum + r.historyLength, 0);
    const pollEvents = (byCause.scanGuarded ?? 0) + (byCause.timer ?? 0);
    const readEvents = byCause.receiveSpotEvents ?? 0;
    const eventsPerPoll = quietPolls ? pollEvents / quietPolls : NaN;
    const eventsPerRead = reads ? readEvents / reads : NaN;
    const eventsPerRunFixed = quiet.length ? (quietEvents - pollEvents - readEvents) / quiet.length : NaN;
    const closed = routerRuns.filter((r) => r.status === 'CONTINUED_AS_NEW');

    const guardianRuns = await runsOf(stack.client, guardianId);
    // Every run after the first one starts from a recovery; the first also holds the start-up.
    const recoveryRuns = guardianRuns.filter((r, i) => i > 0 && r.status === 'CONTINUED_AS_NEW');
    const firstRun = guardianRuns[0];

    // At 5 s polls an idle long poll waits the full 5 s, so a month reads the queue once per poll.
    const routerEventsPerRun = Math.round(DEFAULT_POLLS_PER_RUN * (eventsPerPoll + eventsPerRead) + eventsPerRunFixed);
    const perRecovery = summarize(recoveryRuns.map((r) => r.historyLength));
    return {
      pollIntervalMs,
      router: {
        polls: pollsDone,
        pollsPerRun: options.pollsPerRun,
        runs: routerRuns.length,
        closedRuns: closed.length,
        eventsPerClosedRun: closed.map((r) => r.historyLength),
        maxEventsPerRun: Math.max(0, ...routerRuns.map((r) => r.historyLength)),
        totalEvents: routerRuns.reduce((sum, r) => sum + r.historyLength, 0),
        eventsPerPoll,
        eventsPerRead,
        readsPerPoll: quietPolls ? reads / quietPolls : NaN,
        eventsPerRunFixed,
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
        routerRuns: Math.ceil(MONTH_POLLS / DEFAULT_POLLS_PER_RUN),
        routerEventsPerRun,
        routerEvents: Math.ceil(MONTH_POLLS / DEFAULT_POLLS_PER_RUN) * routerEventsPerRun,
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
