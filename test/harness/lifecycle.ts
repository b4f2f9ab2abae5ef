/**
 * The lifecycle every integration test file shares: a Temporal client for the file, and
 * everything a test opens closed after it, last opened first.
 *
 *   const t = useIntegration();
 *   test('…', async () => { const { s, w } = await t.setup(); … t.client … });
 */
import type { Client } from '@temporalio/client';
import { connectClient, type ConnectedClient } from './env';
import { endSpotWorkflows } from './spot';
import { startScenario, type Scenario, type ScenarioOptions } from './scenario';
import { removeWorkerBundle, spawnWorkerProcess, type WorkerProcess, type WorkerProcessOptions } from './spawn-worker';
import { startWorker, type TestWorker } from './worker';

export interface Closeable {
  close(): Promise<unknown>;
}

export interface Integration {
  /** The file's Temporal client (after beforeAll). */
  readonly client: Client;
  /** Closes `c` after the current test. */
  track<T extends Closeable>(c: T): T;
  /** A scenario (its own AWS account and app) with a worker on its own task queue. */
  setup(options?: ScenarioOptions): Promise<{ s: Scenario; w: TestWorker }>;
  /** A worker in a process of its own (for tests that kill it), stopped after the current test. */
  spawnWorker(options: WorkerProcessOptions): Promise<WorkerProcess>;
  /**
   * Ends the guardians (ids read at the end) and the region's router after the current test:
   * before its workers stop, and once more after, because a guardian's `ensureRouter` activity
   * still running when the guardian ended may have started the router again on a queue that no
   * worker polls any more, where the next test's guardians would find it deaf.
   */
  endSpotWorkflows(region: string, guardianIds?: () => readonly string[]): void;
}

export function useIntegration(): Integration {
  let temporal: ConnectedClient | undefined;
  const open: Closeable[] = [];
  /** Closed after everything in `open`. */
  const last: Closeable[] = [];
  beforeAll(async () => {
    temporal = await connectClient();
  });
  afterEach(async () => {
    while (open.length) await open.pop()?.close();
    while (last.length) await last.pop()?.close();
  });
  afterAll(async () => {
    await temporal?.close();
    // The bundle file spawned workers read, if any were spawned.
    await removeWorkerBundle();
  });
  const track = <T extends Closeable>(c: T): T => {
    open.push(c);
    return c;
  };
  return {
    get client(): Client {
      if (!temporal) throw new Error('the Temporal client exists only inside tests (after beforeAll)');
      return temporal.client;
    },
    track,
    async setup(options: ScenarioOptions = {}) {
      const s = track(await startScenario({ maxAttempts: 3, ...options }));
      const w = await startWorker({ clients: s.clients });
      track({ close: () => w.stop() });
      return { s, w };
    },
    endSpotWorkflows(region, guardianIds = () => []) {
      const end = { close: () => endSpotWorkflows(temporal?.client as Client, region, [...guardianIds()]) };
      track(end);
      last.push(end);
    },
    async spawnWorker(options: WorkerProcessOptions) {
      const w = await spawnWorkerProcess(options);
      track({ close: () => w.stop() });
      return w;
    },
  };
}
