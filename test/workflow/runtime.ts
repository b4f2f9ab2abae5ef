/**
 * The Temporal Runtime of a workflow test file: silent, because these tests fail and roll back on
 * purpose and the workflows log that (and the test server lacks capabilities the worker warns
 * about). TEST_LOG_LEVEL (e.g. WARN) shows the worker's, the workflows' and the SDK core's logs.
 */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';

const level = process.env.TEST_LOG_LEVEL as LogLevel | undefined;
try {
  Runtime.install({
    logger: level ? new DefaultLogger(level) : new DefaultLogger('ERROR', () => undefined),
    telemetryOptions: { logging: { filter: { core: level ?? 'ERROR', other: level ?? 'ERROR' }, forward: {} } },
  });
} catch {
  // Already installed in this process.
}
