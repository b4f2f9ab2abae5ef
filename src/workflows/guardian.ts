import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { durationMs } from '../plan/duration';
import { describeFailure } from '../shared/failures';
import { ledgerAt, openLedger, switchTo } from '../shared/ledger';
import { planRef } from '../shared/plan-slices';
import { GUARDED_INSTANCE } from '../shared/search-attributes';
import { IndexedKeyword } from './indexed';
import {
  GUARDIAN_SIGNAL_DESCRIPTIONS,
  NOTICE_KINDS,
  guardianStatusQuery,
  goldenImageSignal,
  interruptionSignal,
  INSTANCE_ID,
  queueHealthSignal,
  retargetProblem,
  retargetUpdate,
  stopGuardingSignal,
  type GuardEvent,
  type GuardianCarried,
  type GuardianInput,
  type GuardianStatus,
  type InterruptionNotice,
  type RetargetAnswer,
  type RetargetRequest,
} from '../shared/spot';
import { account, guardianMetrics } from './guardian/accounts';
import { detailsOf } from './guardian/details';
import { replace, type Guarded, type RoundTrigger } from './guardian/replace';
import { checkSpare, dropSpare, launchSpare, promoteSpare } from './guardian/spare';
import { REPLACEMENT, summarized } from './options';
import { joinSpotRouter } from './router';
import { newVersionWaiting, nextRun } from './versioning';
import { Notifier } from './notifier';
import { checkPlan, refuseInput, rethrowBug } from './input';

const quick = summarized(REPLACEMENT.quick, () => 'guardian');

/** Events kept in the status (the full list is in the run histories). */
const KEEP_EVENTS = 50;

/**
 * Keeps one migrated service alive on Spot: on an interruption notice it launches a replacement
 * from the golden image, starts the app, checks it, moves the Elastic IP, verifies from outside
 * and terminates the old instance; then it continues as new so its history stays small.
 */
export async function spotGuardian(input: GuardianInput): Promise<GuardianStatus> {
  const { plan } = input;
  // A guardian started by other means than a migration: its first run checks its input.
  if (!input.carried && patched('validate-input')) {
    checkPlan(plan);
    refuseInput(
      typeof input.instanceId === 'string' && INSTANCE_ID.test(input.instanceId)
        ? undefined
        : `instanceId ${JSON.stringify(input.instanceId)}: expected "i-…"`,
    );
  }
  const info = workflowInfo();
  const carried: GuardianCarried = input.carried ?? {
    replacements: 0,
    events: [],
    pending: [],
    ignored: [],
    runs: 0,
    routerReady: false,
  };
  /** Replacements start from its golden image; the migration sends it once made (until then: the plan's image). */
  const g: Guarded = {
    plan,
    guardianId: info.workflowId,
    firstRunId: info.firstExecutionRunId,
    carried,
    instanceId: input.instanceId,
    goldenImageId: input.goldenImageId,
  };
  /** The instance being replaced, while a round runs. */
  let replacingFrom: string | undefined;
  /** True while the round is a return to Spot: notices for the on-demand instance wait for its end. */
  let returning = false;
  /** Notices that came during a round, for instances other than the one it replaces: decided after it. */
  const deferred: InterruptionNotice[] = [];
  let router: GuardianStatus['router'];
  let stopRequested = false;
  /** A later migration is handing its instance over: rounds wait for it (they might move the Elastic IP). */
  let handingOver = false;
  /** Set when this run has done what it is for: the next run (continue-as-new) takes over. */
  let roundDone = false;
  const pending: InterruptionNotice[] = [...carried.pending];

  const status = (): GuardianStatus => ({
    workflowId: g.guardianId,
    planName: plan.name,
    region: plan.region,
    instanceId: g.instanceId,
    goldenImageId: g.goldenImageId,
    state: stopRequested ? 'stopped' : replacingFrom ? 'replacing' : 'guarding',
    replacements: carried.replacements,
    run: carried.runs + 1,
    events: carried.events,
    pending,
    ignored: carried.ignored,
    ...(router ? { router } : {}),
    ...(carried.queue ? { queue: carried.queue } : {}),
    ...(carried.market ? { market: carried.market } : {}),
    ...(carried.nextSpotTryAt ? { nextSpotTryAt: carried.nextSpotTryAt } : {}),
    ledger: ledgerAt(book, Date.now()),
    ledgerBook: book,
    ...(warm ? { standby: 'warm' as const, spareEvents: carried.spareEvents ?? [] } : {}),
    ...(carried.spare ? { spare: carried.spare } : {}),
    ...(carried.retargets ? { retargets: carried.retargets } : {}),
  });
  const notifier = new Notifier({ workflowId: g.guardianId, planName: plan.name, region: plan.region });
  // The `GuardedInstance` search attribute follows the instance, where the run was started with
  // it (so the namespace has it), and not in runs that began before.
  const indexedInstance = new IndexedKeyword(GUARDED_INSTANCE);
  const refreshDetails = () => {
    setCurrentDetails(detailsOf(status()));
    indexedInstance.set(g.instanceId);
  };
  const ignore = (reason: string, notice?: unknown) => {
    carried.ignored.push({ at: new Date().toISOString(), reason, notice });
    if (carried.ignored.length > KEEP_EVENTS) carried.ignored.splice(0, carried.ignored.length - KEEP_EVENTS);
    log.info('ignored a notice', { reason });
  };

  // On on-demand (a fallback), Spot is tried again every spot.revertAfter.
  const revertMs = durationMs(plan.spot.revertAfter ?? '1h');
  const backToSpot = plan.target.market === 'spot' && revertMs > 0 && patched('back-to-spot');
  if (backToSpot) {
    carried.market ??= input.market;
    if (carried.market === 'on-demand' && !carried.nextSpotTryAt) carried.nextSpotTryAt = isoIn(revertMs);
  }

  // The ledger: from the first run of this code on, the instance guarded now is its open segment.
  carried.ledger ??= openLedger({
    instanceId: g.instanceId,
    since: new Date().toISOString(),
    ...((carried.market ?? input.market) ? { market: carried.market ?? input.market } : {}),
  });
  const book = carried.ledger;
  const metrics = guardianMetrics();

  // spot.standby: warm keeps a checked spare from the golden image, worked on beside the main
  // loop, so a notice for the serving instance is never kept waiting by it.
  const warm = plan.target.market === 'spot' && plan.spot.standby === 'warm' && patched('warm-spare');
  const spareCheckMs = durationMs(plan.spot.standbyCheckInterval ?? '5m');
  let spareTask: { kind: 'launch' | 'check'; scope: CancellationScope; done: Promise<void> } | undefined;
  /** Set when spare work ends: the main loop then works out when it is due next. */
  let spareTaskEnded = false;
  /** The spare being made, once launched; and the ones a notice named meanwhile. */
  let spareLaunching: string | undefined;
  const lostSpares = new Set<string>();
  /** When spare work is due next: a launch (once the golden image is known) or a check. */
  const spareDueAt = (): number | undefined => {
    if (!warm || spareTask || stopRequested) return undefined;
    if (carried.spare) return Date.parse(carried.spare.checkedAt) + spareCheckMs;
    if (!g.goldenImageId) return undefined;
    return carried.nextSpareAt ? Date.parse(carried.nextSpareAt) : Date.now();
  };
  const startSpareTask = (): void => {
    const kind = carried.spare ? 'check' : 'launch';
    const scope = new CancellationScope();
    const work =
      kind === 'check'
        ? () => checkSpare(g, book)
        : () =>
            launchSpare(g, book, spareCheckMs, {
              onLaunched: (id) => (spareLaunching = id),
              lost: (id) => lostSpares.has(id),
            });
    const done = scope
      .run(work)
      .catch((err: unknown) => {
        if (isCancellation(err)) return;
        rethrowBug(err, `spare ${kind}`);
        log.error('spare work failed', { kind, error: describeFailure(err) });
      })
      .finally(() => {
        spareTask = undefined;
        spareLaunching = undefined;
        spareTaskEnded = true;
        refreshDetails();
      });
    spareTask = { kind, scope, done };
  };
  /** Waits for the spare work in flight; a check is cancelled (a launch runs to its end). */
  const settleSpareTask = async (): Promise<void> => {
    const task = spareTask;
    if (!task) return;
    if (task.kind === 'check') task.scope.cancel();
    await task.done;
  };

  setHandler(guardianStatusQuery, status, { description: 'The guarded instance, replacements and recent events.' });
  setHandler(
    interruptionSignal,
    (notice) => {
      if (
        !notice ||
        typeof notice !== 'object' ||
        typeof notice.instanceId !== 'string' ||
        !NOTICE_KINDS.includes(notice.kind)
      ) {
        ignore(`invalid payload: expected {"instanceId": "i-…", "kind": one of ${NOTICE_KINDS.join(', ')}}`, notice);
        return;
      }
      const stamped = { ...notice, at: notice.at ?? new Date().toISOString() };
      if (replacingFrom) {
        if (notice.instanceId === replacingFrom && !returning)
          return ignore(`duplicate notice for ${notice.instanceId}: already being replaced`, notice);
        // Perhaps for the replacement itself, which may be interrupted before the round ends.
        if (!deferred.some((d) => d.instanceId === notice.instanceId)) deferred.push(stamped);
        return;
      }
      if (warm && notice.instanceId === spareLaunching) {
        // The spare being made: it is not kept once it is up.
        lostSpares.add(notice.instanceId);
        return;
      }
      if (notice.instanceId !== g.instanceId && !(warm && notice.instanceId === carried.spare?.instanceId))
        return ignore(`${notice.instanceId} is not the guarded instance (${g.instanceId})`, notice);
      if (pending.some((p) => p.instanceId === notice.instanceId))
        return ignore(`duplicate notice for ${notice.instanceId}: already being replaced`, notice);
      pending.push(stamped);
    },
    { description: GUARDIAN_SIGNAL_DESCRIPTIONS.interruption },
  );
  setHandler(
    goldenImageSignal,
    (payload) => {
      const imageId = (payload as { imageId?: unknown } | undefined)?.imageId;
      if (typeof imageId !== 'string' || !/^ami-[0-9a-f]+$/.test(imageId))
        return ignore('invalid golden-image payload: expected {"imageId": "ami-…"}', payload);
      g.goldenImageId = imageId;
      refreshDetails();
    },
    { description: GUARDIAN_SIGNAL_DESCRIPTIONS['golden-image'] },
  );
  setHandler(
    queueHealthSignal,
    (health) => {
      if (
        !health ||
        typeof health !== 'object' ||
        typeof health.queueUrl !== 'string' ||
        typeof health.ok !== 'boolean'
      )
        return ignore('invalid queue-health payload: expected {"queueUrl": "…", "ok": true|false}', health);
      const wasOk = carried.queue?.ok !== false;
      carried.queue = health;
      if (!health.ok) log.warn('the interruption queue cannot be read', { ...health });
      if (!health.ok && wasOk)
        notifier.send({
          kind: 'router-unhealthy',
          error: `the router cannot read the interruption queue ${health.queueUrl}${'error' in health && health.error ? `: ${String(health.error)}` : ''}`,
        });
      refreshDetails();
    },
    { description: GUARDIAN_SIGNAL_DESCRIPTIONS['queue-health'] },
  );
  setHandler(
    stopGuardingSignal,
    () => {
      stopRequested = true;
    },
    { description: GUARDIAN_SIGNAL_DESCRIPTIONS.stop },
  );
  setHandler(retargetUpdate, (request) => handOver(request), {
    validator: (request) => {
      const problem = retargetProblem(request);
      if (problem) throw new Error(problem);
      if (stopRequested) throw new Error('the guardian is stopping: start a new one for the instance');
    },
    description:
      'A later migration of the plan hands its new instance over (it holds the Elastic IP): the guardian guards it instead. Payload: {"instanceId": "i-…", "migrationWorkflowId": "migrate-…"}',
  });

  if (!carried.routerReady) {
    // The golden images of the plan beyond spot.keepGoldenImages go (never the one in use).
    if (input.goldenImageId && patched('prune-golden-images')) {
      await quick
        .pruneGoldenImages({ plan: planRef(plan), keep: plan.spot.keepGoldenImages ?? 3, inUse: input.goldenImageId })
        .catch((err: Error) => log.warn('could not prune golden images', { error: err.message }));
    }
    await quick.markGuarded({ region: plan.region, instanceId: g.instanceId, guardianId: g.guardianId });
    await ensureRouter(true);
    carried.routerReady = true;
  } else if (patched('router-every-run')) {
    // A router that failed, or was terminated, since the last run is started again.
    await ensureRouter(false);
  }
  refreshDetails();

  // An idle guardian has no timer of its own: it wakes every spot.wakeEvery (a day) for a fresh
  // run, which makes sure the router runs and moves onto new code (runs that began before sleep on).
  const wakeAt = patched('daily-wake') ? Date.now() + durationMs(plan.spot.wakeEvery ?? '1d') : Infinity;
  for (;;) {
    const wantsNewRun = () =>
      roundDone || workflowInfo().continueAsNewSuggested || newVersionWaiting() || Date.now() >= wakeAt;
    spareTaskEnded = false;
    const woken = () =>
      stopRequested ||
      (!handingOver && pending.length > 0) ||
      spareTaskEnded ||
      (wantsNewRun() && spareTask?.kind !== 'launch') ||
      (spareDueAt() ?? Infinity) <= Date.now();
    const spotTryAt = backToSpot && carried.market === 'on-demand' ? carried.nextSpotTryAt : undefined;
    const dueAt = Math.min(spotTryAt ? Date.parse(spotTryAt) : Infinity, spareDueAt() ?? Infinity, wakeAt);
    if (dueAt === Infinity) await condition(woken);
    else if (dueAt > Date.now())
      await condition(woken, dueAt - Date.now(), {
        summary: `guarding ${g.instanceId} until ${dueAt === wakeAt ? 'the next run' : dueAt === spareDueAt() ? 'the warm spare is due' : 'Spot is tried again'}`,
      });
    if (stopRequested) break;
    const notice = handingOver ? undefined : pending.shift();
    if (notice && warm && notice.instanceId === carried.spare?.instanceId && notice.instanceId !== g.instanceId) {
      // The spare is going: a new one is made.
      await settleSpareTask();
      await dropSpare(g, book, 'lost', `${notice.kind} notice`);
      roundDone = true;
    } else if (notice) {
      let event: GuardEvent | undefined;
      if (warm && carried.spare) {
        await settleSpareTask();
        event = await runRound(notice, {}, () => promoteSpare(g, book, { ...notice, at: notice.at }));
      }
      event ??= await runRound(notice);
      roundDone = true;
      if (event.outcome === 'failed') {
        // Capacity or the app may come back: try again spot.retryRoundAfter later, unless told to stop.
        const after = plan.spot.retryRoundAfter ?? '1m';
        await condition(() => stopRequested, durationMs(after), {
          summary: `replacement of ${notice.instanceId} failed: trying again in ${after}`,
        });
        if (!pending.some((p) => p.instanceId === notice.instanceId)) pending.unshift(notice);
      }
    } else if (spotTryAt !== undefined && Date.now() >= Date.parse(spotTryAt)) {
      // The on-demand instance serves throughout; it goes only once a Spot one took the address.
      returning = true;
      const event = await runRound({ kind: 'back-to-spot', source: 'guardian' }, { backToSpot: true });
      returning = false;
      if (event?.outcome === 'failed') carried.nextSpotTryAt = isoIn(revertMs);
      roundDone = true;
    } else if ((spareDueAt() ?? Infinity) <= Date.now()) {
      startSpareTask();
      refreshDetails();
    }
    // Every replacement (or a long quiet life) starts a fresh run: the history stays small. A
    // spare being launched finishes in this run first.
    if (wantsNewRun() && spareTask?.kind !== 'launch') {
      await settleSpareTask();
      await notifier.settle();
      await condition(allHandlersFinished);
      if (stopRequested) break;
      return nextRun<typeof spotGuardian>({
        ...input,
        instanceId: g.instanceId,
        goldenImageId: g.goldenImageId,
        carried: { ...carried, pending: [...pending], runs: carried.runs + 1 },
      });
    }
  }
  if (warm) {
    // Nothing is replaced any more: the spare would serve nobody.
    await settleSpareTask();
    await dropSpare(g, book, 'stopped');
  }
  refreshDetails();
  await notifier.settle();
  return status();

  /**
   * Makes sure the region's router runs and knows this guardian. In later runs a failure is
   * recorded in the status, never fatal: the guardian still takes notices sent to it directly.
   */
  async function ensureRouter(first: boolean): Promise<void> {
    try {
      await joinSpotRouter(plan, g.guardianId);
      router = { ok: true, at: new Date().toISOString() };
    } catch (err) {
      router = { ok: false, at: new Date().toISOString(), error: describeFailure(err) };
      log.error('could not make sure the router runs', { error: router.error });
      notifier.send({ kind: 'router-unhealthy', error: `the region's router could not be started: ${router.error}` });
      if (first && !patched('router-every-run')) throw err;
    }
  }

  /**
   * A later migration of the plan completed onto `request.instanceId`: once the Elastic IP is
   * checked to be on it, that instance is guarded (tagged, in the ledger) instead of the one
   * before, whose notices no longer count; a spare of the old golden image goes. A round in
   * flight ends first, and none starts meanwhile. The next run guards the new instance.
   */
  async function handOver(request: RetargetRequest): Promise<RetargetAnswer> {
    const answer = (previousInstanceId: string, changed: boolean): RetargetAnswer => ({
      guardianId: g.guardianId,
      instanceId: g.instanceId,
      previousInstanceId,
      changed,
    });
    await condition(() => !replacingFrom && !handingOver);
    const previous = g.instanceId;
    if (request.instanceId === previous) return answer(previous, false);
    handingOver = true;
    try {
      const address = await quick.describeAddress({ region: plan.region, allocationId: plan.elasticIp.allocationId });
      if (address.instanceId !== request.instanceId)
        throw ApplicationFailure.create({
          type: 'NotBehindElasticIp',
          nonRetryable: true,
          message: `the Elastic IP ${address.publicIp} is on ${address.instanceId ?? 'no instance'}, not on ${request.instanceId}: ${g.guardianId} keeps guarding ${previous}`,
        });
      await quick.markGuarded({ region: plan.region, instanceId: request.instanceId, guardianId: g.guardianId });
      if (carried.spare) {
        // Made from the golden image of the instance before: not a stand-in for the new one.
        await settleSpareTask();
        await dropSpare(g, book, 'stopped', `${request.instanceId} was handed over by ${request.migrationWorkflowId}`);
      }
      const at = new Date().toISOString();
      g.instanceId = request.instanceId;
      // Until the migration sends its golden image, replacements start from the plan's image.
      g.goldenImageId = request.goldenImageId;
      if (request.market) carried.market = request.market;
      if (backToSpot) carried.nextSpotTryAt = carried.market === 'on-demand' ? isoIn(revertMs) : undefined;
      switchTo(book, {
        instanceId: request.instanceId,
        since: at,
        ...(request.market ? { market: request.market } : {}),
      });
      for (const n of pending.filter((p) => p.instanceId === previous)) {
        pending.splice(pending.indexOf(n), 1);
        ignore(`${previous} was handed over to ${request.instanceId} by ${request.migrationWorkflowId}`, n);
      }
      const retargets = (carried.retargets ??= []);
      retargets.push({ at, from: previous, to: request.instanceId, migrationWorkflowId: request.migrationWorkflowId });
      if (retargets.length > KEEP_EVENTS) retargets.splice(0, retargets.length - KEEP_EVENTS);
      log.info('guarding the instance a later migration handed over', { from: previous, to: request.instanceId });
      roundDone = true;
      refreshDetails();
      return answer(previous, true);
    } finally {
      handingOver = false;
    }
  }

  /** One round, recorded; the market the guarded instance is on afterwards. */
  async function runRound(trigger: RoundTrigger, options?: { backToSpot?: boolean }): Promise<GuardEvent>;
  async function runRound(
    trigger: RoundTrigger,
    options: { backToSpot?: boolean },
    how: () => Promise<GuardEvent | undefined>,
  ): Promise<GuardEvent | undefined>;
  async function runRound(
    trigger: RoundTrigger,
    options: { backToSpot?: boolean } = {},
    how: () => Promise<GuardEvent | undefined> = () =>
      replace(g, { ...trigger, at: trigger.at ?? new Date().toISOString() }, options),
  ): Promise<GuardEvent | undefined> {
    replacingFrom = g.instanceId;
    refreshDetails();
    const marketBefore = carried.market ?? plan.target.market;
    if (trigger.kind !== 'back-to-spot')
      notifier.send({
        kind: 'spot-notice',
        instanceId: g.instanceId,
        noticeKind: trigger.kind,
        ...(trigger.source ? { source: trigger.source } : {}),
      });
    const event = await how();
    replacingFrom = undefined;
    settleDeferred();
    if (!event) return undefined;
    notifier.send(
      event.outcome === 'replaced' ? { kind: 'replaced', round: event } : { kind: 'replacement-failed', round: event },
    );
    if (event.outcome === 'replaced' && event.newInstanceId && event.market !== marketBefore) {
      const moved = {
        instanceId: event.newInstanceId,
        ...(event.instanceType ? { instanceType: event.instanceType } : {}),
      };
      if (event.market === 'on-demand') notifier.send({ kind: 'on-demand-fallback', ...moved });
      else if (event.market === 'spot') notifier.send({ kind: 'back-to-spot', ...moved });
    }
    carried.events.push(event);
    if (carried.events.length > KEEP_EVENTS) carried.events.splice(0, carried.events.length - KEEP_EVENTS);
    account(book, g, metrics, event);
    if (backToSpot && event.outcome === 'replaced' && (event.market === 'spot' || event.market === 'on-demand')) {
      carried.market = event.market;
      carried.nextSpotTryAt = event.market === 'on-demand' ? isoIn(revertMs) : undefined;
    }
    refreshDetails();
    return event;
  }

  /** Notices that came during the round: one for the instance now guarded is acted on next (runs that began before ignore them). */
  function settleDeferred(): void {
    const keep = deferred.length > 0 && patched('notices-during-replacement');
    for (const d of deferred.splice(0)) {
      const ours = d.instanceId === g.instanceId || (warm && d.instanceId === carried.spare?.instanceId);
      if (keep && ours && !pending.some((p) => p.instanceId === d.instanceId)) pending.push(d);
      else ignore(`${d.instanceId} is not the guarded instance (${g.instanceId})`, d);
    }
  }
}

const isoIn = (ms: number): string => new Date(Date.now() + ms).toISOString();
