/**
 * The stack chaos runs on: a Temporal dev server of its own on a database file (so it can be
 * stopped and started again with every run kept), and moto. The harness's helpers find them
 * through the environment variables the integration global setup would set.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTE_KEYS } from '../src/shared/search-attributes';
import {
  ENV_MOTO_ENDPOINT,
  ENV_TEMPORAL_ADDRESS,
  ENV_TEMPORAL_NAMESPACE,
  temporalNamespace,
} from '../test/harness/env';
import { startMoto, type MotoServer } from '../test/harness/moto';
import { removeWorkerBundle } from '../test/harness/spawn-worker';
import { freePort } from '../test/harness/net';
import { toolPaths } from '../test/harness/tools';

export interface ChaosStack {
  /** host:port of the dev server (the same across restarts). */
  address: string;
  namespace: string;
  /** The client of the stack's server (the same across restarts). */
  client(): Client;
  /** Whether the server is down (between stop and start). */
  down(): boolean;
  /** Stops the server, waits `downMs`, starts it again on its database file. */
  restartServer(downMs: number): Promise<void>;
  moto: MotoServer;
  close(): Promise<void>;
}

export async function startChaosStack(): Promise<ChaosStack> {
  const tools = toolPaths();
  const dir = await mkdtemp(join(tmpdir(), 'ec2-gpu-migration-chaos-'));
  const port = await freePort();
  const dbFilename = join(dir, 'temporal.db');
  const namespace = temporalNamespace();
  const startServer = () =>
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: tools.temporalBin },
        ip: '127.0.0.1',
        port,
        dbFilename,
        namespace,
        ui: false,
        searchAttributes: [...SEARCH_ATTRIBUTE_KEYS],
      },
    });
  const [server, moto] = await Promise.all([startServer(), startMoto({ python: tools.motoPython })]);
  let env: TestWorkflowEnvironment | undefined = server;
  const address = `127.0.0.1:${port}`;
  process.env[ENV_TEMPORAL_ADDRESS] = address;
  process.env[ENV_TEMPORAL_NAMESPACE] = namespace;
  process.env[ENV_MOTO_ENDPOINT] = moto.endpoint;
  // One connection of its own for the whole life of the stack: it reconnects by itself after a
  // restart (the environment's own client would be closed with the server it came with).
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });
  return {
    address,
    namespace,
    moto,
    client: () => client,
    down: () => env === undefined,
    async restartServer(downMs) {
      const stopping = env;
      env = undefined;
      await stopping?.teardown();
      await new Promise((resolve) => setTimeout(resolve, downMs));
      env = await startServer();
    },
    async close() {
      await connection.close().catch(() => undefined);
      await Promise.allSettled([env?.teardown(), moto.stop(), removeWorkerBundle()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
