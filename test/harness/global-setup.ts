/**
 * Jest global setup of the `integration` project: one real Temporal dev server and one moto for
 * the whole run. Their addresses reach the test files through process.env (see env.ts).
 * The Web UI runs too, on TEMPORAL_UI_PORT or a free port (TEMPORAL_TEST_UI_URL).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { startMoto, type MotoServer } from './moto';
import { toolPaths } from './tools';
import {
  ENV_MOTO_ENDPOINT,
  ENV_TEMPORAL_ADDRESS,
  ENV_TEMPORAL_NAMESPACE,
  ENV_TEMPORAL_UI_URL,
  WORKER_NAMESPACES,
} from './env';
import { freePort } from './net';
import { SEARCH_ATTRIBUTE_KEYS } from '../../src/shared/search-attributes';

export interface HarnessServers {
  temporal?: TestWorkflowEnvironment;
  moto?: MotoServer;
}

const STATE_KEY = '__ec2GpuMigrationHarness';

/** Global setup and teardown run in the same process: the servers are kept on globalThis. */
export function harnessServers(): HarnessServers | undefined {
  return (globalThis as Record<string, unknown>)[STATE_KEY] as HarnessServers | undefined;
}

export function forgetHarnessServers(): void {
  delete (globalThis as Record<string, unknown>)[STATE_KEY];
}

export async function stopHarnessServers(servers: HarnessServers): Promise<void> {
  const results = await Promise.allSettled([servers.temporal?.teardown(), servers.moto?.stop()]);
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length > 0) {
    throw new Error(`stopping the test servers failed: ${failures.map((f) => String(f.reason)).join('; ')}`);
  }
}

export default async function globalSetup(): Promise<void> {
  const tools = toolPaths();
  const namespace = 'default';
  // The Web UI always runs (the browser test uses it); TEMPORAL_UI_PORT picks its port.
  const uiPort = process.env.TEMPORAL_UI_PORT ? Number(process.env.TEMPORAL_UI_PORT) : await freePort();
  if (!(Number.isInteger(uiPort) && uiPort > 0 && uiPort < 65536)) {
    throw new Error(`TEMPORAL_UI_PORT must be a port number, got '${process.env.TEMPORAL_UI_PORT}'`);
  }

  const servers: HarnessServers = {};
  (globalThis as Record<string, unknown>)[STATE_KEY] = servers;
  const [temporal, moto] = await Promise.allSettled([
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: tools.temporalBin },
        namespace,
        ip: '127.0.0.1',
        ui: true,
        uiPort,
        searchAttributes: [...SEARCH_ATTRIBUTE_KEYS],
        // One namespace per Jest worker (see temporalNamespace()): test files that run at the
        // same time never share a workflow id, such as a region's router.
        extraArgs: WORKER_NAMESPACES.flatMap((n) => ['--namespace', n]),
      },
    }),
    startMoto({ python: tools.motoPython }),
  ]);
  if (temporal.status === 'fulfilled') servers.temporal = temporal.value;
  if (moto.status === 'fulfilled') servers.moto = moto.value;
  if (temporal.status === 'rejected' || moto.status === 'rejected') {
    await stopHarnessServers(servers).catch(() => undefined);
    forgetHarnessServers();
    const reasons = [temporal, moto].filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    throw new Error(`the integration test servers did not start: ${reasons.map((r) => String(r.reason)).join('; ')}`);
  }

  process.env[ENV_TEMPORAL_ADDRESS] = temporal.value.address;
  process.env[ENV_TEMPORAL_NAMESPACE] = namespace;
  process.env[ENV_MOTO_ENDPOINT] = moto.value.endpoint;
  process.env[ENV_TEMPORAL_UI_URL] = `http://127.0.0.1:${uiPort}`;
  if (process.env.TEMPORAL_UI_PORT) console.log(`Temporal Web UI: http://127.0.0.1:${uiPort}`);
}
