/**
 * How guardians (and a migration standing by its old instance) reach the region's router.
 * Workflow code only.
 */
import { getExternalWorkflowHandle, ParentClosePolicy, patched, startChild } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { durationMs } from '../../plan/duration';
import type { Plan } from '../../plan/schema';
import { routerWorkflowId } from '../../shared/constants';
import { registerGuardianSignal, type RouterRegistration } from '../../shared/spot';
import { ROUTING, summarized } from '../options';

const acts = summarized(ROUTING.bounded, () => 'router');

export const registrationOf = (plan: Plan, ownerId: string): RouterRegistration => ({
  guardianId: ownerId,
  queueUrl: plan.spot.interruptionQueueUrl,
  pollIntervalMs: durationMs(plan.spot.pollInterval),
});

/**
 * Makes the region's router route the notices of instances tagged as guarded by `ownerId` (a
 * guardian, or a migration that still stands by its old instance): one signal-with-start from an
 * activity, which starts a router that does not run (never started, failed, terminated) and
 * registers with one that does. Runs that began before keep the child start.
 */
export async function joinSpotRouter(plan: Plan, ownerId: string): Promise<void> {
  const registration = registrationOf(plan, ownerId);
  if (patched('router-by-signal-with-start')) {
    await acts.ensureRouter({ region: plan.region, registration });
    return;
  }
  try {
    await startChild('spotEventRouter', {
      workflowId: routerWorkflowId(plan.region),
      parentClosePolicy: ParentClosePolicy.ABANDON,
      args: [
        {
          region: plan.region,
          queueUrls: registration.queueUrl ? [registration.queueUrl] : [],
          pollIntervalMs: registration.pollIntervalMs,
        },
      ],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    await getExternalWorkflowHandle(routerWorkflowId(plan.region)).signal(registerGuardianSignal, registration);
  }
}
