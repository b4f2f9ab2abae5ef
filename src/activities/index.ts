import { ApplicationFailure, Context } from '@temporalio/activity';
import type { AwsClients } from '../aws/clients';
import { createCheckActivities } from './checks';
import { createImageActivities } from './images';
import { createInstanceActivities } from './instances';
import { createNetworkActivities } from './network';
import { createNotifyActivities, type NotifySettings } from './notify';
import { createPoolActivities } from './pools';
import { createPreflight } from './preflight';
import { createPricingActivities } from './pricing';
import { createRemoteRunner } from './remote';
import { createRouterActivities } from './router';
import { createSpotActivities } from './spot';
import { createWatchActivities } from './watch';

export interface ActivityDeps {
  aws: AwsClients;
  /** HTTP for the app's checks (default: the global fetch). */
  http?: typeof fetch;
  /** Between polls of SSM commands and agents, and the first pause of the EC2 waiters (default 2 s). */
  pollIntervalMs?: number;
  /** Where notifications go (default: nowhere but the log). */
  notify?: NotifySettings;
}

/** Every activity, built once in the worker around its clients. Workflows import the type only. */
export function createActivities(deps: ActivityDeps) {
  const pollIntervalMs = deps.pollIntervalMs ?? 2_000;
  const remote = createRemoteRunner(deps.aws, { pollIntervalMs });
  const network = createNetworkActivities(deps.aws);
  return withAttemptOnFailure({
    preflight: createPreflight(deps.aws, network),
    ...createInstanceActivities(deps.aws, pollIntervalMs / 1000),
    runRemote: remote.runChecked,
    ...createCheckActivities(remote, deps.http ?? fetch),
    ...network,
    ...createImageActivities(deps.aws),
    ...createPricingActivities(deps.aws),
    ...createPoolActivities(deps.aws),
    ...createSpotActivities(deps.aws),
    ...createWatchActivities(deps.aws),
    ...createRouterActivities(),
    ...createNotifyActivities(deps.notify),
  });
}

/**
 * Failures carry the attempt they happened on (last element of `details`), so the workflow's
 * phase record can say how many attempts a phase took even when it failed.
 */
function withAttemptOnFailure<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const wrapped: Record<string, (...args: never[]) => Promise<unknown>> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        if (!(err instanceof ApplicationFailure)) throw err;
        throw ApplicationFailure.create({
          type: err.type ?? undefined,
          message: err.message,
          nonRetryable: err.nonRetryable ?? false,
          details: [...(err.details ?? []), { attempt: Context.current().info.attempt }],
          cause: err.cause,
          nextRetryDelay: err.nextRetryDelay ?? undefined,
        });
      }
    };
    Object.defineProperty(wrapped[name], 'name', { value: name });
  }
  return wrapped as T;
}

export type Activities = ReturnType<typeof createActivities>;
