/**
 * Worker Versioning in the workflows. Every workflow is PINNED: a run finishes on the code it
 * started with, so a deploy never changes the commands of a run in flight. The long-lived ones
 * (the guardian, the router) move to a new version at their next continue-as-new: once the
 * deployment's current version is not theirs, they continue as new with `AUTO_UPGRADE` for the
 * new run's first task, which then runs, and stays, on the new code. Workflow code only.
 */
import { makeContinueAsNewFunc, workflowInfo, type Workflow } from '@temporalio/workflow';

/** Whether the deployment's current version is no longer the one this run is pinned to. */
export const newVersionWaiting = (): boolean => workflowInfo().targetWorkerDeploymentVersionChanged;

/** Continue-as-new onto the current version when it changed, else onto this run's own. */
export function nextRun<F extends Workflow>(...args: Parameters<F>): Promise<never> {
  const next = newVersionWaiting()
    ? makeContinueAsNewFunc<F>({ initialVersioningBehavior: 'AUTO_UPGRADE' })
    : makeContinueAsNewFunc<F>();
  return next(...args);
}
