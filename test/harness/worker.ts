/**
 * A real migration worker for an integration test: the project's own worker code, polling the
 * dev server on a task queue of the test's own, with activities whose AWS clients go through
 * the test's proxy.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  DefaultLogger,
  Runtime,
  bundleWorkflowCode,
  type LogLevel,
  type NativeConnection,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import type { AwsClients } from '../../src/aws/clients';
import {
  createMigrationWorkers,
  type DeploymentVersion,
  type MigrationWorkers,
  type WorkerQueues,
} from '../../src/worker';
import { connectWorker, temporalNamespace } from './env';
import { bundleWorkflows, silentLogger } from '../../src/bundle';
import type { NotifySettings } from '../../src/activities/notify';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
let sealed: Promise<WorkflowBundleWithSourceMap> | undefined;

// Worker logs at WARN and above, so test output shows what matters (once per test process).
try {
  Runtime.install({ logger: new DefaultLogger((process.env.TEST_LOG_LEVEL as LogLevel | undefined) ?? 'WARN') });
} catch {
  // Already installed by another module of this process.
}

/** The workflow bundle: the one the global setup built, or built once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  const prebuilt = process.env.WORKFLOW_BUNDLE_PATH;
  bundle ??= prebuilt
    ? readFile(prebuilt, 'utf8').then((code) => ({ code, sourceMap: '' }))
    : bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: silentLogger });
  return bundle;
}

/**
 * The sealed bundle a worker with payload encryption on runs (src/bundle.ts): failures raised
 * in workflow code leave the sandbox encoded, for the codec to encrypt. Built once per test file.
 */
export function sealedWorkflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  sealed ??= bundleWorkflows({ sealedFailures: true }).then(({ code }) => ({ code, sourceMap: '' }));
  return sealed;
}

export interface TestWorker {
  /** The workers on the test's task queue and the spot queue beside it. */
  worker: MigrationWorkers;
  taskQueue: string;
  /** Resolves when run() ends; rejects if it failed. */
  running: Promise<void>;
  stop(): Promise<void>;
}

export async function startWorker(options: {
  clients: AwsClients;
  taskQueue?: string;
  pollIntervalMs?: number;
  identity?: string;
  /** Both queues (the test's and the spot queue beside it, the default), or one of them. */
  queues?: WorkerQueues;
  /** A Worker Deployment Version (Worker Versioning); default: unversioned. */
  deployment?: DeploymentVersion;
  /** Another workflow bundle than the project's (a changed version of the code). */
  bundle?: WorkflowBundleWithSourceMap;
  /** Another namespace than the test file's. */
  namespace?: string;
  /** Where notifications go (default: only the log). */
  notify?: NotifySettings;
}): Promise<TestWorker> {
  const connection: NativeConnection = await connectWorker();
  const taskQueue = options.taskQueue ?? `test-${randomBytes(6).toString('hex')}`;
  let worker: MigrationWorkers;
  try {
    worker = await createMigrationWorkers({
      connection,
      namespace: options.namespace ?? temporalNamespace(),
      taskQueue,
      aws: options.clients,
      pollIntervalMs: options.pollIntervalMs ?? 50,
      workflowBundle: options.bundle ?? (await workflowBundle()),
      ...(options.deployment ? { deployment: options.deployment } : {}),
      ...(options.identity ? { identity: options.identity } : {}),
      ...(options.notify ? { notify: options.notify } : {}),
      ...(options.queues ? { queues: options.queues } : {}),
      shutdownGraceTime: '2s',
    });
  } catch (err) {
    await connection.close();
    throw err;
  }
  const running = worker.run();
  let stopped = false;
  return {
    worker,
    taskQueue,
    running,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running.catch(() => undefined);
      await connection.close();
    },
  };
}
