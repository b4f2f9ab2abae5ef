/**
 * What the integration tests use to reach the servers the global setup started. Each helper
 * fails with a clear message when the setup did not run (e.g. a file run outside the
 * `integration` Jest project).
 */
import { Client, Connection } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';

export const ENV_TEMPORAL_ADDRESS = 'TEMPORAL_TEST_ADDRESS';
export const ENV_TEMPORAL_NAMESPACE = 'TEMPORAL_TEST_NAMESPACE';
export const ENV_MOTO_ENDPOINT = 'MOTO_ENDPOINT';
export const ENV_TEMPORAL_UI_URL = 'TEMPORAL_TEST_UI_URL';

function required(name: string, what: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set, so there is no ${what}: the integration global setup ` +
        `(test/harness/global-setup.ts) did not run. Run integration tests with ` +
        '`npx jest --selectProjects integration` or `npx jest test/integration/<file>`.',
    );
  }
  return value;
}

/** host:port of the Temporal dev server. */
export function temporalAddress(): string {
  return required(ENV_TEMPORAL_ADDRESS, 'Temporal dev server');
}

/** The namespaces the dev server makes for Jest's workers (`test-<JEST_WORKER_ID>`). */
export const WORKER_NAMESPACES = ['test-1', 'test-2', 'test-3', 'test-4'];

/**
 * The namespace of this test file: its Jest worker's own, so files running side by side share
 * nothing in Temporal (a region's router, a plan's workflow ids); `default` outside Jest.
 */
export function temporalNamespace(): string {
  const own = process.env.JEST_WORKER_ID ? `test-${process.env.JEST_WORKER_ID}` : undefined;
  if (own && WORKER_NAMESPACES.includes(own)) return own;
  return process.env[ENV_TEMPORAL_NAMESPACE] || 'default';
}

/** `http://127.0.0.1:<port>` of the dev server's Web UI. */
export function temporalUiUrl(): string {
  return required(ENV_TEMPORAL_UI_URL, 'Temporal Web UI');
}

/** `http://127.0.0.1:<port>` of the shared moto server. Tests reach it through an AwsProxy. */
export function motoEndpoint(): string {
  return required(ENV_MOTO_ENDPOINT, 'moto server');
}

export interface ConnectedClient {
  client: Client;
  connection: Connection;
  close(): Promise<void>;
}

/** A Temporal client on the dev server; call `close()` in afterAll. */
export async function connectClient(): Promise<ConnectedClient> {
  const connection = await Connection.connect({ address: temporalAddress() });
  const client = new Client({ connection, namespace: temporalNamespace() });
  return { client, connection, close: () => connection.close() };
}

/** A connection for a Worker in the test process; close it after the worker stopped. */
export async function connectWorker(): Promise<NativeConnection> {
  const { NativeConnection: Native } = await import('@temporalio/worker');
  return Native.connect({ address: temporalAddress() });
}
