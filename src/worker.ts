import { abandonReads } from './activities/watch';
import { getHeapStatistics } from 'node:v8';
import type { Duration } from '@temporalio/common';
import {
  DefaultLogger,
  NativeConnection,
  Runtime,
  Worker,
  type WorkflowBundleOption,
  type LogLevel,
} from '@temporalio/worker';
import { createActivities, type ActivityDeps } from './activities';
import { createAwsClients, type AwsClients } from './aws/clients';
import { dataConverterFromEnv } from './codec';
import { ConfigError, readConfig } from './config';
import { TemporalUnreachable, temporalTarget } from './connection';
import { TASK_QUEUE, migrationTaskQueue, spotTaskQueue } from './shared/constants';
import { loadWorkflowBundle } from './bundle';
import { DEFAULT_DEPLOYMENT_NAME, describeCurrentVersion, makeFirstVersionCurrent } from './deployment';
import { HEALTH_PATHS, combinedState, startHealthServer, type HealthState } from './health';
import { redact } from './activities/notify';
import { webUiBase } from './cli/context';

export interface MigrationWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue?: string;
  aws: AwsClients;
  http?: ActivityDeps['http'];
  pollIntervalMs?: number;
  /** Where notifications go (receivers, the Web UI's base for links); default: only the log. */
  notify?: ActivityDeps['notify'];
  /** A prebuilt workflow bundle (tests share one); default: bundle src/workflows now. */
  workflowBundle?: WorkflowBundleOption;
  identity?: string;
  shutdownGraceTime?: Duration;
  /**
   * How long a run's next task waits on this worker's sticky queue before any worker may take it
   * (the SDK's default is 10 s); a shorter wait hands a dead worker's runs over sooner.
   */
  stickyQueueScheduleToStartTimeout?: Duration;
  /** Workflow runs kept in memory between their tasks (the SDK's sticky cache); default 100. */
  maxCachedWorkflows?: number;
  /**
   * Worker Versioning: the Worker Deployment Version this worker belongs to. Workflows are pinned
   * to the version they started on (guardians and routers move on at continue-as-new). Without
   * it the worker is unversioned and takes every task of its queues.
   */
  deployment?: DeploymentVersion;
}

/** A Worker Deployment Version: the deployment's name and this build's id. */
export interface DeploymentVersion {
  name: string;
  buildId: string;
}

/**
 * The sticky cache's size. Each cached run keeps its state in the worker (an idle guardian about
 * 0.25 MiB). The SDK's default grows with the heap limit (over 2,000 runs on a 4 GiB heap); 100
 * keeps a worker's live memory small, and a run evicted from the cache replays its history when
 * its next task comes: a migration's few hundred events, a guardian's fewer (it continues as new
 * after each replacement), in milliseconds. Most of a busy worker's memory is garbage V8 has not
 * collected yet: see WORKER_HEAP_MIB.
 */
export const DEFAULT_MAX_CACHED_WORKFLOWS = 100;

/**
 * The V8 heap limit the worker should run with (`node --max-old-space-size=384`, as the package's
 * `worker` and `migration` scripts do). Without a limit V8 lets garbage pile up to a large share
 * of the machine's memory before it collects hard: 200 migrations at once took a worker to
 * 595–672 MiB with 85–110 MiB of it live, and 435–472 MiB with the limit (BENCHMARKS.md).
 */
export const WORKER_HEAP_MIB = 384;

/**
 * A warning when nobody chose the heap limit (no --max-old-space-size in the node flags or
 * NODE_OPTIONS) and V8's own default is far above WORKER_HEAP_MIB; otherwise undefined.
 */
export function heapLimitWarning(
  heapLimitBytes = getHeapStatistics().heap_size_limit,
  flags: string[] = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)],
): string | undefined {
  if (flags.some((f) => /^--max[-_]old[-_]space[-_]size\b/.test(f))) return undefined;
  const mib = Math.round(heapLimitBytes / 2 ** 20);
  if (mib <= 2 * WORKER_HEAP_MIB) return undefined;
  return `the V8 heap may grow to ${mib} MiB before garbage is collected hard; run the worker with NODE_OPTIONS=--max-old-space-size=${WORKER_HEAP_MIB} (as npm run worker does) to keep it near 450 MiB, or larger for a bigger fleet`;
}

/** One worker on one task queue (`createMigrationWorkers` makes the process's set). */
export async function createMigrationWorker(
  options: MigrationWorkerOptions,
  activities = createActivities({
    aws: options.aws,
    http: options.http,
    pollIntervalMs: options.pollIntervalMs,
    notify: options.notify,
  }),
): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    ...(options.workflowBundle
      ? { workflowBundle: options.workflowBundle }
      : { workflowsPath: require.resolve('./workflows') }),
    activities,
    ...(options.identity ? { identity: options.identity } : {}),
    ...(options.stickyQueueScheduleToStartTimeout
      ? { stickyQueueScheduleToStartTimeout: options.stickyQueueScheduleToStartTimeout }
      : {}),
    maxCachedWorkflows: options.maxCachedWorkflows ?? DEFAULT_MAX_CACHED_WORKFLOWS,
    // Payload encryption when MIGRATION_PAYLOAD_KEY_FILE is set (src/codec.ts).
    dataConverter: dataConverterFromEnv(),
    shutdownGraceTime: options.shutdownGraceTime ?? '10s',
    ...(options.deployment
      ? {
          workerDeploymentOptions: {
            useWorkerVersioning: true,
            version: { deploymentName: options.deployment.name, buildId: options.deployment.buildId },
            // Every workflow: a run ends on the code it began with. The guardian and the router
            // move on at continue-as-new (src/workflows/versioning.ts). Declared here, not per
            // workflow: an unversioned worker refuses a workflow that declares a behaviour.
            defaultVersioningBehavior: 'PINNED' as const,
          },
        }
      : {}),
  });
}

/** Which task queues a worker process polls: both (the default), or one of them. */
export const WORKER_QUEUES = ['all', 'migration', 'spot'] as const;
export type WorkerQueues = (typeof WORKER_QUEUES)[number];

/**
 * The queues a worker polls for `taskQueue`: the migrations' and the spot queue beside it
 * (guardians, routers, their activities), or only one of them.
 */
export function queuesToPoll(taskQueue: string, queues: WorkerQueues = 'all'): string[] {
  const migration = migrationTaskQueue(taskQueue);
  const spot = spotTaskQueue(migration);
  if (queues === 'migration') return [migration];
  if (queues === 'spot') return [spot];
  return [migration, spot];
}

/** The workers of one process, one per task queue, run and shut down together. */
export interface MigrationWorkers {
  readonly workers: Worker[];
  readonly taskQueues: string[];
  /** Runs every worker; ends when all have ended, and fails (after shutting the others down) if one fails. */
  run(): Promise<void>;
  shutdown(): void;
  getState(): ReturnType<Worker['getState']>;
}

/**
 * A worker for each queue `queuesToPoll` names, on one connection, sharing the activities (and so
 * the AWS clients). Each keeps its own sticky cache of `maxCachedWorkflows` runs.
 */
export async function createMigrationWorkers(
  options: MigrationWorkerOptions & { queues?: WorkerQueues },
): Promise<MigrationWorkers> {
  const taskQueues = queuesToPoll(options.taskQueue ?? TASK_QUEUE, options.queues);
  const activities = createActivities({
    aws: options.aws,
    http: options.http,
    pollIntervalMs: options.pollIntervalMs,
    notify: options.notify,
  });
  // Created side by side: each loads the workflow bundle into a thread of its own.
  const created = await Promise.allSettled(
    taskQueues.map((taskQueue) => createMigrationWorker({ ...options, taskQueue }, activities)),
  );
  const workers = created.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
  const failed = created.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) throw failed.reason;
  const shutdown = () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  };
  return {
    workers,
    taskQueues,
    async run() {
      const runs = workers.map((w) =>
        w.run().catch((err: unknown) => {
          shutdown();
          throw err;
        }),
      );
      const settled = await Promise.allSettled(runs);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
    shutdown,
    getState: () => (workers.some((w) => w.getState() === 'RUNNING') ? 'RUNNING' : workers[0].getState()),
  };
}

export interface RunWorkerOptions {
  /** Serve Prometheus metrics on this address, e.g. 0.0.0.0:9464. */
  metricsAddress?: string;
  /** Serve /healthz and /readyz on this address, e.g. 0.0.0.0:8081 (src/health.ts). */
  healthAddress?: string;
  logLevel?: LogLevel;
  taskQueue?: string;
  /** Poll both queues (default), or only the migrations' or only the spot queue. */
  queues?: WorkerQueues;
  /**
   * Worker Versioning (default on, deployment `ec2-gpu-migration`, build id the bundle's hash);
   * `false` runs unversioned.
   */
  versioning?: false | { deploymentName?: string; buildId?: string };
}

/**
 * The worker process: connects through envconfig, runs until SIGINT or SIGTERM, then lets
 * running activities finish (within the grace time), and closes the connection.
 */
export async function runWorker(options: RunWorkerOptions = {}): Promise<void> {
  const config = readConfig();
  const logLevel = options.logLevel ?? config.logLevel;
  Runtime.install({
    logger: new DefaultLogger(logLevel, (entry) => {
      const { level, message, meta } = entry;
      process.stderr.write(
        `${JSON.stringify({ time: new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString(), level, message, ...meta })}\n`,
      );
    }),
    ...(options.metricsAddress
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: options.metricsAddress } } } }
      : {}),
  });
  const heapWarning = heapLimitWarning();
  if (heapWarning) Runtime.instance().logger.warn(heapWarning);
  // /healthz answers from now on, /readyz once every worker polls.
  let readiness: () => HealthState = () => 'STARTING';
  const health = options.healthAddress ? await startHealthServer(options.healthAddress, () => readiness()) : undefined;
  if (health) Runtime.instance().logger.info('serving health checks', { address: health.address, paths: HEALTH_PATHS });
  const target = temporalTarget();
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect(target.connectionOptions);
  } catch (err) {
    throw new TemporalUnreachable(target.address, err);
  }
  const cached = config.maxCachedWorkflows;
  const logger = Runtime.instance().logger;
  // With payload encryption on, failures raised in workflow code are sealed too: the sealed bundle.
  const sealedFailures = Boolean(config.payloadKeyFile);
  const bundle = await loadWorkflowBundle(config.workflowBundlePath, { sealedFailures });
  if (sealedFailures && !bundle.sealsFailures)
    logger.warn(
      `payload encryption is on, but the workflow bundle ${bundle.path ?? ''} was built without the failure ` +
        'converter: failures raised in workflow code will be stored in plain text. Use the sealed bundle ' +
        '(lib/workflow-bundle-sealed.js, written by npm run build) or leave WORKFLOW_BUNDLE_PATH unset.',
    );
  const versioning = options.versioning ?? (config.versioning ? {} : false);
  const deployment: DeploymentVersion | undefined =
    versioning === false
      ? undefined
      : {
          name: versioning.deploymentName ?? config.deploymentName ?? DEFAULT_DEPLOYMENT_NAME,
          buildId: versioning.buildId ?? config.buildId ?? bundle.buildId,
        };
  const worker = await createMigrationWorkers({
    connection,
    namespace: target.namespace,
    taskQueue: options.taskQueue,
    queues: options.queues,
    aws: createAwsClients(),
    workflowBundle: { code: bundle.code },
    notify: { targets: config.notifyTargets, uiBase: await webUiBase(target.address) },
    ...(deployment ? { deployment } : {}),
    ...(cached !== undefined ? { maxCachedWorkflows: cached } : {}),
  });
  readiness = () => combinedState(worker.workers.map((w) => w.getState()));
  logger.info('polling task queues', {
    taskQueues: worker.taskQueues,
    notify: config.notifyTargets.length
      ? config.notifyTargets.map((t) => `${t.format} ${redact(t.url)}`)
      : 'no MIGRATION_NOTIFY_URLS: notifications are only logged',
    workflowBundle: bundle.path ?? 'bundled at start',
    sealedFailures: bundle.sealsFailures,
    bundleHash: bundle.buildId,
    ...(deployment ? { deployment: deployment.name, buildId: deployment.buildId } : { versioning: 'off' }),
  });
  try {
    await runUntilSignal(worker, () => {
      if (!deployment) return;
      // The version exists once the server has seen this worker poll: then a first one is made current.
      makeFirstVersionCurrent(connection.workflowService, target.namespace, deployment, `worker ${process.pid}`).then(
        (outcome) => logger.info(describeCurrentVersion(deployment, outcome), { ...outcome }),
        (err: unknown) =>
          logger.error(`could not check the deployment's current version: ${(err as Error).message}`, {
            deployment: deployment.name,
            buildId: deployment.buildId,
          }),
      );
    });
  } finally {
    await health?.close();
    // Reads the router's watches left in flight would hold the process for up to 20 s.
    abandonReads();
    await connection.close();
  }
}

/**
 * Runs `worker` until SIGINT or SIGTERM asks it to shut down (running activities get their grace
 * time); `started` is called once it runs.
 */
export async function runUntilSignal(worker: Pick<Worker, 'run' | 'shutdown'>, started?: () => void): Promise<void> {
  const stop = () => worker.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const running = worker.run();
    started?.();
    await running;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

if (require.main === module) {
  Promise.resolve()
    .then(() => {
      const { metricsAddress, healthAddress } = readConfig();
      return runWorker({ metricsAddress, healthAddress });
    })
    .catch((err) => {
      process.stderr.write(`worker: ${(err as Error).message}\n`);
      process.exitCode = err instanceof ConfigError ? 2 : 1;
    });
}
