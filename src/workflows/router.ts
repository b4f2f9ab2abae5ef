import {
  allHandlersFinished,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  metricMeter,
  patched,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { GuardedInstance, QueueMessage } from '../shared/spot';
import { describeFailure } from '../shared/failures';
import {
  interruptionSignal,
  registerGuardianSignal,
  ROUTED_NOTICES_KEPT,
  routerStatusQuery,
  type RoutedNotice,
  stopRouterSignal,
  type InterruptionNotice,
  type RouterCarried,
  type RouterInput,
  type RouterStatus,
  type WatchResult,
  WATCH_DEFAULTS,
} from '../shared/spot';
import { isDead } from '../shared/instance-states';
import { ROUTING, summarized, watchOptions } from './options';
import { QueueBook } from './router/queues';
import { QueueReaders, readErrorCounter, tellOwners } from './router/readers';
import { newVersionWaiting, nextRun } from './versioning';
import { refuseInput, rethrowBug } from './input';

export { joinSpotRouter } from './router/join';

const acts = summarized(ROUTING.quick, () => 'router');
const scans = summarized(ROUTING.bounded, () => 'router');

/** Polls per run before continuing as new (each poll is a handful of events). */
const POLLS_PER_RUN = 500;
/** Watches per run before continuing as new (each watch is six events, and one more per notice). */
const WATCHES_PER_RUN = 200;

/**
 * The one reader of Spot events in a region: it reads the EventBridge → SQS queues, polls every
 * guarded instance with one DescribeInstances per interval, and signals the guardian that owns
 * the instance. A message is deleted only after its signal was accepted (or it can never be
 * delivered: unknown instance, malformed, guardian gone).
 *
 * Each queue has a reader of its own that long-polls it (ReceiveMessage with WaitTimeSeconds),
 * so a warning reaches its guardian the moment it arrives rather than at the next poll; the
 * DescribeInstances poll is the safety net for instances that go without a warning.
 */
export async function spotEventRouter(input: RouterInput): Promise<RouterStatus> {
  if (!input?.carried && patched('validate-input')) refuseInput(routerInputProblem(input));
  const region = input.region;
  const queues = new QueueBook(input.queueUrls, input.carried?.queues);
  let pollIntervalMs = input.pollIntervalMs;
  let stop = false;
  const carried: RouterCarried = input.carried ?? {
    known: {},
    runs: 0,
    stats: { polls: 0, describeCalls: 0, messagesRouted: 0, messagesDropped: 0, pollNotices: 0 },
  };
  const known = new Map(Object.entries(carried.known));
  const stats = carried.stats;
  let lastScanError = carried.lastScanError;
  let scanFailing = carried.scanFailing ?? false;
  const scanErrorCount = metricMeter.createCounter(
    'ec2_gpu_migration_router_scan_errors',
    'errors',
    'Scans of guarded instances that failed (the router tries again at the next poll)',
  );
  const readErrorCount = readErrorCounter();

  const status = (): RouterStatus => ({
    region,
    queueUrls: queues.urls,
    pollIntervalMs,
    guarded: known.size,
    run: carried.runs + 1,
    stats,
    queues: queues.list(),
    ...(lastScanError ? { lastScanError } : {}),
    ...(scanFailing ? { scanFailing } : {}),
    ...(carried.notices?.length ? { notices: carried.notices } : {}),
  });
  setHandler(routerStatusQuery, status, { description: 'Queues, poll interval, guarded instances and counters.' });
  setHandler(
    registerGuardianSignal,
    async (r) => {
      if (!r || typeof r !== 'object') return;
      const owner = typeof r.guardianId === 'string' ? r.guardianId : undefined;
      if (typeof r.queueUrl === 'string' && r.queueUrl) await tellOwners(queues.add(r.queueUrl, owner));
      if (typeof r.pollIntervalMs === 'number' && r.pollIntervalMs >= 1000)
        pollIntervalMs = Math.min(pollIntervalMs, r.pollIntervalMs);
    },
    { description: 'A guardian joins: {"guardianId", "queueUrl", "pollIntervalMs"}.' },
  );
  setHandler(
    stopRouterSignal,
    () => {
      stop = true;
    },
    { description: 'Stop routing Spot events for this region.' },
  );

  async function notify(guardianId: string, notice: InterruptionNotice): Promise<boolean> {
    try {
      await getExternalWorkflowHandle(guardianId).signal(interruptionSignal, notice);
      return true;
    } catch (err) {
      // The guardian is gone (stopped, or its service was retired): nothing to deliver to.
      log.warn('could not signal the guardian', {
        guardianId,
        instanceId: notice.instanceId,
        error: describeFailure(err),
      });
      return false;
    }
  }

  /**
   * Signals the owner of the instance. An instance changes hands once (the migration guards it
   * until its guardian starts and tags it): when the owner we knew is gone, the instance's tag
   * names the new one (runs that began before keep theirs).
   */
  async function deliver(instanceId: string, knownOwner: string, notice: InterruptionNotice): Promise<boolean> {
    if (await notify(knownOwner, notice)) return true;
    if (!patched('reroute-to-new-owner')) return false;
    await lookUp([instanceId]);
    const now = owner.get(instanceId);
    return now !== undefined && now !== knownOwner && (await notify(now, notice));
  }

  /** A death the poll saw (no notice came for it): a `stopped` notice for its owner. */
  async function deliverDeath(instanceId: string, guardianId: string): Promise<void> {
    stats.pollNotices++;
    await deliver(instanceId, guardianId, {
      instanceId,
      kind: 'stopped',
      source: 'poll',
      at: new Date().toISOString(),
    });
  }

  const pollsPerRun = input.pollsPerRun ?? POLLS_PER_RUN;
  const carryOver = (): RouterInput => ({
    region,
    queueUrls: queues.urls,
    pollIntervalMs,
    ...(input.pollsPerRun !== undefined ? { pollsPerRun: input.pollsPerRun } : {}),
    ...(input.watch ? { watch: input.watch } : {}),
    carried: {
      known: Object.fromEntries(known),
      runs: carried.runs + 1,
      stats,
      queues: queues.carried(),
      ...(lastScanError ? { lastScanError } : {}),
      ...(scanFailing ? { scanFailing } : {}),
      ...(carried.notices?.length ? { notices: carried.notices } : {}),
    },
  });
  const showDetails = () =>
    setCurrentDetails(
      `Spot events for **${region}**: ${known.size} guarded instance(s), ${queues.urls.length} queue(s), every ${pollIntervalMs / 1000} s.\n\n` +
        queues
          .list()
          .filter((q) => !q.ok)
          .map((q) => `**Queue failing** since ${q.since}: ${q.queueUrl}: ${q.error}\n\n`)
          .join('') +
        (lastScanError ? `Last failed scan ${lastScanError.at}: ${lastScanError.error}\n\n` : '') +
        JSON.stringify(stats),
    );

  // Guarded instance → its guardian, as the last scan saw them (dead ones included).
  let owner = new Map<string, string>();
  const isAlive = (g: GuardedInstance) => !isDead(g.state);
  /** A live instance with a guardian is watched by the polls (its death becomes a notice). */
  const remember = (g: GuardedInstance) => {
    if (g.guardianId && isAlive(g)) known.set(g.instanceId, g.guardianId);
  };
  let scanning: Promise<void> | undefined;
  /** One DescribeInstances for every guarded instance of the region; callers share one in flight. */
  const scan = (): Promise<void> => {
    scanning ??= (async () => {
      try {
        const guarded = await scans.scanGuarded({ region });
        stats.describeCalls++;
        owner = new Map(guarded.map((g) => [g.instanceId, g.guardianId]));
        // Instances that died since the last scan, with or without a warning.
        const alive = new Set(guarded.filter(isAlive).map((g) => g.instanceId));
        let deaths: [string, string][] = [...known.entries()].filter(([id]) => !alive.has(id));
        // A filtered listing is eventually consistent: one that leaves a known instance out is
        // no proof of its death. Ask for it by id first (runs that began before keep theirs).
        const missing = deaths.filter(([id]) => !owner.has(id)).map(([id]) => id);
        if (missing.length > 0 && patched('confirm-missing-by-id')) {
          const living = new Set(
            (await acts.confirmInstances({ region, instanceIds: missing })).filter(isAlive).map((g) => g.instanceId),
          );
          stats.missedByScan = (stats.missedByScan ?? 0) + living.size;
          deaths = deaths.filter(([id]) => !living.has(id));
        }
        for (const [instanceId] of deaths) known.delete(instanceId);
        for (const g of guarded) remember(g);
        await Promise.all(deaths.map(([instanceId, guardianId]) => deliverDeath(instanceId, guardianId)));
      } finally {
        scanning = undefined;
      }
    })();
    return scanning;
  };

  /** Instances launched since the last scan (a fresh replacement): their owners, by id. */
  async function lookUp(instanceIds: string[]): Promise<void> {
    for (const g of await acts.lookupGuarded({ region, instanceIds })) {
      owner.set(g.instanceId, g.guardianId);
      remember(g);
    }
  }

  /** Keeps what became of a message, for the status, before it is deleted. */
  function record(
    queueUrl: string,
    m: QueueMessage,
    what: { outcome: RoutedNotice['outcome']; reason?: string; guardianId?: unknown },
  ): void {
    const notices = (carried.notices ??= []);
    notices.push({
      messageId: m.messageId,
      queueUrl,
      ...(m.event.ok ? { instanceId: m.event.instanceId, kind: m.event.kind } : {}),
      outcome: what.outcome,
      ...(typeof what.guardianId === 'string' ? { guardianId: what.guardianId } : {}),
      ...(what.outcome === 'dropped'
        ? { reason: m.event.ok ? (what.reason ?? '') : `${what.reason ?? ''}: ${m.event.reason}` }
        : {}),
      at: new Date().toISOString(),
    });
    if (notices.length > ROUTED_NOTICES_KEPT) notices.splice(0, notices.length - ROUTED_NOTICES_KEPT);
  }

  async function route(queueUrl: string, messages: QueueMessage[]): Promise<void> {
    const unknown = [
      ...new Set(messages.flatMap((m) => (m.event.ok && !owner.has(m.event.instanceId) ? [m.event.instanceId] : []))),
    ];
    if (unknown.length) await lookUp(unknown);
    const done: string[] = [];
    await Promise.all(
      messages.map(async (m) => {
        // A message that can never be delivered is deleted, and said so.
        const drop = (level: 'info' | 'warn', why: string, meta: Record<string, unknown>) => {
          log[level](`dropped ${why}`, { messageId: m.messageId, ...meta });
          stats.messagesDropped++;
          record(queueUrl, m, { guardianId: meta.guardianId, outcome: 'dropped', reason: why });
          done.push(m.receiptHandle);
        };
        if (!m.event.ok) return drop('warn', 'a message that is no Spot event for us', { reason: m.event.reason });
        const guardianId = owner.get(m.event.instanceId);
        if (!guardianId)
          return drop('info', 'an event about an instance nobody guards', { instanceId: m.event.instanceId });
        const delivered = await deliver(m.event.instanceId, guardianId, {
          instanceId: m.event.instanceId,
          kind: m.event.kind,
          source: 'queue',
          at: m.event.time ?? new Date().toISOString(),
        });
        // The owner it went to, or the last one tried: a new owner found by the look-up after a
        // refusal (`reroute-to-new-owner`) stands in the map.
        const to = owner.get(m.event.instanceId) ?? guardianId;
        // Counted as routed only when a guardian took it; one that is gone cannot.
        if (!delivered)
          return drop('warn', 'an event its guardian could not take (the guardian is gone)', {
            instanceId: m.event.instanceId,
            guardianId: to,
          });
        stats.messagesRouted++;
        record(queueUrl, m, { outcome: 'routed', guardianId: to });
        done.push(m.receiptHandle);
      }),
    );
    if (done.length) await acts.deleteSpotEvents({ region, queueUrl, receiptHandles: done });
  }

  const readers = new QueueReaders({
    region,
    queues,
    stats,
    pollIntervalMs: () => pollIntervalMs,
    stopped: () => stop,
    route,
  });
  /**
   * Runs that began before: one scan activity and one timer per poll, one read activity per
   * queue read.
   */
  async function pollInWorkflow(): Promise<void> {
    readers.startNew();
    for (let polls = 0; !stop;) {
      try {
        await scan();
      } catch (err) {
        rethrowBug(err, 'scan');
        // A scan that fails (credentials, permissions, AWS down) must not end the router: every
        // guardian of the region depends on it. Runs that began before fail as they did.
        if (!patched('survive-scan-errors')) throw err;
        lastScanError = { at: new Date().toISOString(), error: describeFailure(err) };
        stats.scanErrors = (stats.scanErrors ?? 0) + 1;
        scanErrorCount.add(1, { region });
        log.error('the scan of guarded instances failed; trying again at the next poll', { region, ...lastScanError });
      }
      stats.polls++;
      polls++;
      showDetails();
      if (polls >= pollsPerRun || workflowInfo().continueAsNewSuggested || newVersionWaiting()) break;
      const due = Date.now() + pollIntervalMs;
      // A queue registered meanwhile gets its reader at once; the next poll stays on time.
      while (!stop && Date.now() < due) {
        await condition(() => stop || readers.hasNew, due - Date.now());
        readers.startNew();
      }
    }
    await readers.windDown();
  }

  /**
   * The polls and the queue reads run in one long-lived activity (watchRegion) that returns
   * only with news or after `watch.maxMs`; the workflow routes what it brings. A queue
   * registered meanwhile, or the stop, cancels the watch (it learns of it at its next heartbeat).
   */
  async function watchFromActivity(): Promise<void> {
    const timing = { ...WATCH_DEFAULTS, ...input.watch };
    const watcher = summarized(watchOptions(timing), () => 'router');
    const watchesPerRun = input.pollsPerRun ?? WATCHES_PER_RUN;
    for (let watches = 0; !stop;) {
      const queueUrls = queues.urls;
      const failingQueues = queues
        .list()
        .filter((q) => !q.ok)
        .map((q) => q.queueUrl);
      const scope = new CancellationScope();
      let settled = false;
      const watching = scope.run(() =>
        watcher.watchRegion({
          region,
          queueUrls,
          known: Object.fromEntries(known),
          pollIntervalMs,
          scanFailing,
          failingQueues,
          ...timing,
        }),
      );
      void watching.then(
        () => (settled = true),
        () => (settled = true),
      );
      await condition(() => settled || stop || queues.urls.length !== queueUrls.length);
      if (!settled) scope.cancel();
      let r: WatchResult;
      try {
        r = await watching;
      } catch (err) {
        if (isCancellation(err)) continue;
        rethrowBug(err, 'watch');
        stats.watchErrors = (stats.watchErrors ?? 0) + 1;
        log.error('the watch of the region failed; watching again after a pause', {
          region,
          error: describeFailure(err),
        });
        await condition(() => stop, pollIntervalMs);
        continue;
      }
      watches++;
      await absorb(r);
      scanFailing = r.scanFailing;
      showDetails();
      if (watches >= watchesPerRun || workflowInfo().continueAsNewSuggested || newVersionWaiting()) break;
    }
  }

  /** Takes in what a watch found: counters, queue health, the guarded instances, deaths, messages. */
  async function absorb(r: WatchResult): Promise<void> {
    stats.polls += r.scans;
    stats.describeCalls += r.describeCalls;
    stats.watches = (stats.watches ?? 0) + 1;
    stats.heartbeats = (stats.heartbeats ?? 0) + r.heartbeats;
    if (r.missedByScan) stats.missedByScan = (stats.missedByScan ?? 0) + r.missedByScan;
    if (r.scanErrors) {
      stats.scanErrors = (stats.scanErrors ?? 0) + r.scanErrors;
      scanErrorCount.add(r.scanErrors, { region });
    }
    if (r.lastScanError) {
      lastScanError = r.lastScanError;
      if (r.scanFailing)
        log.error('the scan of guarded instances fails; trying again at every poll', { region, ...lastScanError });
    }
    for (const q of r.queues) {
      if (q.readErrors) {
        stats.readErrors = (stats.readErrors ?? 0) + q.readErrors;
        readErrorCount.add(q.readErrors, { region });
      }
      if (!q.ok) {
        log.error('could not read the queue', { queueUrl: q.queueUrl, error: q.error });
        await tellOwners(queues.readFailed(q.queueUrl, q.error ?? 'unknown', q.at));
      } else if (q.reads > 0) await tellOwners(queues.readOk(q.queueUrl, q.at));
    }
    known.clear();
    for (const [instanceId, guardianId] of Object.entries(r.known)) {
      known.set(instanceId, guardianId);
      owner.set(instanceId, guardianId);
    }
    await Promise.all(r.deaths.map(({ instanceId, guardianId }) => deliverDeath(instanceId, guardianId)));
    for (const { queueUrl, messages } of r.messages) {
      try {
        await route(queueUrl, messages);
      } catch (err) {
        rethrowBug(err, 'routing');
        // What was not deleted comes back once its visibility timeout ends.
        log.error('could not route the messages', { queueUrl, error: describeFailure(err) });
      }
    }
  }

  if (patched('watch-in-activity')) await watchFromActivity();
  else await pollInWorkflow();
  await condition(allHandlersFinished);
  if (stop) return status();
  // A new version of the code takes over at the next run.
  return nextRun<typeof spotEventRouter>(carryOver());
}

/** What is wrong with a router's first input, or undefined. */
function routerInputProblem(input: RouterInput | undefined): string | undefined {
  if (!input || typeof input !== 'object') return 'expected {"region": "…", "queueUrls": […], "pollIntervalMs": N}';
  if (typeof input.region !== 'string' || !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(input.region))
    return `region ${JSON.stringify(input.region)}: expected an AWS region such as us-east-1`;
  if (!Array.isArray(input.queueUrls) || input.queueUrls.some((u) => typeof u !== 'string'))
    return `queueUrls ${JSON.stringify(input.queueUrls)}: expected a list of SQS queue URLs`;
  if (typeof input.pollIntervalMs !== 'number' || !(input.pollIntervalMs >= 1000))
    return `pollIntervalMs ${JSON.stringify(input.pollIntervalMs)}: expected a number of milliseconds, at least 1000`;
  return undefined;
}
