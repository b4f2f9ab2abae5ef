import { Option, type Command } from 'commander';
import { TASK_QUEUE } from '../../shared/constants';
import { readConfig } from '../../config';
import { runWorker, WORKER_QUEUES, type WorkerQueues } from '../../worker';
import { EXIT } from '../errors';

export function registerWorker(program: Command, done: (code: number) => void): void {
  program
    .command('worker')
    .description('run a worker (Temporal through envconfig: TEMPORAL_ADDRESS, profiles; AWS through the SDK chain)')
    .option('--metrics <address>', 'serve Prometheus metrics, e.g. 0.0.0.0:9464 (default: METRICS_ADDRESS)')
    .option('--task-queue <name>', "the migrations' task queue; guardians and routers run on <name>-spot", TASK_QUEUE)
    .addOption(
      new Option('--only <queues>', "poll only the migrations' queue or only the spot queue (default: both)").choices(
        WORKER_QUEUES.filter((q) => q !== 'all'),
      ),
    )
    .action(async (opts: { metrics?: string; taskQueue: string; only?: WorkerQueues }) => {
      await runWorker({
        metricsAddress: opts.metrics ?? readConfig().metricsAddress,
        taskQueue: opts.taskQueue,
        queues: opts.only ?? 'all',
      });
      done(EXIT.ok);
    });
}
