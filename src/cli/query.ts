import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { QueryDefinition } from '@temporalio/common';
import { migrationTaskQueue } from '../shared/constants';
import { statusQuery, type MigrationStatus } from '../shared/migration';

/** TASK_QUEUE_TYPE_WORKFLOW of temporal.api.enums.v1.TaskQueueType. */
const WORKFLOW_TASK_QUEUE = 1;

/** A run nobody answers for: no worker polls its task queue, or the query failed. */
export class NoAnswerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoAnswerError';
  }
}

/** The `status` query of a migration. */
export function queryStatus(client: Client, workflowId: string): Promise<MigrationStatus> {
  return queryWorkflow(client, workflowId, statusQuery);
}

/**
 * A query of a workflow. A query is answered by a worker; when none polls the run's task queue
 * this says so at once instead of waiting for the query to time out.
 */
export async function queryWorkflow<T>(client: Client, workflowId: string, query: QueryDefinition<T, []>): Promise<T> {
  const handle = client.workflow.getHandle(workflowId);
  const described = await handle.describe();
  const taskQueue = described.taskQueue;
  // A guardian's or router's queue is the spot queue beside a migrations' queue: a worker for that polls both.
  const base = migrationTaskQueue(taskQueue);
  const hint = `start one with: migration worker --task-queue ${base}${base === taskQueue ? '' : ` (it polls ${taskQueue} too)`}`;
  const queue = await client.workflowService
    .describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType: WORKFLOW_TASK_QUEUE,
    })
    .catch(() => undefined);
  if (queue && (queue.pollers ?? []).length === 0) {
    throw new NoAnswerError(
      `no worker polls task queue ${taskQueue}, so nobody can answer for ${workflowId} (${described.status.name.toLowerCase()}); ${hint}`,
    );
  }
  try {
    return await handle.query(query);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw err;
    throw new NoAnswerError(
      `${workflowId} (${described.status.name.toLowerCase()}) did not answer its status query: ${(err as Error).message}; a worker on task queue ${taskQueue} answers it (${hint})`,
    );
  }
}
