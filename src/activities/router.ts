import { Context } from '@temporalio/activity';
import { routerWorkflowId, spotTaskQueue } from '../shared/constants';
import { registerGuardianSignal, type RouterInput, type RouterRegistration } from '../shared/spot';

export interface EnsureRouterInput {
  region: string;
  registration: RouterRegistration;
}

/**
 * Makes sure the region's router runs and knows `registration` (its owner, queue and poll
 * interval): one signal-with-start through the worker's own client, so it starts the router
 * when none runs (the first guardian, or one that failed or was terminated) and registers with
 * the one that does. Safe to repeat: every guardian run calls it. A router it starts runs on the
 * spot task queue beside the caller's.
 */
export function createRouterActivities() {
  return {
    async ensureRouter(input: EnsureRouterInput): Promise<{ routerId: string; runId?: string }> {
      const { client, info } = Context.current();
      const { region, registration } = input;
      const routerInput: RouterInput = {
        region,
        queueUrls: registration.queueUrl ? [registration.queueUrl] : [],
        pollIntervalMs: registration.pollIntervalMs,
      };
      const handle = await client.workflow.signalWithStart('spotEventRouter', {
        workflowId: routerWorkflowId(region),
        // A router it starts runs on the spot queue, whoever asks (a guardian, or a migration).
        taskQueue: spotTaskQueue(info.taskQueue),
        args: [routerInput],
        signal: registerGuardianSignal,
        signalArgs: [registration],
      });
      return { routerId: handle.workflowId, runId: handle.signaledRunId };
    },
  };
}
