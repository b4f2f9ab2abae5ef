/**
 * Records the workflow histories that test/integration/replay.test.ts replays: real runs of all
 * three workflows against a local Temporal dev server and moto (started here, as the integration
 * tests' global setup does), saved as test/histories/<release>/<name>.json.
 *
 *   npx tsx scripts/record-histories.ts                      # every recording, release <version>-<git sha>
 *   npx tsx scripts/record-histories.ts --release 0.2.0      # under that name
 *   npx tsx scripts/record-histories.ts rejected spot-life   # only these
 *
 * A release's directory is never written again: the histories recorded from a release are what
 * proves that the next one can take over its runs (test/histories/README.md).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import globalSetup from '../test/harness/global-setup';
import globalTeardown from '../test/harness/global-teardown';
import { connectClient } from '../test/harness/env';
import { startMigration, waitForPhase } from '../test/harness/migration';
import { pollUntil } from '../test/harness/net';
import { testPlan } from '../test/harness/seed';
import { createQueue, putMessage, spotEvent, waitForGuardian } from '../test/harness/spot';
import { startScenario, type ScenarioOptions } from '../test/harness/scenario';
import { startWorker } from '../test/harness/worker';
import { approveSignal, decideUpdate, rejectSignal } from '../src/shared/migration';
import type { MigrationReport } from '../src/shared/report';
import type { migrateToGpu } from '../src/workflows';
import { guardianWorkflowId, routerWorkflowId, spotTaskQueue } from '../src/shared/constants';
import { routerStatusQuery, stopGuardingSignal, stopRouterSignal, type RouterInput } from '../src/shared/spot';

export const HISTORIES_DIR = join(__dirname, '..', 'test', 'histories');

/** One history as saved. */
interface Recorded {
  name: string;
  workflowType: string;
  workflowId: string;
  about: string;
  outcome: string;
  history: Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;
}

interface Recording {
  name: string;
  /** A recording of several workflows records them itself (else: one migration, driven by `drive`). */
  recordAll?: () => Promise<Recorded[]>;
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
    name: 'spot-life',
    about: 'a Spot migration, its guardian through two recoveries, the region router through continue-as-new',
    scenario: {},
    recordAll: spotLife,
    drive: () => Promise.resolve(''),
  },
  {
    name: 'approval-timed-out',
    about: 'nobody decides within approval.timeout (2s): the run completes with the old instance still running',
    scenario: { maxAttempts: 3, planOverrides: { name: 'history-approval-timeout', approval: { timeout: '2s' } } },
    drive: (handle) => outcome(handle),
  },
];

async function record(recording: Recording): Promise<Recorded[]> {
  if (recording.recordAll) return recording.recordAll();
  const s = await startScenario(recording.scenario);
  const w = await startWorker({ clients: s.clients });
  const temporal = await connectClient();
  try {
    recording.prepare?.(s);
    const handle = await startMigration(temporal.client, w.taskQueue, s.plan);
    const ended = await recording.drive(handle);
    return [
      {
        name: recording.name,
        workflowType: 'migrateToGpu',
        workflowId: handle.workflowId,
        about: recording.about,
        outcome: ended,
        history: await handle.fetchHistory(),
      },
    ];
  } finally {
    await temporal.close();
    await w.stop();
    await s.close();
  }
}

/** Waits until the latest run of `handle`'s chain has completed. */
async function completed(handle: WorkflowHandle): Promise<void> {
  await pollUntil(
    `${handle.workflowId} to end`,
    async () => ((await handle.describe()).status.name === 'COMPLETED' ? true : undefined),
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}

/** Every run of a workflow's continue-as-new chain, from its first, in order. */
async function chain(handle: WorkflowHandle): Promise<{ runId: string; history: Recorded['history'] }[]> {
  const firstRunId = (await handle.describe()).raw.workflowExecutionInfo?.firstRunId ?? undefined;
  const runs: { runId: string; history: Recorded['history'] }[] = [];
  for (let runId = firstRunId; runId;) {
    const history = await handle.client.getHandle(handle.workflowId, runId).fetchHistory();
    runs.push({ runId, history });
    runId = history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return runs;
}

/**
 * A Spot migration and the life after it: the region's router (started first, so that it
 * continues as new every few watches), the migration approved, its guardian, two interruption
 * warnings through the queue, each a recovery; then the guardian and the router are stopped.
 */
async function spotLife(): Promise<Recorded[]> {
  const region = 'us-west-2';
  const s = await startScenario({ maxAttempts: 3, seed: { region } });
  const w = await startWorker({ clients: s.clients });
  const temporal = await connectClient();
  const { client } = temporal;
  try {
    const queueUrl = await createQueue(s.direct, region);
    const plan = testPlan(s.source, s.world.ports, {
      name: 'history-spot',
      checks: { attempts: 3, interval: '1s' },
      target: { market: 'spot' },
      spot: { interruptionQueueUrl: queueUrl, pollInterval: '1s' },
    });
    const routerInput: RouterInput = {
      region,
      queueUrls: [queueUrl],
      pollIntervalMs: 1000,
      pollsPerRun: 3,
      watch: { maxMs: 3000, heartbeatMs: 1000 },
    };
    const router = await client.workflow.start('spotEventRouter', {
      workflowId: routerWorkflowId(region),
      taskQueue: spotTaskQueue(w.taskQueue),
      args: [routerInput],
    });
    const migration = await startMigration(client, w.taskQueue, plan);
    await waitForPhase(migration, 'awaiting-approval');
    await migration.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'alice', comment: 'recorded' }] });
    const report = await migration.result();
    const guardian = client.workflow.getHandle(guardianWorkflowId(plan.name));
    let guarded = (await waitForGuardian(guardian, 'guarding', (g) => g.state === 'guarding')).instanceId;
    for (let n = 1; n <= 2; n++) {
      await pollUntil(
        'the router to know the guarded instance',
        async () => ((await router.query(routerStatusQuery)).guarded >= 1 ? true : undefined),
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      await putMessage(s.direct, region, queueUrl, spotEvent('interruption', guarded, region));
      const after = await waitForGuardian(
        client.workflow.getHandle(guardian.workflowId),
        `recovery ${n}`,
        (g) => g.replacements === n && g.state === 'guarding',
        120_000,
      );
      guarded = after.instanceId;
    }
    await guardian.signal(stopGuardingSignal);
    await completed(guardian);
    await router.signal(stopRouterSignal);
    await completed(router);

    const recorded: Recorded[] = [
      {
        name: 'completed-spot',
        workflowType: 'migrateToGpu',
        workflowId: migration.workflowId,
        about: 'a Spot migration approved through the `decide` update: the guardian is started, the golden image made',
        outcome: `completed: ${report.outcome}`,
        history: await migration.fetchHistory(),
      },
    ];
    const guardianRuns = await chain(guardian);
    guardianRuns.forEach(({ history }, i) =>
      recorded.push({
        name: `guardian-run-${i + 1}`,
        workflowType: 'spotGuardian',
        workflowId: guardian.workflowId,
        about: `run ${i + 1} of ${guardianRuns.length} of a guardian through two recoveries (continued as new after each), stopped in its last`,
        outcome: i + 1 < guardianRuns.length ? 'continued as new' : 'completed: stopped',
        history,
      }),
    );
    // The router's runs that routed a message (a signal to the guardian), and its first.
    const routerRuns = (await chain(router)).filter(
      ({ history }, i) =>
        i === 0 || (history.events ?? []).some((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes),
    );
    routerRuns.forEach(({ history }, i) =>
      recorded.push({
        name: `router-run-${i + 1}`,
        workflowType: 'spotEventRouter',
        workflowId: router.workflowId,
        about:
          'a run of the region router, which continues as new every 3 watches; it routes interruption warnings from the queue',
        outcome: history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes
          ? 'continued as new'
          : 'completed: stopped',
        history,
      }),
    );
    return recorded;
  } finally {
    await temporal.close();
    await w.stop();
    await s.close();
  }
}

/** The name a release's recordings go under: the package version and the commit. */
function releaseName(): string {
  const { version } = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  const sha = execFileSync('git', ['rev-parse', '--short=8', 'HEAD'], { encoding: 'utf8' }).trim();
  return `${version}-${sha}`;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--release');
  const release = at >= 0 ? args[at + 1] : releaseName();
  const wanted = at >= 0 ? args.filter((_, i) => i !== at && i !== at + 1) : args;
  if (!release || !/^[A-Za-z0-9._+-]+$/.test(release)) {
    console.error(`--release: expected a name such as 0.2.0, got ${JSON.stringify(release)}`);
    return 2;
  }
  const unknown = wanted.filter((n) => !RECORDINGS.some((r) => r.name === n));
  if (unknown.length > 0) {
    console.error(`unknown recording(s): ${unknown.join(', ')}; known: ${RECORDINGS.map((r) => r.name).join(', ')}`);
    return 2;
  }
  const dir = join(HISTORIES_DIR, release);
  if (existsSync(dir)) {
    console.error(`${relative(process.cwd(), dir)} exists: the histories of a release are never written again`);
    return 2;
  }
  await globalSetup();
  try {
    const recorded: Recorded[] = [];
    for (const recording of RECORDINGS.filter((r) => wanted.length === 0 || wanted.includes(r.name))) {
      recorded.push(...(await record(recording)));
    }
    await mkdir(dir, { recursive: true });
    for (const r of recorded) {
      const file = join(dir, `${r.name}.json`);
      const document = {
        workflowId: r.workflowId,
        workflowType: r.workflowType,
        about: r.about,
        outcome: r.outcome,
        release,
        recordedAt: new Date().toISOString(),
        history: JSON.parse(historyToJSON(r.history)) as unknown,
      };
      await writeFile(file, `${JSON.stringify(document, null, 1)}\n`);
      console.log(`${relative(process.cwd(), file)}: ${r.history.events?.length ?? 0} events, ${r.outcome}`);
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
