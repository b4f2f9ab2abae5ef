import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { durationMs } from '../plan/duration';
import { checkHost } from '../shared/check-host';
import { checksSpec } from '../shared/checks';
import { launchSpec } from '../shared/launch';
import { describeFailure } from '../shared/failures';
import {
  GUARDIAN_SIGNAL_DESCRIPTIONS,
  NOTICE_KINDS,
  guardianStatusQuery,
  goldenImageSignal,
  interruptionSignal,
  stopGuardingSignal,
  type GuardEvent,
  type GuardianCarried,
  type GuardianInput,
  type GuardianStatus,
  type InterruptionNotice,
} from '../shared/spot';
import { TAG_GUARDED } from '../shared/constants';
import { checksOptions, REPLACEMENT } from './options';
import { joinSpotRouter } from './router';
import { imagePlan, planRef } from '../shared/plan-slices';

const quick = proxyActivities<Activities>(REPLACEMENT.quick);
const long = proxyActivities<Activities>(REPLACEMENT.long);
const remote = proxyActivities<Activities>(REPLACEMENT.remote);

/** Events kept in the status (the full list is in the run histories). */
const KEEP_EVENTS = 50;
/** Tries of one replacement before the guardian waits for the next notice or poll. */
const REPLACEMENT_TRIES = 3;

/**
 * Keeps one migrated service alive on Spot: on an interruption notice it launches a replacement
 * from the golden image, starts the app, checks it, moves the Elastic IP, verifies from outside
 * and terminates the old instance; then it continues as new so its history stays small.
 */
export async function spotGuardian(input: GuardianInput): Promise<GuardianStatus> {
  const { plan } = input;
  const checks = proxyActivities<Activities>(checksOptions(plan.checks, '5 minutes'));
  const info = workflowInfo();
  const guardianId = info.workflowId;
  const carried: GuardianCarried = input.carried ?? {
    replacements: 0,
    events: [],
    pending: [],
    ignored: [],
    runs: 0,
    routerReady: false,
  };
  let instanceId = input.instanceId;
  /** Replacements start from it; the migration sends it once made (until then: the plan's image). */
  let goldenImageId = input.goldenImageId;
  let replacing = false;
  let stopRequested = false;
  const pending: InterruptionNotice[] = [...carried.pending];

  const status = (): GuardianStatus => ({
    workflowId: guardianId,
    planName: plan.name,
    region: plan.region,
    instanceId,
    goldenImageId,
    state: stopRequested ? 'stopped' : replacing ? 'replacing' : 'guarding',
    replacements: carried.replacements,
    run: carried.runs + 1,
    events: carried.events,
    pending,
    ignored: carried.ignored,
  });
  const refreshDetails = () => {
    const recent = carried.events.slice(-5).reverse();
    setCurrentDetails(
      `**${plan.name}** on \`${instanceId}\`: ${status().state}, ${carried.replacements} replacement(s)\n\n` +
        (recent.length
          ? `| notice | kind | old | new | outcome | recovery |\n|---|---|---|---|---|---|\n${recent
              .map(
                (e) =>
                  `| ${e.noticeAt} | ${e.kind} | ${e.oldInstanceId} | ${e.newInstanceId ?? '–'} | ${e.outcome} | ${e.recoveryMs !== undefined ? `${(e.recoveryMs / 1000).toFixed(1)} s` : '–'} |`,
              )
              .join('\n')}`
          : 'No interruption yet.'),
    );
  };
  const ignore = (reason: string, notice?: unknown) => {
    carried.ignored.push({ at: new Date().toISOString(), reason, notice });
    if (carried.ignored.length > KEEP_EVENTS) carried.ignored.splice(0, carried.ignored.length - KEEP_EVENTS);
    log.info('ignored a notice', { reason });
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
      if (notice.instanceId !== instanceId)
        return ignore(`${notice.instanceId} is not the guarded instance (${instanceId})`, notice);
      if (replacing || pending.some((p) => p.instanceId === notice.instanceId))
        return ignore(`duplicate notice for ${notice.instanceId}: already being replaced`, notice);
      pending.push({ ...notice, at: notice.at ?? new Date().toISOString() });
    },
    { description: GUARDIAN_SIGNAL_DESCRIPTIONS.interruption },
  );
  setHandler(
    goldenImageSignal,
    (payload) => {
      const imageId = (payload as { imageId?: unknown } | undefined)?.imageId;
      if (typeof imageId !== 'string' || !/^ami-[0-9a-f]+$/.test(imageId))
        return ignore('invalid golden-image payload: expected {"imageId": "ami-…"}', payload);
      goldenImageId = imageId;
      refreshDetails();
    },
    { description: GUARDIAN_SIGNAL_DESCRIPTIONS['golden-image'] },
  );
  setHandler(
    stopGuardingSignal,
    () => {
      stopRequested = true;
    },
    { description: GUARDIAN_SIGNAL_DESCRIPTIONS.stop },
  );

  if (!carried.routerReady) {
    // The golden images of the plan beyond spot.keepGoldenImages go (never the one in use).
    if (input.goldenImageId && patched('prune-golden-images')) {
      await quick
        .pruneGoldenImages({ plan: planRef(plan), keep: plan.spot.keepGoldenImages ?? 3, inUse: input.goldenImageId })
        .catch((err: Error) => log.warn('could not prune golden images', { error: err.message }));
    }
    await quick.markGuarded({ region: plan.region, instanceId, guardianId });
    await joinRouter();
    carried.routerReady = true;
  }
  refreshDetails();

  for (;;) {
    await condition(() => pending.length > 0 || stopRequested || workflowInfo().continueAsNewSuggested);
    if (stopRequested) break;
    const notice = pending.shift();
    if (notice) {
      replacing = true;
      refreshDetails();
      const event = await replace(notice);
      replacing = false;
      carried.events.push(event);
      if (carried.events.length > KEEP_EVENTS) carried.events.splice(0, carried.events.length - KEEP_EVENTS);
      refreshDetails();
      if (event.outcome === 'failed') {
        // Capacity or the app may come back: try again after a pause, unless told to stop.
        await condition(() => stopRequested, '1 minute');
        if (!pending.some((p) => p.instanceId === notice.instanceId)) pending.unshift(notice);
      }
    }
    // Every replacement (or a long quiet life) starts a fresh run: the history stays small.
    if (notice || workflowInfo().continueAsNewSuggested) {
      await condition(allHandlersFinished);
      if (stopRequested) break;
      return continueAsNew<typeof spotGuardian>({
        ...input,
        instanceId,
        goldenImageId,
        carried: { ...carried, pending: [...pending], runs: carried.runs + 1 },
      });
    }
  }
  refreshDetails();
  return status();

  /** Starts the region's router (first guardian) or registers with the running one. */
  function joinRouter(): Promise<void> {
    return joinSpotRouter(plan, guardianId);
  }

  async function replace(notice: InterruptionNotice): Promise<GuardEvent> {
    const noticeAt = notice.at ?? new Date().toISOString();
    const oldInstanceId = instanceId;
    let lastError = '';
    for (let attempt = 1; attempt <= REPLACEMENT_TRIES; attempt++) {
      // A step of its own for every launch, failed rounds included, in this chain of runs only: a
      // failed try's ClientTokens would only replay its terminated instances (EC2 keeps them for
      // 24 hours or more). Runs that began before keep their step names.
      const perLaunch = patched('launch-per-run');
      if (perLaunch) carried.launches = (carried.launches ?? carried.replacements) + 1;
      const step = perLaunch ? `replace-${carried.launches}` : `replace-${carried.replacements + 1}-try-${attempt}`;
      const runId = perLaunch ? info.firstExecutionRunId : undefined;
      const event: GuardEvent = {
        kind: notice.kind,
        source: notice.source,
        oldInstanceId,
        noticeAt,
        outcome: 'failed',
      };
      try {
        const launched = await long.launchInstance({
          spec: launchSpec(plan),
          workflowId: guardianId,
          runId,
          step,
          imageId: goldenImageId ?? (await quick.resolveImage({ plan: imagePlan(plan) })),
          tags: { [TAG_GUARDED]: guardianId },
        });
        Object.assign(event, {
          newInstanceId: launched.instanceId,
          instanceType: launched.instanceType,
          market: launched.market,
          launchedAt: new Date().toISOString(),
        });
        const host = checkHost(plan.checks, launched.publicIp);
        if (!host)
          throw ApplicationFailure.nonRetryable(
            `replacement ${launched.instanceId} has no public address`,
            'NoPublicAddress',
          );
        // Without a golden image the replacement is a bare image: every remote step runs.
        const steps: [string, string[]][] = goldenImageId
          ? [['start', plan.remote.start]]
          : [
              ['setup', plan.remote.setup],
              ['source', plan.remote.deploy],
              ['build', plan.remote.build],
              ['start', plan.remote.start],
            ];
        for (const [label, commands] of steps) {
          if (commands.length)
            await remote.runRemote({
              region: plan.region,
              instanceId: launched.instanceId,
              label,
              commands,
              timeoutSeconds: 3600,
            });
        }
        await checks.checkServices({ spec: checksSpec(plan), instanceId: launched.instanceId, host, scope: 'all' });
        event.healthyAt = new Date().toISOString();
        const moved = await quick.associateAddress({
          region: plan.region,
          allocationId: plan.elasticIp.allocationId,
          instanceId: launched.instanceId,
        });
        event.eipMovedAt = new Date().toISOString();
        instanceId = launched.instanceId;
        carried.replacements++;
        await checks.checkServices({
          spec: checksSpec(plan),
          instanceId: launched.instanceId,
          host: checkHost(plan.checks, moved.publicIp),
          scope: 'public',
        });
        event.recoveryMs = Date.parse(event.eipMovedAt) - Date.parse(noticeAt);
        try {
          await long.terminateInstance({ region: plan.region, instanceId: oldInstanceId });
          event.oldTerminatedAt = new Date().toISOString();
        } catch (err) {
          log.warn('could not terminate the old instance', { oldInstanceId, error: describeFailure(err) });
        }
        event.outcome = 'replaced';
        return event;
      } catch (err) {
        lastError = describeFailure(err);
        log.error('replacement failed', { attempt, error: lastError });
        // Never leave a half-made replacement running; the EIP stays where it is (moved only
        // once a replacement is healthy).
        if (instanceId === oldInstanceId)
          await quick
            .terminateLaunched({ region: plan.region, workflowId: guardianId, runId, step })
            .catch(() => undefined);
        else return { ...event, outcome: 'replaced', error: `verification after the move failed: ${lastError}` };
        if (attempt < REPLACEMENT_TRIES) await sleep(durationMs(plan.checks.interval));
      }
    }
    return { kind: notice.kind, source: notice.source, oldInstanceId, noticeAt, outcome: 'failed', error: lastError };
  }
}
