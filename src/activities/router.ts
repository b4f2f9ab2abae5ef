import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { routerWorkflowId, spotTaskQueue } from '../shared/constants';
import {
  registerGuardianSignal,
  retargetUpdate,
  type RetargetAnswer,
  type RetargetRequest,
  type RouterInput,
  type RouterRegistration,
} from '../shared/spot';
import { withHeartbeat } from './util';

export interface HandOverInput {
  guardianId: string;
  request: RetargetRequest;
  /** The same for every attempt of one migration run: a repeated Update is answered once. */
  updateId: string;
}

/** No guardian runs under that id: the migration starts one. */
export interface NoGuardian {
  running: false;
}

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

    /**
     * Hands a completed migration's instance over to the guardian of the plan that already runs
     * (an earlier migration's), through its validated `retarget` Update, and waits for its answer
     * (a replacement round in flight ends first). No running guardian: `{ running: false }`. A
     * refusal fails for good (`GuardianRefused`): the migration must not go on beside a guardian
     * that guards another instance.
     */
    async handOverToGuardian(input: HandOverInput): Promise<(RetargetAnswer & { running: true }) | NoGuardian> {
      const { client } = Context.current();
      const handle = client.workflow.getHandle(input.guardianId);
      return withHeartbeat(async () => {
        try {
          const described = await handle.describe();
          if (described.status.name !== 'RUNNING') return { running: false };
          const answer = await handle.executeUpdate(retargetUpdate, {
            args: [input.request],
            updateId: input.updateId,
          });
          return { ...answer, running: true };
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return { running: false };
          if (err instanceof WorkflowUpdateFailedError) {
            const reason = (err.cause as Error | undefined)?.message ?? err.message;
            throw ApplicationFailure.create({
              type: 'GuardianRefused',
              nonRetryable: true,
              message: `${input.guardianId} guards another instance and refused to guard ${input.request.instanceId}: ${reason}`,
            });
          }
          throw err;
        }
      });
    },
  };
}
