/**
 * The kinds of activity the workflows run, each with its timeouts and retries, so a call site
 * shows how it is retried: `quick.` (one AWS call), `long.` (a heartbeating wait: launch, image,
 * stop), `remote.` (an SSM step that may run an hour), `undo.` (a compensation, which must
 * finish) and `checks.` (a slow poll the plan paces, heartbeating). Workflow code only.
 */
import {
  ApplicationFailure,
  proxyActivities,
  type ActivityFunctionWithOptions,
  type ActivityInterfaceFor,
  type ActivityOptions,
  type RetryPolicy,
} from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { Activities } from '../activities';
import { durationMs } from '../plan/duration';
import type { Plan } from '../plan/schema';
import { ErrorType, NON_RETRYABLE_AWS_CODES } from '../shared/errors';
import { timeoutsProblem, type MigrationInput } from '../shared/migration';
import type { WatchTiming } from '../shared/spot';

/** Failure types no retry can fix: AWS codes that need a change, and our own verdicts. */
export const NON_RETRYABLE: readonly string[] = [
  ...NON_RETRYABLE_AWS_CODES,
  ErrorType.PreflightFailed,
  ErrorType.NotConfigured,
];

function retry(initialInterval: Duration, maximumInterval: Duration, maximumAttempts?: number): RetryPolicy {
  return {
    initialInterval,
    backoffCoefficient: 2,
    maximumInterval,
    ...(maximumAttempts === undefined ? {} : { maximumAttempts }),
    nonRetryableErrorTypes: [...NON_RETRYABLE],
  };
}

/** A migration's kinds: it has time, so it waits out throttling and capacity with backoff. */
export const MIGRATION = {
  /** Quick AWS calls: the SDK retries throttling inside a call; this is the outer loop. */
  quick: { startToCloseTimeout: '2 minutes', retry: retry('1s', '30s', 10) },
  /** Launches and image/stop waits: long, heartbeating, retried with backoff (capacity returns). */
  long: { startToCloseTimeout: '2 hours', heartbeatTimeout: '1 minute', retry: retry('2s', '2 minutes', 8) },
  /** Remote steps: they may take an hour (a docker build); a failing step gets two more tries. */
  remote: { startToCloseTimeout: '3 hours', heartbeatTimeout: '2 minutes', retry: retry('5s', '1 minute', 3) },
  /**
   * Compensations must finish. A call gets a few quick tries (no failure type stops them); then
   * the rollback shows the undo as failing and calls it again, for up to a day (UNDO_FOR_MS). No
   * heartbeat timeout: these (moving the Elastic IP back, the security-group changes) never
   * heartbeat, and one would time them out for nothing.
   */
  undo: {
    startToCloseTimeout: '30 minutes',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
  },
  /**
   * The watch over the new instance while a person decides: one activity for the whole wait
   * (the call sets its start-to-close timeout from approval.timeout), heartbeating, so a worker
   * that dies in it is noticed and the watch goes on elsewhere. A few tries, then the wait goes
   * on without it.
   */
  watch: { startToCloseTimeout: '1 day', heartbeatTimeout: '2 minutes', retry: retry('5s', '1 minute', 5) },
  /** Compensations that wait (start the old instance, terminate the new one, discard images): they heartbeat. */
  undoWaiting: {
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 },
  },
} satisfies Record<string, ActivityOptions>;

/** How long an undo is tried before the rollback gives up on it (shown as failing meanwhile). */
export const UNDO_FOR_MS = 24 * 3600_000;
/** The pause between two rounds of tries of a failing undo: doubling from 15 s up to 5 minutes. */
export const UNDO_PAUSE = { firstMs: 15_000, maxMs: 5 * 60_000 };

/** A guardian's kinds: a replacement races a two-minute warning, so timeouts are short and retries quick. */
export const REPLACEMENT = {
  quick: { startToCloseTimeout: '1 minute', retry: retry('500ms', '10s', 10) },
  long: { startToCloseTimeout: '30 minutes', heartbeatTimeout: '1 minute', retry: retry('1s', '30s', 6) },
  /** A replacement's remote steps: without a golden image they include the build, which SSM lets run an hour. */
  remote: { startToCloseTimeout: '75 minutes', heartbeatTimeout: '1 minute', retry: retry('1s', '30s', 6) },
  /** Advice on the critical path (the ranking of Spot pools): two quick tries, then the round goes on without it. */
  advice: { startToCloseTimeout: '20 seconds', retry: retry('500ms', '2s', 2) },
} satisfies Record<string, ActivityOptions>;

/** The router's kinds: it runs for months, so a call is retried until AWS answers. */
export const ROUTING = {
  quick: {
    startToCloseTimeout: '1 minute',
    retry: { ...retry('1s', '30s'), nonRetryableErrorTypes: [...NON_RETRYABLE_AWS_CODES] },
  },
  /**
   * A few tries, then the caller records the failure and goes on: the router's scan of guarded
   * instances (it scans again at its next poll) and a guardian making sure its router runs, so
   * an outage shows in their status instead of one call retried forever.
   */
  bounded: {
    startToCloseTimeout: '1 minute',
    retry: { ...retry('1s', '10s', 3), nonRetryableErrorTypes: [...NON_RETRYABLE_AWS_CODES] },
  },
  /**
   * A queue read waits up to 20 s and heartbeats: a worker that dies in one is noticed within
   * seconds. A few tries, then the reader records the failure and reads again after a pause.
   */
  reads: {
    startToCloseTimeout: '1 minute',
    heartbeatTimeout: '5 seconds',
    retry: { ...retry('1s', '10s', 3), nonRetryableErrorTypes: [...NON_RETRYABLE_AWS_CODES] },
  },
} satisfies Record<string, ActivityOptions>;

/**
 * The router's watch: it returns after `maxMs` at the latest, and heartbeats every `heartbeatMs`;
 * a worker that dies in it is noticed after two heartbeats missed, and the watch retried.
 */
export function watchOptions(timing: WatchTiming): ActivityOptions {
  return {
    startToCloseTimeout: timing.maxMs + 5 * 60_000,
    heartbeatTimeout: 2 * timing.heartbeatMs,
    retry: { ...retry('1s', '30s', 3), nonRetryableErrorTypes: [...NON_RETRYABLE_AWS_CODES] },
  };
}

/**
 * How soon a check's attempt on a worker that died is retried elsewhere. The checks heartbeat
 * while they wait on a service (every 5 s, or three times per timeout): without it, a killed
 * worker's attempt was noticed only at its start-to-close timeout, ten minutes in a migration.
 */
export const CHECKS_HEARTBEAT = '30s';

/** Checks retried as slow polls: the plan says how often and how far apart. */
export function checksOptions(
  checks: Pick<Plan['checks'], 'interval' | 'attempts'>,
  startToCloseTimeout: ActivityOptions['startToCloseTimeout'],
): ActivityOptions {
  return {
    startToCloseTimeout,
    heartbeatTimeout: CHECKS_HEARTBEAT,
    retry: {
      initialInterval: durationMs(checks.interval),
      backoffCoefficient: 1,
      maximumAttempts: checks.attempts,
      nonRetryableErrorTypes: [...NON_RETRYABLE],
    },
  };
}

/**
 * The activity kinds of one migration run. `timeouts.heartbeatSeconds` of the input replaces
 * the heartbeat timeout of the heartbeating kinds (the checks among them); `timeouts.activitySeconds`
 * the start-to-close timeout of the quick activities and of the checks.
 */
export function migrationActivities(
  timeouts: MigrationInput['timeouts'],
  checks: Plan['checks'],
  about: () => string = () => 'migration',
) {
  const problem = timeoutsProblem(timeouts);
  if (problem) throw ApplicationFailure.nonRetryable(problem, 'InvalidInput');
  const seconds = timeouts?.heartbeatSeconds;
  const beat = (o: ActivityOptions): ActivityOptions =>
    seconds === undefined ? o : { ...o, heartbeatTimeout: seconds * 1000 };
  const startToClose = (fallback: ActivityOptions['startToCloseTimeout']) =>
    timeouts?.activitySeconds === undefined ? fallback : timeouts.activitySeconds * 1000;
  const proxy = (o: ActivityOptions) => summarized(o, about);
  return {
    quick: proxy({ ...MIGRATION.quick, startToCloseTimeout: startToClose(MIGRATION.quick.startToCloseTimeout) }),
    long: proxy(beat(MIGRATION.long)),
    remote: proxy(beat(MIGRATION.remote)),
    undo: proxy(MIGRATION.undo),
    undoWaiting: proxy(beat(MIGRATION.undoWaiting)),
    watch: proxy(beat(MIGRATION.watch)),
    checks: proxy(beat(checksOptions(checks, startToClose('10 minutes')))),
  };
}

/**
 * Activities whose every call carries a summary for the Web UI's timeline: what it is for
 * (`about()` at the call: the migration's phase, the guardian's round) and, when its input
 * names one, the instance, such as `build on i-0abc`. Summaries are metadata of the
 * command, so runs that began before replay unchanged.
 */
export function summarized(options: ActivityOptions, about: () => string): ActivityInterfaceFor<Activities> {
  const proxy = proxyActivities<Activities>(options);
  return new Proxy(proxy, {
    get(target, name, receiver) {
      const fn = Reflect.get(target, name, receiver) as ActivityFunctionWithOptions<
        (...a: unknown[]) => Promise<unknown>
      >;
      if (typeof name !== 'string') return fn;
      const summary = (args: unknown[]) => activitySummary(about(), args[0]);
      const call = (...args: unknown[]) => fn.executeWithOptions({ summary: summary(args) }, args);
      call.executeWithOptions = (o: ActivityOptions, args: unknown[]) =>
        fn.executeWithOptions({ summary: summary(args), ...o }, args);
      return call;
    },
  });
}

/**
 * `<what for> on <instance>`, the instance when the input names one. The Web UI shows the
 * activity's type beside it (`runRemote • build on i-0abc`).
 */
export function activitySummary(about: string, input: unknown): string {
  const i = (input ?? {}) as { instanceId?: unknown; vm?: { instanceId?: unknown } };
  const instance =
    typeof i.instanceId === 'string'
      ? i.instanceId
      : typeof i.vm?.instanceId === 'string'
        ? i.vm.instanceId
        : undefined;
  return `${about}${instance ? ` on ${instance}` : ''}`;
}

export type MigrationActivities = ReturnType<typeof migrationActivities>;
