/**
 * Records the workflow histories that test/integration/replay.test.ts replays: real runs of
 * migrateToGpu against a local Temporal dev server and moto (started here, as the integration
 * tests' global setup does), saved as test/histories/<name>.json.
 *
 *   npx tsx scripts/record-histories.ts            # every recording
 *   npx tsx scripts/record-histories.ts rejected   # only these
 *
 * Re-record only after a deliberate, compatible-by-design change of the workflow (see
 * test/histories/README.md); a history recorded before a change is what proves the change is
 * safe for runs that are in flight.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import globalSetup from '../test/harness/global-setup';
import globalTeardown from '../test/harness/global-teardown';
import { connectClient } from '../test/harness/env';
import { historyToJson } from '../test/harness/history';
import { startMigration, waitForPhase } from '../test/harness/migration';
import { startScenario, type ScenarioOptions } from '../test/harness/scenario';
import { startWorker } from '../test/harness/worker';
import { approveSignal, decideUpdate, rejectSignal } from '../src/shared/migration';
import type { MigrationReport } from '../src/shared/report';
import type { migrateToGpu } from '../src/workflows';

export const HISTORIES_DIR = join(__dirname, '..', 'test', 'histories');

interface Recording {
  name: string;
  about: string;
  scenario: ScenarioOptions;
  /** Sets the world up before the run starts. */
  prepare?(scenario: Awaited<ReturnType<typeof startScenario>>): void;
  /** Drives the run to its end; returns what it ended as. */
  drive(handle: WorkflowHandle<typeof migrateToGpu>): Promise<string>;
}

/** The run's result, or its failure's message. */
async function outcome(handle: WorkflowHandle<typeof migrateToGpu>): Promise<string> {
  try {
    return `completed: ${((await handle.result()) as MigrationReport).outcome}`;
  } catch (err) {
    return `failed: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`;
  }
}

const RECORDINGS: Recording[] = [
  {
    name: 'completed-on-demand',
    about:
      'every phase succeeds on on-demand; approved through the `decide` update; the old instance is imaged and stopped',
    scenario: { maxAttempts: 3, planOverrides: { name: 'history-completed', target: { market: 'on-demand' } } },
    async drive(handle) {
      await waitForPhase(handle, 'awaiting-approval');
      await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'alice', comment: 'recorded' }] });
      return outcome(handle);
    },
  },
  {
    name: 'rejected',
    about: 'every check passes; an invalid `approve` signal is ignored, then the `reject` signal rolls everything back',
    scenario: { maxAttempts: 3, planOverrides: { name: 'history-rejected' } },
    async drive(handle) {
      await waitForPhase(handle, 'awaiting-approval');
      await handle.signal(approveSignal, { by: '' });
      await handle.signal(rejectSignal, { by: 'bob', reason: 'recorded rejection' });
      return outcome(handle);
    },
  },
  {
    name: 'failed-build',
    about:
      'remote.build exits 2 on every attempt: the build phase fails after its retries and the launch is rolled back',
    scenario: { maxAttempts: 3, planOverrides: { name: 'history-failed-build' } },
    prepare(s) {
      s.world.scriptCommand('docker compose build', {
        status: 'Failed',
        exitCode: 2,
        stderr: 'failed to solve: process "/bin/sh -c pip install -r requirements.txt" did not complete successfully',
      });
    },
    drive: (handle) => outcome(handle),
  },
  {
    name: 'approval-timed-out',
    about: 'nobody decides within approval.timeout (2s): the run completes with the old instance still running',
    scenario: { maxAttempts: 3, planOverrides: { name: 'history-approval-timeout', approval: { timeout: '2s' } } },
    drive: (handle) => outcome(handle),
  },
];

async function record(recording: Recording): Promise<string> {
  const s = await startScenario(recording.scenario);
  const w = await startWorker({ clients: s.clients });
  const temporal = await connectClient();
  try {
    recording.prepare?.(s);
    const handle = await startMigration(temporal.client, w.taskQueue, s.plan);
    const ended = await recording.drive(handle);
    const history = await handle.fetchHistory();
    const file = join(HISTORIES_DIR, `${recording.name}.json`);
    const document = {
      workflowId: handle.workflowId,
      workflowType: 'migrateToGpu',
      about: recording.about,
      outcome: ended,
      recordedAt: new Date().toISOString(),
      history: historyToJson(history),
    };
    await writeFile(file, `${JSON.stringify(document, null, 1)}\n`);
    return `${relative(process.cwd(), file)}: ${history.events?.length ?? 0} events, ${ended}`;
  } finally {
    await temporal.close();
    await w.stop();
    await s.close();
  }
}

async function main(): Promise<number> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((n) => !RECORDINGS.some((r) => r.name === n));
  if (unknown.length > 0) {
    console.error(`unknown recording(s): ${unknown.join(', ')}; known: ${RECORDINGS.map((r) => r.name).join(', ')}`);
    return 2;
  }
  await mkdir(HISTORIES_DIR, { recursive: true });
  await globalSetup();
  try {
    for (const recording of RECORDINGS.filter((r) => wanted.length === 0 || wanted.includes(r.name))) {
      console.log(await record(recording));
    }
  } finally {
    await globalTeardown();
  }
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
