/**
 * The workflow layer: the real workflow code on Temporal's time-skipping test server, with every
 * activity stubbed in the test process. No AWS, no moto, no dev server: a run that waits days
 * for approval finishes in seconds.
 */
// First: the Runtime's logger, before the harness installs its own.
import './runtime';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, type QueryDefinition } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities, type Activities } from '../../src/activities';
import { createRouterActivities } from '../../src/activities/router';
import { queuesToPoll } from '../../src/worker';
import type { AwsClients } from '../../src/aws/clients';
import { validatePlan } from '../../src/plan/load';
import type { Plan } from '../../src/plan/schema';
import { migrationWorkflowId } from '../../src/shared/constants';
import { statusQuery, type MigrationInput, type MigrationStatus, type PhaseName } from '../../src/shared/migration';
import type { MigrationReport } from '../../src/shared/report';
import type { migrateToGpu } from '../../src/workflows/migrate';
import { workflowBundle } from '../harness/worker';
import { pollUntil } from '../harness/net';
import type { NotifyEvent } from '../../src/shared/notify';

export { workflowBundle };

export const ENV_TEST_SERVER = 'TEMPORAL_TEST_SERVER_BIN';

/**
 * The time-skipping test server, from the path in TEMPORAL_TEST_SERVER_BIN (never downloaded).
 * Each test starts one of its own (about a second): runs a test leaves behind (a worker gone
 * mid-run after a failed assertion; a child that closes after its parent did, as the router does
 * once the guardian that started it continued as new or stopped) can leave the server's clock
 * locked, so no later test on that server could skip time.
 */
export async function startTimeSkipping(): Promise<TestWorkflowEnvironment> {
  const path = process.env[ENV_TEST_SERVER];
  if (!path) {
    throw new Error(
      `${ENV_TEST_SERVER} is not set: the workflow tests need the path of Temporal's time-skipping test server. ` +
        'Run `bash scripts/bootstrap.sh`, then `set -a; . ~/.cache/ec2-gpu-migration/tools.env; set +a` (npm test does both).',
    );
  }
  if (!existsSync(path)) throw new Error(`${ENV_TEST_SERVER} is ${path}, which does not exist`);
  return TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path } } });
}

/**
 * For a test file: the workflow bundle built once, and a time-skipping server of its own for
 * each test (see startTimeSkipping); the returned function gives the current test's.
 */
export function useTimeSkipping(): () => TestWorkflowEnvironment {
  let env: TestWorkflowEnvironment | undefined;
  beforeAll(() => workflowBundle(), 60_000);
  beforeEach(async () => {
    env = await startTimeSkipping();
  }, 30_000);
  afterEach(() => env?.teardown());
  return () => {
    if (!env) throw new Error('no time-skipping server: call useTimeSkipping() at the top of the file');
    return env;
  };
}

// --- ids the stubs answer with -------------------------------------------------------------

export const IDS = {
  region: 'us-east-1',
  oldInstance: 'i-0a1b2c3d4e5f60718',
  newInstance: 'i-0feedface00000001',
  allocation: 'eipalloc-0123456789abcdef0',
  association: 'eipassoc-0123456789abcdef0',
  elasticIp: '198.51.100.7',
  newPublicIp: '203.0.113.10',
  subnet: 'subnet-0123456789abcdef0',
  group: 'sg-0123456789abcdef0',
  image: 'ami-0123456789abcdef0',
  backupImage: 'ami-0000000000000bac0',
  goldenImage: 'ami-000000000000901d0',
} as const;

/**
 * A valid plan for the reference app: two public services and a private one, every remote
 * step, both performance checks. `approval` and `spot` are left to the schema's defaults;
 * each section of `overrides` is merged into the plan's (one level deep).
 */
export function workflowPlan(overrides: Record<string, Record<string, unknown>> = {}): Plan {
  const base: Record<string, unknown> = {
    name: `wf-${randomBytes(4).toString('hex')}`,
    region: IDS.region,
    source: { instanceId: IDS.oldInstance },
    elasticIp: { allocationId: IDS.allocation },
    target: {
      instanceType: 'g4dn.xlarge',
      market: 'on-demand',
      imageId: IDS.image,
      subnetIds: [IDS.subnet],
      securityGroupIds: [IDS.group],
    },
    remote: {
      setup: ['nvidia-smi'],
      deploy: ['git clone https://example.com/app.git /opt/app'],
      build: ['cd /opt/app && docker compose build'],
      start: ['cd /opt/app && docker compose up -d'],
    },
    services: [
      { name: 'backend', port: 8000, healthPath: '/health', public: true },
      { name: 'frontend', port: 3000, healthPath: '/', public: true },
      { name: 'openvoice', port: 8001, healthPath: '/health', public: false },
    ],
    checks: {
      interval: '1s',
      attempts: 3,
      voiceClone: { service: 'backend', path: '/api/voice/synthesize', maxSeconds: 2 },
      latency: { service: 'backend', path: '/health', samples: 3, maxAverageMs: 50 },
    },
  };
  for (const [section, values] of Object.entries(overrides))
    base[section] = { ...((base[section] as object | undefined) ?? {}), ...values };
  return validatePlan(base, 'workflow test plan');
}

// --- stubbed activities ----------------------------------------------------------------------

export interface Call {
  name: string;
  input: Record<string, unknown>;
}

type ActivityFn = (...args: never[]) => Promise<unknown>;

/** Every activity name the worker registers (the real factory, with clients it never calls). */
export const ACTIVITY_NAMES: readonly string[] = Object.keys(createActivities({ aws: {} as AwsClients }));

export interface Stubs {
  /** For Worker.create: every activity, recording each call before it answers. */
  activities: Partial<Activities>;
  /** Every call in the order the worker received them, but notifications. */
  calls: Call[];
  /** The notifications sent (`notify`), in order: kept apart, so the steps read as they run. */
  notifications: NotifyEvent[];
  /** The names of the calls, in order, optionally only those in `only`. */
  names(only?: readonly string[]): string[];
  /** The inputs of the calls of one activity. */
  inputs<K extends keyof Activities>(name: K): Parameters<Activities[K]>[0][];
}

/**
 * Wraps stubs so that each call is recorded. An activity with no stub fails at once
 * (non-retryable `NotStubbed`) instead of being retried against AWS that is not there.
 */
export function recordStubs(stubs: Partial<Activities>): Stubs {
  const calls: Call[] = [];
  const notifications: NotifyEvent[] = [];
  const activities: Record<string, ActivityFn> = {};
  for (const name of ACTIVITY_NAMES) {
    const stub = (stubs as Record<string, ActivityFn | undefined>)[name];
    activities[name] = async (...args: never[]) => {
      if (name === 'notify') {
        notifications.push(args[0] as NotifyEvent);
        return stub ? stub(...args) : { sent: 0, printed: true };
      }
      calls.push({ name, input: (args[0] ?? {}) as Record<string, unknown> });
      if (!stub) throw ApplicationFailure.nonRetryable(`${name} has no stub in this test`, 'NotStubbed');
      return stub(...args);
    };
  }
  return {
    activities: activities as Partial<Activities>,
    calls,
    notifications,
    names: (only) => calls.map((c) => c.name).filter((n) => !only || only.includes(n)),
    inputs: <K extends keyof Activities>(name: K) =>
      calls.filter((c) => c.name === name).map((c) => c.input as Parameters<Activities[K]>[0]),
  };
}

const OK = { attempt: 1 } as const;

/**
 * What the real activities answer on the happy path of `plan`, in their result shapes: the
 * launch gives IDS.newInstance, the Elastic IP goes wherever it is asked to, every check passes.
 */
/**
 * The watch of an on-demand instance during the approval wait fails at once in these tests (and
 * the wait goes on without it, with a warning): the time-skipping server skips no time while an
 * activity runs, and a watch that runs the whole wait would hold every test's clock. The watch
 * has tests of its own, with a stub that finds the instance stopped, and against a real server.
 */
async function noWatch(): Promise<never> {
  throw ApplicationFailure.nonRetryable('no watch in the workflow tests', 'NotConfigured');
}

export function happyStubs(plan: Plan): Partial<Activities> {
  let holder: string = IDS.oldInstance;
  const rule = {
    protocol: 'tcp',
    fromPort: 8000,
    toPort: 8000,
    cidr: '0.0.0.0/0',
    description: `ec2-gpu-migration:${plan.name}`,
  };
  const instance = (instanceId: string, state = 'running') => ({
    instanceId,
    instanceType: instanceId === IDS.oldInstance ? 't3.large' : plan.target.instanceType,
    market: instanceId === IDS.oldInstance ? ('on-demand' as const) : plan.target.market,
    state,
    subnetId: IDS.subnet,
    availabilityZone: 'us-east-1a',
    publicIp: instanceId === IDS.oldInstance ? IDS.elasticIp : IDS.newPublicIp,
    privateIp: '10.0.0.10',
    imageId: IDS.image,
    launchTime: '2025-01-01T00:00:00.000Z',
  });
  const figure = (value: number) => ({ value, unit: 'ms', source: 'measured' as const });
  return {
    preflight: async () => ({
      source: instance(IDS.oldInstance),
      address: {
        allocationId: IDS.allocation,
        publicIp: IDS.elasticIp,
        instanceId: IDS.oldInstance,
        associationId: IDS.association,
      },
      imageId: IDS.image,
      imageName: 'al2023-ami',
      subnets: [{ subnetId: IDS.subnet, availabilityZone: 'us-east-1a' }],
      instanceTypes: [
        { instanceType: 't3.large', vcpus: 2, memoryMiB: 8192 },
        { instanceType: 'g4dn.xlarge', vcpus: 4, memoryMiB: 16384, gpus: '1 x NVIDIA T4 (16384 MiB)' },
      ],
      permissions: ['ec2:RunInstances', 'ec2:StopInstances'],
      warnings: [],
      ...OK,
    }),
    launchInstance: async () => ({ ...instance(IDS.newInstance), reused: false, skipped: [], ...OK }),
    terminateLaunched: async () => ({ terminated: [IDS.newInstance] }),
    terminateInstance: async ({ instanceId }) => ({ instanceId, state: 'terminated' }),
    startInstance: async ({ instanceId }) => instance(instanceId),
    stopInstance: async ({ instanceId }) => instance(instanceId, 'stopped'),
    getInstance: async ({ instanceId }) => instance(instanceId),
    watchInstance: noWatch,
    resolveImage: async () => IDS.image,
    applyIngress: async () => ({
      groupId: IDS.group,
      planned: [rule],
      added: [rule],
      unplanned: [],
      revoked: [],
      final: [rule],
      ...OK,
    }),
    undoIngress: async ({ restore }) => ({ revoked: [rule], restored: restore }),
    // The Elastic IP where the last association put it.
    describeAddress: async () => ({
      allocationId: IDS.allocation,
      publicIp: IDS.elasticIp,
      instanceId: holder,
      associationId: IDS.association,
    }),
    associateAddress: async ({ instanceId }) => {
      holder = instanceId;
      return {
        allocationId: IDS.allocation,
        publicIp: IDS.elasticIp,
        instanceId,
        associationId: IDS.association,
        previousInstanceId: instanceId === IDS.oldInstance ? IDS.newInstance : IDS.oldInstance,
        ...OK,
      };
    },
    runRemote: async ({ label }) => ({
      commandId: `cmd-${label.replace(/\W+/g, '-')}`,
      status: 'Success',
      exitCode: 0,
      stdoutTail: `${label}: done`,
      stderrTail: '',
      durationMs: 1500,
      ...OK,
    }),
    readGpuFacts: async () => ({
      name: { value: 'Tesla T4', source: 'measured' },
      memory: { value: 15360, unit: 'MiB', source: 'measured' },
      driver: { value: '535.183.01', source: 'measured' },
      cuda: { value: '12.2', source: 'measured' },
      raw: 'Tesla T4, 15360 MiB, 535.183.01, 12.2',
    }),
    checkServices: async ({ scope }) => ({
      results: plan.services
        .filter((s) => s.public || scope === 'all')
        .map((s) => ({
          service: s.name,
          port: s.port,
          public: s.public,
          via: s.public ? ('http' as const) : ('ssm' as const),
          ok: true,
          status: 200,
          ms: s.public ? 12 : 900,
        })),
      ...OK,
    }),
    voiceCloneTest: async () => ({ seconds: 0.8, status: 200, bytes: 48_000, ...OK }),
    latencyTest: async () => ({
      samples: [10, 12, 14],
      figures: { averageMs: figure(12), p50Ms: figure(12), p95Ms: figure(14), maxMs: figure(14), minMs: figure(10) },
      ...OK,
    }),
    createImage: async ({ step, instanceId }) => ({
      imageId: step === 'backup' ? IDS.backupImage : IDS.goldenImage,
      name: `${plan.name}-${step}`,
      state: 'available',
      sourceInstanceId: instanceId,
      reused: false,
      ...OK,
    }),
    pruneGoldenImages: async ({ inUse }) => ({ kept: inUse ? [inUse] : [], deregistered: [], snapshotsDeleted: [] }),
    discardImages: async () => ({ deregistered: [], snapshotsDeleted: [] }),
    prices: async ({ instanceTypes }) =>
      instanceTypes.map((instanceType) => ({
        instanceType,
        onDemandPerHour: { value: 0.5, unit: 'USD/h', source: 'price table' as const },
        spotPerHour: { value: 0.2, unit: 'USD/h', source: 'measured' as const },
        // A table unlike the one in src/pricing/ (dated 2026-11-01, 730 h a month): the report
        // must take the activity's figures, never compute its own.
        onDemandPerMonth: { value: 360, unit: 'USD', source: 'price table' as const },
        spotPerMonth: { value: 144, unit: 'USD', source: 'measured' as const },
        priceTableDate: '2026-01-15',
        hoursPerMonth: 720,
      })),
    // Every planned pool in the plan's order, the zones unknown, nothing left out.
    rankSpotPools: async ({ target, order }) => ({
      pools: [target.instanceType, ...target.fallbackInstanceTypes].flatMap((instanceType) =>
        target.subnetIds.map((subnetId) => ({ instanceType, subnetId })),
      ),
      skipped: [],
      sources: { ...(order === 'placement-score' ? { scores: 'GetSpotPlacementScores' } : {}) },
    }),
    markGuarded: async () => undefined,
    // The region's router, idle: no guarded instance dies, no queue has messages. It is started
    // (or signalled) by the real activity, through the worker's client.
    ensureRouter: createRouterActivities().ensureRouter,
    // A guardian of the plan that already runs is asked through the worker's client too.
    handOverToGuardian: createRouterActivities().handOverToGuardian,
    scanGuarded: async () => [],
    lookupGuarded: async () => [],
    confirmInstances: async () => [],
    receiveSpotEvents: async () => [],
    deleteSpotEvents: async () => ({ deleted: 0, failed: [] }),
    // No AWS here: the router's watch fails, and the router watches again after a poll interval
    // (a timer, which the test server skips; a watch that waited would hold the clock).
    watchRegion: async () => {
      throw ApplicationFailure.nonRetryable('no AWS in workflow tests', 'NoAws');
    },
  };
}

// --- running workflows -----------------------------------------------------------------------

/**
 * Runs `fn` while a worker with these activities polls a task queue of its own on `env`; the
 * worker is shut down afterwards (its runs' results are awaited inside `fn`). `release` runs
 * before the shutdown, however `fn` ended: it lets go of activities a test holds, which the
 * shutdown would otherwise wait for.
 */
export async function withWorker<T>(
  env: TestWorkflowEnvironment,
  activities: Partial<Activities>,
  ...args: [fn: (taskQueue: string) => Promise<T>] | [release: () => void, fn: (taskQueue: string) => Promise<T>]
): Promise<T> {
  const [release, fn] = args.length === 1 ? [() => undefined, args[0]] : args;
  const taskQueue = `wf-${randomBytes(6).toString('hex')}`;
  // The test's queue and the spot queue beside it (guardians and routers), as a worker polls them.
  const bundle = await workflowBundle();
  const workers = await Promise.all(
    queuesToPoll(taskQueue).map((queue) =>
      Worker.create({ connection: env.nativeConnection, taskQueue: queue, workflowBundle: bundle, activities }),
    ),
  );
  const [main, ...others] = workers;
  const runningOthers = others.map((w) => w.run());
  try {
    return await main.runUntil(async () => {
      try {
        return await fn(taskQueue);
      } finally {
        release();
      }
    });
  } finally {
    for (const w of others) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(runningOthers);
  }
}

/** Holds the stubs that await `passed()` until `open()`. */
export function gate(): { passed: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { passed: () => opened, open };
}

/**
 * `happy` with its pruneGoldenImages held: the step after the migration stood (approved or timed
 * out). `reached` once the run is there; `release` lets it go on.
 */
export function heldAfterCutOver(happy: Partial<Activities>): {
  stubs: Partial<Activities>;
  reached: () => Promise<void>;
  release: () => void;
} {
  const held = gate();
  const reached = gate();
  const prune = happy.pruneGoldenImages;
  if (!prune) throw new Error('no happy pruneGoldenImages to hold');
  return {
    stubs: {
      ...happy,
      pruneGoldenImages: async (input) => {
        reached.open();
        await held.passed();
        return prune(input);
      },
    },
    reached: reached.passed,
    release: held.open,
  };
}

/**
 * A query that gives up after a second. The test server drops a query that reaches a run while
 * it continues as new (the query never gets an answer), so a poll must be able to ask again.
 */
export function queryOf<T>(handle: WorkflowHandle, query: QueryDefinition<T, []>): Promise<T> {
  return handle.client.connection.withDeadline(Date.now() + 1_000, () => handle.query(query));
}

/**
 * Polls `read` (a query) until `ready` holds; a probe that fails is tried again. Queries do not
 * move the test server's clock: it stands still while nobody awaits a result or calls env.sleep,
 * so timers do not fire meanwhile.
 */
export async function waitFor<T>(what: string, read: () => Promise<T>, ready: (value: T) => boolean): Promise<T> {
  let last: { value: T } | undefined;
  try {
    return await pollUntil(
      what,
      async () => {
        const value = await read();
        last = { value };
        return ready(value) ? value : undefined;
      },
      { timeoutMs: 8_000, intervalMs: 20 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last read: ${last ? JSON.stringify(last.value) : 'none'}`);
  }
}

export const phaseOf = (status: Pick<MigrationStatus, 'phases'>, name: PhaseName) =>
  status.phases.find((p) => p.name === name);

/** Starts migrateToGpu for `plan` (workflow id migrate-<name>), as the CLI does. */
export function startMigration(
  env: TestWorkflowEnvironment,
  taskQueue: string,
  plan: Plan,
  input: Omit<MigrationInput, 'plan'> = {},
): Promise<WorkflowHandle<typeof migrateToGpu>> {
  return env.client.workflow.start<typeof migrateToGpu>('migrateToGpu', {
    taskQueue,
    workflowId: migrationWorkflowId(plan.name),
    args: [{ ...input, plan }],
  });
}

export const migrationStatus = (handle: WorkflowHandle): Promise<MigrationStatus> => queryOf(handle, statusQuery);

/** Waits until the run asks a person to decide. */
export const awaitingApproval = (handle: WorkflowHandle): Promise<MigrationStatus> =>
  waitFor(
    'awaiting-approval',
    () => migrationStatus(handle),
    (s) => s.phase === 'awaiting-approval',
  );

/** The run's failure (an ApplicationFailure: type, message) and the report in its details. */
export async function failureOf(
  handle: WorkflowHandle,
): Promise<{ failure: ApplicationFailure; report: MigrationReport }> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof WorkflowFailedError)) throw new Error(`expected the run to fail, got ${String(err)}`);
  const failure = err.cause;
  if (!(failure instanceof ApplicationFailure))
    throw new Error(`expected an ApplicationFailure, got ${String(failure)}`);
  return { failure, report: failure.details?.[0] as MigrationReport };
}
