/**
 * A migration worker in a process of its own, for tests that kill it (SIGKILL) and start
 * another: the project's createMigrationWorkers with AWS clients for the test's proxy.
 *
 * Environment:
 *   TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE  where Temporal is (through envconfig, as the worker does)
 *   TASK_QUEUE                            the test's task queue (required)
 *   AWS_ENDPOINT_URL                      the test's AwsProxy (required); credentials from
 *                                         AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default testing)
 *   WORKFLOW_BUNDLE_PATH                  a prebuilt workflow bundle (default: bundle src/workflows)
 *   WORKER_IDENTITY, POLL_INTERVAL_MS, AWS_MAX_ATTEMPTS, TEST_LOG_LEVEL   optional
 *
 * Prints `worker-process polling <task queue> as <identity>` on stdout once it runs, and exits
 * after SIGTERM or SIGINT once running activities had their grace time.
 */
import { readFileSync } from 'node:fs';
import { DefaultLogger, NativeConnection, Runtime, type LogLevel } from '@temporalio/worker';
import { createAwsClients } from '../../src/aws/clients';
import { temporalTarget } from '../../src/connection';
import { createMigrationWorkers, runUntilSignal } from '../../src/worker';

const READY_PREFIX = 'worker-process polling';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function run(): Promise<void> {
  const taskQueue = required('TASK_QUEUE');
  const endpoint = required('AWS_ENDPOINT_URL');
  const identity = process.env.WORKER_IDENTITY || `worker-process-${process.pid}`;
  const bundlePath = process.env.WORKFLOW_BUNDLE_PATH;
  Runtime.install({
    logger: new DefaultLogger(
      (process.env.TEST_LOG_LEVEL as LogLevel | undefined) ?? 'WARN',
      ({ level, message, meta }) => {
        process.stderr.write(`[${identity}] ${level} ${message}${meta ? ` ${JSON.stringify(meta)}` : ''}\n`);
      },
    ),
  });
  const target = temporalTarget();
  const connection = await NativeConnection.connect(target.connectionOptions);
  try {
    const worker = await createMigrationWorkers({
      connection,
      namespace: target.namespace,
      taskQueue,
      aws: createAwsClients({
        endpoint,
        credentials: {
          accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'testing',
          secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'testing',
        },
        maxAttempts: Number(process.env.AWS_MAX_ATTEMPTS || 3),
      }),
      pollIntervalMs: Number(process.env.POLL_INTERVAL_MS || 50),
      ...(bundlePath ? { workflowBundle: { code: readFileSync(bundlePath, 'utf8') } } : {}),
      identity,
      shutdownGraceTime: '2s',
      // A killed worker's runs go to the next worker after a second, not the SDK's ten.
      stickyQueueScheduleToStartTimeout: '1s',
    });
    await runUntilSignal(worker, () => process.stdout.write(`${READY_PREFIX} ${taskQueue} as ${identity}\n`));
  } finally {
    await connection.close();
  }
}

run().catch((err: unknown) => {
  process.stderr.write(`worker-process: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
