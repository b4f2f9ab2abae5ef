/**
 * The crash matrix: a worker process SIGKILLed inside each phase of migrateToGpu, during the
 * approval wait and during stop-old after approval; another worker is started and the migration
 * completes with exactly one GPU instance. Then the Temporal dev server itself stopped and
 * started again on its database file in the middle of a migration.
 *
 * Each phase is held open (an AWS answer held back, a remote command left InProgress, a service
 * that answers slowly) until the first worker is dead. `timeouts` shortens the heartbeat timeout
 * and the start-to-close timeout of the quick activities and checks, so the retry on the second
 * worker comes within seconds.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { durationMs } from '../../src/plan/duration';
import { plannedIngress } from '../../src/plan/ingress';
import { TAG_PLAN, TAG_STEP } from '../../src/shared/constants';
import {
  decideUpdate,
  statusQuery,
  type MigrationPhase,
  type MigrationTimeouts,
  type PhaseName,
} from '../../src/shared/migration';
import type { migrateToGpu } from '../../src/workflows';
import { CHECKS_HEARTBEAT } from '../../src/workflows/options';
import { useIntegration } from '../harness/lifecycle';
import {
  addressHolder,
  aliveInstancesOfPlan,
  imagesOfPlan,
  ingressOf,
  instance,
  instancesOfPlan,
  startMigration,
  tagsOf,
  waitForPhase,
} from '../harness/migration';
import { freePort, pollUntil } from '../harness/net';
import { gate } from '../harness/outcome';
import { startScenario, type Scenario } from '../harness/scenario';
import type { WorkerProcess } from '../harness/spawn-worker';
import { toolPaths } from '../harness/tools';
import { temporalNamespace } from '../harness/env';

const TIMEOUTS: MigrationTimeouts = { heartbeatSeconds: 3, activitySeconds: 5 };
/** Longer than any test: a held service answers only once the test releases it. */
const HOLD_MS = 300_000;
const GPU_SYNTHESIS_MS = 30;
/** The plan's remote steps, by a text only their command has. */
const REMOTE_STEPS = {
  setup: 'docker compose version',
  source: 'git clone',
  build: 'docker compose build',
  start: 'docker compose up -d',
} as const;

jest.setTimeout(240_000);

const t = useIntegration();

interface Crash {
  s: Scenario;
  taskQueue: string;
  /** The group's ingress before the run, as `tcp/port/cidr`. */
  ingressBefore: string[];
  spawn(identity: string): Promise<WorkerProcess>;
}

async function setup(temporalAddress?: string): Promise<Crash> {
  // Failing checks are retried 1 s apart instead of 10 s.
  const s = await startScenario({ maxAttempts: 3, planOverrides: { checks: { interval: '1s' } } });
  t.track(s);
  const taskQueue = `reliability-crash-${randomBytes(6).toString('hex')}`;
  return {
    s,
    taskQueue,
    ingressBefore: await ingressOf(s.direct, s.plan.region, s.source.securityGroupId),
    spawn: (identity) => t.spawnWorker({ taskQueue, awsEndpoint: s.proxy.endpoint, identity, temporalAddress }),
  };
}

/** Keeps a phase open: `reached` once the run is inside it, `release` lets it finish. */
interface Hold {
  reached(): Promise<unknown>;
  release(): void;
}

const within = <T>(what: string, probe: () => Promise<T | undefined>) =>
  pollUntil(what, probe, { timeoutMs: 120_000, intervalMs: 50 });

/**
 * The first real (not DryRun) successful call of `action` (that `which` picks) reaches AWS; its
 * answer waits for the release.
 */
function holdCall(c: Crash, action: string, which: (params: Record<string, unknown>) => boolean = () => true): Hold {
  const reached = gate();
  const released = gate();
  t.track({ close: async () => released.open() });
  let held = false;
  c.s.proxy.onAfter(action, async ({ call, request }) => {
    if (held || call.status !== 200 || call.injected || String(request.params.DryRun) === 'true') return;
    if (!which(request.params)) return;
    held = true;
    reached.open();
    await released.promise;
  });
  return { reached: () => reached.promise, release: () => released.open() };
}

/** The remote step's command stays InProgress (and its id is in the activity's heartbeat) until the release. */
function holdRemote(c: Crash, handle: () => WorkflowHandle, match: string): Hold {
  c.s.world.scriptCommand(match, { status: 'InProgress' });
  const sent = () => c.s.proxy.sentCommands().find((x) => x.commands.some((line) => line.includes(match)));
  return {
    reached: async () => {
      await within(`the command with '${match}' to be sent`, async () => sent());
      await within('the command id in the heartbeat', async () => {
        const pending = (await handle().describe()).raw.pendingActivities ?? [];
        return pending.find((a) => {
          const [details] = a.heartbeatDetails?.payloads ?? [];
          return (
            a.activityType?.name === 'runRemote' &&
            details !== undefined &&
            defaultPayloadConverter.fromPayload<{ commandId?: string }>(details)?.commandId !== undefined
          );
        });
      });
    },
    release: () => {
      const cmd = sent();
      if (!cmd) throw new Error(`no command with '${match}' was sent`);
      // A command sent again would succeed too; the test then sees two.
      c.s.world.scriptCommand(match, { status: 'Success', exitCode: 0 });
      if (match === REMOTE_STEPS.start) c.s.world.markStarted(cmd.instanceIds[0]);
      c.s.proxy.setCommandResult(cmd.commandId, cmd.instanceIds[0], {
        status: 'Success',
        exitCode: 0,
        stdout: `${match}: done`,
      });
    },
  };
}

/**
 * A service of the app answers slowly from `install()` on (a delay, or a slow synthesis) until the
 * release; `reached` once such a request arrived.
 */
function holdService(c: Crash, slow: 'frontend' | 'synthesis', install: (apply: () => void) => void): Hold {
  let since: Date | undefined;
  const apply = () => {
    since = new Date();
    if (slow === 'frontend') c.s.world.configure({ service: 'frontend', delayMs: HOLD_MS });
    else c.s.world.configure({ service: 'backend', synthesisDelayMs: HOLD_MS });
  };
  install(apply);
  const service = slow === 'frontend' ? 'frontend' : 'backend';
  return {
    reached: () =>
      within(`a slow ${slow} request`, async () =>
        since
          ? c.s.world
              .requests({ service })
              .find(
                (r) => r.at >= (since as Date) && (slow === 'frontend' || r.path.startsWith('/api/voice/synthesize')),
              )
          : undefined,
      ),
    release: () => {
      if (slow === 'frontend') c.s.world.configure({ service: 'frontend', delayMs: 0 });
      else c.s.world.configure({ service: 'backend', synthesisDelayMs: GPU_SYNTHESIS_MS });
    },
  };
}

/** Runs `hook` once, on the first real successful call of `action`, without holding it. */
function afterFirst(c: Crash, action: string, hook: () => void): void {
  let done = false;
  c.s.proxy.onAfter(action, ({ call, request }) => {
    if (done || call.status !== 200 || call.injected || String(request.params.DryRun) === 'true') return;
    done = true;
    hook();
  });
}

/** Runs `hook` once, when the first synthesis request of the run has been answered. */
function afterFirstSynthesis(c: Crash, hook: () => void): void {
  let done = false;
  c.s.world.onServed((r) => {
    if (done || r.outcome !== 200 || !r.path.startsWith('/api/voice/synthesize')) return;
    done = true;
    hook();
  });
}

type Where = PhaseName | 'approval';

/** The activity each hold keeps running. */
const HELD_ACTIVITY: Record<Exclude<Where, 'approval'>, string> = {
  preflight: 'preflight',
  launch: 'launchInstance',
  setup: 'runRemote',
  source: 'runRemote',
  build: 'runRemote',
  start: 'checkServices',
  'voice-test': 'voiceCloneTest',
  'security-group': 'applyIngress',
  connectivity: 'checkServices',
  'eip-switch': 'associateAddress',
  performance: 'voiceCloneTest',
  'stop-old': 'createImage(backup)',
};

/** `type:attempt:identity` of every activity that completed, from the history. */
async function completedActivities(handle: WorkflowHandle): Promise<string[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  const typeOf = new Map<string, string>();
  const out: string[] = [];
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      // An image is named by its step: the golden one is made while the backup may be held.
      const [input] = scheduled.input?.payloads ?? [];
      const step = input ? defaultPayloadConverter.fromPayload<{ step?: unknown }>(input)?.step : undefined;
      const type = scheduled.activityType?.name ?? '?';
      typeOf.set(String(e.eventId), type === 'createImage' && typeof step === 'string' ? `${type}(${step})` : type);
    }
    const started = e.activityTaskStartedEventAttributes;
    if (started) out.push(`${typeOf.get(String(started.scheduledEventId))}:${started.attempt}:${started.identity}`);
  }
  return out;
}

const HOLDS: Record<Where, (c: Crash, handle: () => WorkflowHandle) => Hold> = {
  preflight: (c) => holdCall(c, 'DescribeSubnets'),
  launch: (c) => holdCall(c, 'RunInstances'),
  setup: (c, h) => holdRemote(c, h, REMOTE_STEPS.setup),
  source: (c, h) => holdRemote(c, h, REMOTE_STEPS.source),
  build: (c, h) => holdRemote(c, h, REMOTE_STEPS.build),
  // The first HTTP requests of the run are start's service check.
  start: (c) => holdService(c, 'frontend', (apply) => apply()),
  // The first synthesis of the run is the voice test's.
  'voice-test': (c) => holdService(c, 'synthesis', (apply) => apply()),
  'security-group': (c) => holdCall(c, 'AuthorizeSecurityGroupIngress'),
  // The check at the new instance's address follows the voice test's synthesis.
  connectivity: (c) => holdService(c, 'frontend', (apply) => afterFirstSynthesis(c, apply)),
  'eip-switch': (c) => holdCall(c, 'AssociateAddress'),
  // The synthesis at the Elastic IP comes after the switch.
  performance: (c) => holdService(c, 'synthesis', (apply) => afterFirst(c, 'AssociateAddress', apply)),
  // The backup's CreateImage (the golden image's is made during the approval wait).
  'stop-old': (c) => holdCall(c, 'CreateImage', (p) => String(p.Description ?? '').startsWith('backup')),
  approval: (c, h) => ({ reached: () => waitForPhase(h(), 'awaiting-approval', 120_000), release: () => undefined }),
};

const approve = (handle: WorkflowHandle<typeof migrateToGpu>) =>
  handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'alice' }] });

/** Waits for the result and checks what AWS holds afterwards. */
async function expectOneGpuInstance(c: Crash, handle: WorkflowHandle<typeof migrateToGpu>) {
  const report = await handle.result();
  expect(report.outcome).toBe('completed');
  const status = await handle.query(statusQuery);
  expect(status.phases.filter((p) => p.state !== 'succeeded').map((p) => `${p.name}: ${p.state}`)).toEqual([]);
  const { plan, direct } = c.s;

  // One instance was ever launched for the plan; it runs, carries the plan's tags and the EIP.
  const launched = await instancesOfPlan(direct, plan);
  expect(launched.map((i) => i.InstanceId)).toEqual([status.newInstanceId]);
  const alive = await aliveInstancesOfPlan(direct, plan);
  expect(alive.map((i) => i.InstanceId)).toEqual([status.newInstanceId]);
  expect(alive[0].State?.Name).toBe('running');
  expect(alive[0].InstanceType).toBe('g4dn.xlarge');
  expect(tagsOf(alive[0])).toMatchObject({ [TAG_PLAN]: plan.name, [TAG_STEP]: 'launch' });
  expect(await addressHolder(direct, plan)).toBe(status.newInstanceId);
  expect((await instance(direct, plan.region, plan.source.instanceId)).State?.Name).toBe('stopped');

  // One backup and one golden image.
  const images = (await imagesOfPlan(direct, plan))
    .map((i) => Object.fromEntries((i.Tags ?? []).map((t) => [t.Key, t.Value]))[TAG_STEP])
    .sort();
  expect(images).toEqual(['backup', 'golden']);
  expect(report.images).toEqual({ backup: expect.stringMatching(/^ami-/), golden: expect.stringMatching(/^ami-/) });

  // The group holds what it held before plus each planned rule, each once.
  const planned = plannedIngress(plan).map((r) => `${r.protocol}/${r.port}/${r.cidr}`);
  expect(await ingressOf(direct, plan.region, c.s.source.securityGroupId)).toEqual(
    [...new Set([...c.ingressBefore, ...planned])].sort(),
  );

  // Each remote step of the plan was sent once.
  const sent = c.s.proxy.sentCommands();
  for (const match of Object.values(REMOTE_STEPS))
    expect([match, sent.filter((x) => x.commands.some((line) => line.includes(match))).length]).toEqual([match, 1]);
  return { report, status };
}

const WHERE: { where: Where; phase: MigrationPhase }[] = [
  ...(
    [
      // The phases that change something. The read-only ones (preflight, voice-test,
      // connectivity, performance) repeat a check on a retry; source and start run as setup and
      // build do (one runRemote each). They are left out to keep the suite's time.
      'launch',
      'setup',
      'build',
      'security-group',
      'eip-switch',
    ] as const
  ).map((p) => ({ where: p, phase: p })),
  { where: 'approval', phase: 'awaiting-approval' },
  { where: 'stop-old', phase: 'stop-old' },
];

test.each(WHERE)(
  'worker SIGKILLed in $where, another started: completes with one GPU instance',
  async ({ where, phase }) => {
    const c = await setup();
    const run: { handle?: WorkflowHandle<typeof migrateToGpu> } = {};
    const hold = HOLDS[where](c, () => run.handle as WorkflowHandle);
    const first = await c.spawn('first');
    const handle = (run.handle = await startMigration(t.client, c.taskQueue, c.s.plan, { timeouts: TIMEOUTS }));
    if (where === 'stop-old') {
      await waitForPhase(handle, 'awaiting-approval', 120_000);
      await approve(handle);
    }

    await hold.reached();
    expect((await handle.query(statusQuery)).phase).toBe(phase);
    expect(await first.kill()).toEqual({ code: null, signal: 'SIGKILL' });
    const second = await c.spawn('second');
    hold.release();

    if (where !== 'stop-old') {
      await waitForPhase(handle, 'awaiting-approval', 120_000);
      await approve(handle);
    }
    const { status } = await expectOneGpuInstance(c, handle);
    if (where !== 'approval') {
      // The held activity's attempt on the killed worker timed out; a later one finished on the second.
      expect(status.phases.find((p) => p.name === where)?.state).toBe('succeeded');
      const retried = (await completedActivities(handle)).filter(
        (a) => a.startsWith(`${HELD_ACTIVITY[where]}:`) && !/:1:/.test(a) && a.endsWith(':second'),
      );
      expect(retried).toHaveLength(1);
    }
    expect(second.output()).not.toMatch(/worker-process: /);
  },
);

test('worker SIGKILLed in a service check with the default timeouts: the check goes on elsewhere after its heartbeat timeout', async () => {
  // No `timeouts` for this run: what a production run gets. A check's start-to-close timeout is
  // ten minutes there; only its heartbeat brings the retry within this test's time.
  const c = await setup();
  const run: { handle?: WorkflowHandle<typeof migrateToGpu> } = {};
  const hold = HOLDS.start(c, () => run.handle as WorkflowHandle);
  const first = await c.spawn('first');
  const handle = (run.handle = await startMigration(t.client, c.taskQueue, c.s.plan));
  await hold.reached();
  expect((await handle.query(statusQuery)).phase).toBe('start');
  expect(await first.kill()).toEqual({ code: null, signal: 'SIGKILL' });
  await c.spawn('second');
  hold.release();

  await waitForPhase(handle, 'awaiting-approval', 120_000);
  const checks = (await completedActivities(handle)).filter((a) => a.startsWith('checkServices:'));
  expect(checks[0]).toMatch(/^checkServices:[2-9]:second$/);
  const scheduled = ((await handle.fetchHistory()).events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes)
    .find((a) => a?.activityType?.name === 'checkServices');
  expect(scheduled?.heartbeatTimeout?.seconds?.toString()).toBe(String(durationMs(CHECKS_HEARTBEAT) / 1000));
  await handle.terminate('the check under test is done');
});

test('a SendCommand answered after more than the heartbeat timeout: the step succeeds on its first attempt', async () => {
  const c = await setup();
  // The first SendCommand (setup's) is answered 1.5 heartbeat timeouts late, as on a loaded worker.
  let slowed = false;
  c.s.proxy.onAfter('SendCommand', async ({ call }) => {
    if (slowed || call.status !== 200) return;
    slowed = true;
    await new Promise((resolve) => setTimeout(resolve, (TIMEOUTS.heartbeatSeconds ?? 3) * 1_500));
  });
  await c.spawn('only');
  const handle = await startMigration(t.client, c.taskQueue, c.s.plan, { timeouts: TIMEOUTS });
  await within('setup to succeed', async () =>
    (await handle.query(statusQuery)).phases.find((p) => p.name === 'setup' && p.state === 'succeeded'),
  );
  expect(slowed).toBe(true);
  expect((await completedActivities(handle)).find((a) => a.startsWith('runRemote:'))).toBe('runRemote:1:only');
  expect(
    c.s.proxy.sentCommands().filter((x) => x.commands.some((line) => line.includes(REMOTE_STEPS.setup))),
  ).toHaveLength(1);
  await handle.terminate('the step under test is done');
});

test('a CreateImage answered after more than the heartbeat timeout: the golden image is made once, on the first attempt', async () => {
  const c = await setup();
  // The first CreateImage (the golden image's, during the approval wait) is answered late.
  let slowed = false;
  c.s.proxy.onAfter('CreateImage', async ({ call }) => {
    if (slowed || call.status !== 200) return;
    slowed = true;
    await new Promise((resolve) => setTimeout(resolve, (TIMEOUTS.heartbeatSeconds ?? 3) * 1_500));
  });
  await c.spawn('only');
  const handle = await startMigration(t.client, c.taskQueue, c.s.plan, { timeouts: TIMEOUTS });
  const golden = await within('the golden image made', async () =>
    (await completedActivities(handle)).find((a) => a.startsWith('createImage(golden):')),
  );
  expect(slowed).toBe(true);
  expect(golden).toBe('createImage(golden):1:only');
  const images = (await imagesOfPlan(c.s.direct, c.s.plan)).map(
    (i) => Object.fromEntries((i.Tags ?? []).map((x) => [x.Key, x.Value]))[TAG_STEP],
  );
  expect(images).toEqual(['golden']);
  await handle.terminate('the step under test is done');
});

test('the Temporal dev server stopped and started again on its database file mid-migration: completes', async () => {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'temporal-restart-'));
  const dbFilename = join(dir, 'temporal.db');
  const startServer = () =>
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: toolPaths().temporalBin },
        ip: '127.0.0.1',
        port,
        dbFilename,
        namespace: temporalNamespace(),
      },
    });
  let env: TestWorkflowEnvironment | undefined = await startServer();
  t.track({
    close: async () => {
      await env?.teardown();
      await rm(dir, { recursive: true, force: true });
    },
  });
  const address = `127.0.0.1:${port}`;
  const c = await setup(address);
  const run: { handle?: WorkflowHandle<typeof migrateToGpu> } = {};
  const hold = holdRemote(c, () => run.handle as WorkflowHandle, REMOTE_STEPS.build);
  const worker = await c.spawn('across-restart');
  const client: Client = env.client;
  const handle = (run.handle = await startMigration(client, c.taskQueue, c.s.plan, {
    timeouts: { heartbeatSeconds: 10, activitySeconds: 30 },
  }));
  const workflowId = handle.workflowId;
  await hold.reached();
  expect((await handle.query(statusQuery)).phase).toBe('build');

  const stopping = env;
  env = undefined;
  await stopping.teardown();
  // Nothing answers on the port while the server is down.
  await expect(connectTo(address)).rejects.toThrow();
  env = await startServer();

  // The same run, read from the database file by the new server.
  const again = env.client.workflow.getHandle<typeof migrateToGpu>(workflowId);
  expect((await again.describe()).status.name).toBe('RUNNING');
  hold.release();
  await waitForPhase(again, 'awaiting-approval', 120_000);
  await approve(again);
  await expectOneGpuInstance(c, again);
  // The worker rode out the outage: it reconnected by itself.
  expect(await Promise.race([worker.exited.then(() => 'exited'), Promise.resolve('running')])).toBe('running');
});

async function connectTo(address: string): Promise<void> {
  const { Connection } = await import('@temporalio/client');
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  await connection.close();
}

test('timeouts.activitySeconds is validated: a bad value fails the run before it touches AWS', async () => {
  const c = await setup();
  await c.spawn('only');
  for (const activitySeconds of [0, 3601, 2.5]) {
    const handle = await startMigration(
      t.client,
      c.taskQueue,
      { ...c.s.plan, name: `${c.s.plan.name}-${String(activitySeconds).replace('.', '-')}` },
      { timeouts: { activitySeconds } },
    );
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e as Error & { cause?: Error & { type?: string } },
    );
    expect(err?.cause).toMatchObject({
      type: 'InvalidInput',
      message: expect.stringContaining(
        `timeouts.activitySeconds: expected a whole number of seconds from 1 to 3600, got ${activitySeconds}`,
      ),
    });
  }
  expect(c.s.proxy.calls()).toEqual([]);
});
