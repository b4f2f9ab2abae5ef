import { Option, type Command } from 'commander';
import { TASK_QUEUE } from '../../shared/constants';
import { BUILD_ID, DEPLOYMENT_NAME, isHostPort, readConfig } from '../../config';
import { runWorker, WORKER_QUEUES, type WorkerQueues } from '../../worker';
import { EXIT, UsageError } from '../errors';

export function registerWorker(program: Command, done: (code: number) => void): void {
  program
    .command('worker')
    .description('run a worker (Temporal through envconfig: TEMPORAL_ADDRESS, profiles; AWS through the SDK chain)')
    .option('--metrics <address>', 'serve Prometheus metrics, e.g. 0.0.0.0:9464 (default: METRICS_ADDRESS)')
    .option(
      '--health <address>',
      'serve /healthz and /readyz (200 once polling, 503 while starting or draining), e.g. 0.0.0.0:8081 (default: MIGRATION_HEALTH_ADDRESS)',
    )
    .option('--task-queue <name>', "the migrations' task queue; guardians and routers run on <name>-spot", TASK_QUEUE)
    .addOption(
      new Option('--only <queues>', "poll only the migrations' queue or only the spot queue (default: both)").choices(
        WORKER_QUEUES.filter((q) => q !== 'all'),
      ),
    )
    .option(
      '--deployment <name>',
      'the Worker Deployment this worker belongs to (default: MIGRATION_DEPLOYMENT_NAME, else ec2-gpu-migration)',
    )
    .option('--build-id <id>', "this version's build id (default: MIGRATION_BUILD_ID, else the workflow bundle's hash)")
    .option(
      '--no-versioning',
      'run unversioned: every worker takes every task, old and new code mixed (MIGRATION_VERSIONING=off)',
    )
    .action(
      async (opts: {
        metrics?: string;
        health?: string;
        taskQueue: string;
        only?: WorkerQueues;
        deployment?: string;
        buildId?: string;
        versioning: boolean;
      }) => {
        const config = readConfig();
        if (opts.deployment !== undefined && !DEPLOYMENT_NAME.pattern.test(opts.deployment))
          throw new UsageError(`--deployment '${opts.deployment}': expected ${DEPLOYMENT_NAME.expected}`);
        if (opts.buildId !== undefined && !BUILD_ID.pattern.test(opts.buildId))
          throw new UsageError(`--build-id '${opts.buildId}': expected ${BUILD_ID.expected}`);
        if (opts.health !== undefined && !isHostPort(opts.health))
          throw new UsageError(`--health '${opts.health}': expected host:port, e.g. 0.0.0.0:8081`);
        const versioned = opts.versioning && config.versioning;
        await runWorker({
          metricsAddress: opts.metrics ?? config.metricsAddress,
          healthAddress: opts.health ?? config.healthAddress,
          taskQueue: opts.taskQueue,
          queues: opts.only ?? 'all',
          versioning: versioned
            ? {
                ...(opts.deployment ? { deploymentName: opts.deployment } : {}),
                ...(opts.buildId ? { buildId: opts.buildId } : {}),
              }
            : false,
        });
        done(EXIT.ok);
      },
    );
}
