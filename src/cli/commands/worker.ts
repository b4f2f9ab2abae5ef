import type { Command } from 'commander';
import { TASK_QUEUE } from '../../shared/constants';
import { readConfig } from '../../config';
import { runWorker } from '../../worker';
import { EXIT } from '../errors';

export function registerWorker(program: Command, done: (code: number) => void): void {
  program
    .command('worker')
    .description('run a worker (Temporal through envconfig: TEMPORAL_ADDRESS, profiles; AWS through the SDK chain)')
    .option('--metrics <address>', 'serve Prometheus metrics, e.g. 0.0.0.0:9464 (default: METRICS_ADDRESS)')
    .option('--task-queue <name>', 'task queue to poll', TASK_QUEUE)
    .action(async (opts: { metrics?: string; taskQueue: string }) => {
      await runWorker({ metricsAddress: opts.metrics ?? readConfig().metricsAddress, taskQueue: opts.taskQueue });
      done(EXIT.ok);
    });
}
