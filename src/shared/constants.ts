/** Names both the worker and the client rely on. Pure: workflow code imports this file. */

export const TASK_QUEUE = 'ec2-gpu-migration';

/**
 * Guardians, routers and their activities run on a task queue of their own beside the
 * migrations' (`<queue>-spot`), so a recovery never waits behind hour-long migration activities.
 * Workers poll both by default. Idempotent: a spot queue is its own spot queue.
 */
export const SPOT_QUEUE_SUFFIX = '-spot';
export const spotTaskQueue = (taskQueue: string): string =>
  taskQueue.endsWith(SPOT_QUEUE_SUFFIX) ? taskQueue : `${taskQueue}${SPOT_QUEUE_SUFFIX}`;
/** The migrations' queue a spot queue belongs to. */
export const migrationTaskQueue = (taskQueue: string): string =>
  taskQueue.endsWith(SPOT_QUEUE_SUFFIX) ? taskQueue.slice(0, -SPOT_QUEUE_SUFFIX.length) : taskQueue;

/** Tag keys on every AWS resource we create; lookups by these make every activity idempotent. */
export const TAG_PLAN = 'ec2-gpu-migration:plan';
export const TAG_STEP = 'ec2-gpu-migration:step';
export const TAG_WORKFLOW = 'ec2-gpu-migration:workflow';
/** The run that launched an instance: a re-run of the same workflow id never adopts another run's. */
export const TAG_RUN = 'ec2-gpu-migration:run';
/** Set on an instance the guardian watches; the event router finds guarded instances by it. */
export const TAG_GUARDED = 'ec2-gpu-migration:guarded';

export const migrationWorkflowId = (planName: string): string => `migrate-${planName}`;
export const guardianWorkflowId = (planName: string): string => `spot-guardian-${planName}`;
export const routerWorkflowId = (region: string): string => `spot-events-${region}`;
