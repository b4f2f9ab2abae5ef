/**
 * A worker killed with SIGKILL in the middle of a phase, and another started: the migration
 * still completes, with exactly one GPU instance and no remote step run twice. The workers are
 * processes of their own (test/harness/worker-process.ts); the run's heartbeat timeout is
 * shortened through `timeouts.heartbeatSeconds` so the retry comes within seconds.
 */
import { randomBytes } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { TAG_PLAN, TAG_STEP } from '../../src/shared/constants';
import { decideUpdate, statusQuery } from '../../src/shared/migration';
import type { migrateToGpu } from '../../src/workflows';
import { useIntegration } from '../harness/lifecycle';
import { aliveInstancesOfPlan, instance, startMigration, tagsOf, waitForPhase } from '../harness/migration';
import { pollUntil } from '../harness/net';
import { startScenario, type Scenario } from '../harness/scenario';
import type { WorkerProcess } from '../harness/spawn-worker';

const HEARTBEAT_SECONDS = 3;
const BUILD = 'docker compose build';

const t = useIntegration();

interface Crash {
  s: Scenario;
  taskQueue: string;
  spawn(identity: string): Promise<WorkerProcess>;
}

async function setup(): Promise<Crash> {
  const s = await startScenario({ maxAttempts: 3 });
  t.track(s);
  const taskQueue = `crash-${randomBytes(6).toString('hex')}`;
  return {
    s,
    taskQueue,
    spawn: (identity) => t.spawnWorker({ taskQueue, awsEndpoint: s.proxy.endpoint, identity }),
  };
}

/** The pending activity of `type`, once an attempt ≥ `attempt` runs on the worker `identity`. */
async function retriedOn(handle: WorkflowHandle, type: string, attempt: number, identity: string) {
  return pollUntil(
    `${type} attempt ${attempt} on ${identity}`,
    async () => {
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      return pending.find(
        (a) => a.activityType?.name === type && (a.attempt ?? 0) >= attempt && a.lastWorkerIdentity === identity,
      );
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}

/** Approves, waits for the result and checks what AWS holds: one GPU instance, the old one stopped. */
async function approveAndCheck(c: Crash, handle: WorkflowHandle<typeof migrateToGpu>) {
  const waiting = await waitForPhase(handle, 'awaiting-approval', 60_000);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'alice' }] });
  const report = await handle.result();
  expect(report.outcome).toBe('completed');
  const alive = await aliveInstancesOfPlan(c.s.direct, c.s.plan);
  expect(alive.map((i) => i.InstanceId)).toEqual([waiting.newInstanceId]);
  expect(tagsOf(alive[0])).toMatchObject({ [TAG_PLAN]: c.s.plan.name, [TAG_STEP]: 'launch' });
  expect(alive[0].InstanceType).toBe('g4dn.xlarge');
  expect((await instance(c.s.direct, c.s.plan.region, c.s.source.instanceId)).State?.Name).toBe('stopped');
  return { waiting, report, status: await handle.query(statusQuery) };
}

test('killed while the build runs: the retry waits for the same command, which was sent once', async () => {
  const c = await setup();
  // The build runs until the test says it is done.
  c.s.world.scriptCommand(BUILD, { status: 'InProgress' });
  const first = await c.spawn('first');
  const handle = await startMigration(t.client, c.taskQueue, c.s.plan, {
    timeouts: { heartbeatSeconds: HEARTBEAT_SECONDS },
  });

  const build = await pollUntil(
    'the build command to be sent',
    async () => c.s.proxy.sentCommands().find((x) => x.commands.some((line) => line.includes(BUILD))),
    {
      timeoutMs: 60_000,
      intervalMs: 100,
    },
  );
  await retriedOn(handle, 'runRemote', 1, first.identity);
  expect((await handle.query(statusQuery)).phase).toBe('build');

  expect(await first.kill()).toEqual({ code: null, signal: 'SIGKILL' });
  const restarted = new Date();
  const second = await c.spawn('second');

  // After the heartbeat timeout the activity runs again on the new worker, and polls the
  // command the killed attempt sent instead of sending another.
  await retriedOn(handle, 'runRemote', 2, second.identity);
  await pollUntil(
    'the new attempt to read the command',
    async () => c.s.proxy.calls({ action: 'GetCommandInvocation' }).find((x) => x.at >= restarted),
    {
      timeoutMs: 30_000,
      intervalMs: 100,
    },
  );
  c.s.proxy.setCommandResult(build.commandId, build.instanceIds[0], {
    status: 'Success',
    exitCode: 0,
    stdout: 'built 4 images',
  });

  const { status } = await approveAndCheck(c, handle);
  expect(c.s.proxy.sentCommands().filter((x) => x.commands.some((line) => line.includes(BUILD)))).toHaveLength(1);
  expect(status.phases.find((p) => p.name === 'build')).toMatchObject({
    state: 'succeeded',
    attempts: 2,
    output: { exitCode: 0, stdoutTail: 'built 4 images' },
  });
  // Every other remote step ran once.
  const labels = c.s.proxy.sentCommands().map((x) => x.commands.join(' && '));
  expect(new Set(labels).size).toBe(labels.length);
});

test('killed during the launch, after RunInstances reached AWS: still exactly one instance', async () => {
  const c = await setup();
  const launches: string[] = [];
  let reached: () => void = () => undefined;
  const launched = new Promise<void>((resolve) => (reached = resolve));
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  t.track({ close: async () => release() });
  // The first real RunInstances creates the instance, but its answer is held back until the
  // worker that sent it is dead.
  c.s.proxy.onAfter('RunInstances', async ({ request, responseBody }) => {
    if (request.params.DryRun === 'true') return;
    launches.push(/<instanceId>([^<]+)<\/instanceId>/.exec(responseBody)?.[1] ?? '?');
    if (launches.length > 1) return;
    reached();
    await held;
  });
  const first = await c.spawn('first');
  const handle = await startMigration(t.client, c.taskQueue, c.s.plan, {
    timeouts: { heartbeatSeconds: HEARTBEAT_SECONDS },
  });

  await launched;
  expect((await handle.query(statusQuery)).phase).toBe('launch');
  expect(await first.kill()).toEqual({ code: null, signal: 'SIGKILL' });
  release();
  // The only worker left: the second attempt (after the heartbeat timeout) runs there and finds
  // the instance by its tags.
  await c.spawn('second');

  const { status } = await approveAndCheck(c, handle);
  expect(launches).toHaveLength(1);
  expect(status.newInstanceId).toBe(launches[0]);
  expect(status.phases.find((p) => p.name === 'launch')).toMatchObject({ state: 'succeeded', attempts: 2 });
});

test('timeouts.heartbeatSeconds is validated: a bad value fails the run before it touches AWS', async () => {
  const c = await setup();
  const w = await c.spawn('only');
  const handle = await startMigration(t.client, c.taskQueue, c.s.plan, { timeouts: { heartbeatSeconds: 0.5 } });
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e as Error & { cause?: Error & { type?: string } },
  );
  expect(err?.cause).toMatchObject({
    type: 'InvalidInput',
    message: expect.stringMatching(
      /timeouts\.heartbeatSeconds: expected a whole number of seconds from 1 to 600, got 0\.5/,
    ),
  });
  expect(c.s.proxy.calls()).toEqual([]);
  expect(w.output()).not.toMatch(/worker-process: /);
});

test('killed after a capacity fallback launched the second choice, with the listing missing it: the retry goes on from that choice and launches nothing new', async () => {
  const c = await setup();
  const forReal = (p: Record<string, unknown>) => String(p.DryRun) !== 'true';
  // The first choice has no capacity once; the second launches.
  c.s.proxy.fail({
    action: 'RunInstances',
    code: 'InsufficientInstanceCapacity',
    status: 500,
    times: 1,
    when: (p) => forReal(p) && p.InstanceType === 'g4dn.xlarge',
  });
  const workers: { first?: WorkerProcess } = {};
  let launchedId: string | undefined;
  const run: { handle?: WorkflowHandle<typeof migrateToGpu> } = {};
  // The worker dies once RunInstances launched the second choice, before it hears the answer:
  // no heartbeat carries the instance id, only the choice it skipped (sent at once).
  c.s.proxy.onAfter('RunInstances', async ({ request, responseBody, call }) => {
    if (!forReal(request.params) || call.status !== 200 || launchedId) return;
    launchedId = /<instanceId>([^<]+)<\/instanceId>/.exec(responseBody)?.[1];
    await pollUntil(
      'the skipped choice in the heartbeat',
      async () =>
        ((await run.handle?.describe())?.raw.pendingActivities ?? []).find(
          (a) => a.activityType?.name === 'launchInstance' && (a.heartbeatDetails?.payloads?.length ?? 0) > 0,
        ),
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    await workers.first?.kill();
  });
  workers.first = await c.spawn('first');
  const handle = (run.handle = await startMigration(t.client, c.taskQueue, c.s.plan, {
    timeouts: { heartbeatSeconds: HEARTBEAT_SECONDS },
  }));
  await workers.first.exited;
  // From now on the plan's tag listing leaves the instance out (eventual consistency), and the
  // first choice has capacity again: only what the heartbeat kept (the choice it skipped) can
  // lead the retry to the second choice, whose ClientToken replays the same instance.
  c.s.proxy.omitFromListings(launchedId as string, 100);
  await c.spawn('second');

  const waiting = await waitForPhase(handle, 'awaiting-approval', 60_000);
  expect(waiting.newInstanceId).toBe(launchedId);
  const alive = await aliveInstancesOfPlan(c.s.direct, c.s.plan);
  expect(alive.map((i) => i.InstanceType)).toEqual(['g4dn.2xlarge']);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'alice', reason: 'test over' }] });
});
