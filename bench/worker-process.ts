/**
 * The worker the benchmarks measure, in a process of its own so that its memory and CPU are its
 * own: the project's createMigrationWorkers, with AWS clients pointed at a benchmark proxy.
 *
 * Environment (set by bench/stack.ts `spawnBenchWorker`):
 *   TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE   the benchmark's dev server (read through envconfig)
 *   TASK_QUEUE                             required
 *   AWS_ENDPOINT_URL                       the section's AwsProxy (required)
 *   WORKFLOW_BUNDLE_PATH                   the workflow bundle built once by the benchmark
 *   SSM_POLL_MS                            between polls of a running SSM command (default 2000, as in production)
 *   AWS_MAX_ATTEMPTS                       SDK attempts per call (default 3, as in production)
 *   MIGRATION_MAX_CACHED_WORKFLOWS         the worker's sticky cache size (default: the worker's)
 *
 * Prints `bench-worker ready` on stdout once it polls; SIGTERM drains and exits. A line `memory`
 * on stdin is answered with `memory {process.memoryUsage()}` on stdout (after a full GC when
 * Node runs with --expose-gc).
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createAwsClients } from '../src/aws/clients';
import { temporalTarget } from '../src/connection';
import { readConfig } from '../src/config';
import { createMigrationWorkers, runUntilSignal } from '../src/worker';
import { READY_LINE } from './ready';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function main(): Promise<void> {
  Runtime.install({
    logger: new DefaultLogger('WARN', ({ level, message, meta }) => {
      process.stderr.write(`${level} ${message}${meta ? ` ${JSON.stringify(meta)}` : ''}\n`);
    }),
  });
  const target = temporalTarget();
  const connection = await NativeConnection.connect(target.connectionOptions);
  try {
    const bundle = process.env.WORKFLOW_BUNDLE_PATH;
    const cached = readConfig().maxCachedWorkflows;
    const worker = await createMigrationWorkers({
      connection,
      namespace: target.namespace,
      taskQueue: env('TASK_QUEUE'),
      aws: createAwsClients({
        endpoint: env('AWS_ENDPOINT_URL'),
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
        maxAttempts: Number(process.env.AWS_MAX_ATTEMPTS || 3),
      }),
      pollIntervalMs: Number(process.env.SSM_POLL_MS || 2000),
      ...(bundle ? { workflowBundle: { code: readFileSync(bundle, 'utf8') } } : {}),
      identity: `bench-worker-${process.pid}`,
      ...(cached !== undefined ? { maxCachedWorkflows: cached } : {}),
      shutdownGraceTime: '2s',
    });
    await runUntilSignal(worker, () => {
      createInterface({ input: process.stdin }).on('line', (line) => {
        if (line.trim() !== 'memory') return;
        (globalThis as { gc?: () => void }).gc?.();
        process.stdout.write(`memory ${JSON.stringify(process.memoryUsage())}\n`);
      });
      process.stdout.write(`${READY_LINE}\n`);
    });
  } finally {
    await connection.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
