/**
 * The production worker (`migration worker`, in a process of its own): it serves Prometheus
 * metrics, the router's failures among them, shuts down cleanly on SIGTERM while an activity
 * runs, and the migration completes on the next worker without running the interrupted remote
 * step twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { iamPolicy } from '../../src/aws/permissions';
import { RunInstancesCommand } from '@aws-sdk/client-ec2';
import { guardianWorkflowId, routerWorkflowId } from '../../src/shared/constants';
import { decideUpdate, statusQuery } from '../../src/shared/migration';
import { interruptionSignal, type GuardianInput, type RouterInput } from '../../src/shared/spot';
import type { spotGuardian } from '../../src/workflows';
import { WORKER_HEAP_MIB } from '../../src/worker';
import { temporalAddress, temporalNamespace } from '../harness/env';
import { withoutAction } from '../harness/iam';
import { useIntegration } from '../harness/lifecycle';
import { aliveInstancesOfPlan, startMigration, waitForPhase } from '../harness/migration';
import { freePort, pollUntil } from '../harness/net';
import { startScenario } from '../harness/scenario';
import { testPlan, tagForPlan } from '../harness/seed';
import { createQueue, routerStatus, waitForGuardian } from '../harness/spot';

const ROOT = join(__dirname, '..', '..');
const BUILD = 'docker compose build';
const t = useIntegration();

interface CliWorker {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `migration worker` as an operator runs it, pointed at the test's Temporal and AWS proxy; with
 * the heap limit of `npm run worker` unless `nodeFlags` says otherwise.
 */
async function startCliWorker(
  taskQueue: string,
  awsEndpoint: string,
  metricsPort: number,
  nodeFlags = [`--max-old-space-size=${WORKER_HEAP_MIB}`],
): Promise<CliWorker> {
  const child = spawn(
    process.execPath,
    [
      ...nodeFlags,
      '--import',
      'tsx',
      join(ROOT, 'src', 'client.ts'),
      'worker',
      '--task-queue',
      taskQueue,
      '--metrics',
      `127.0.0.1:${metricsPort}`,
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: temporalAddress(),
        TEMPORAL_NAMESPACE: temporalNamespace(),
        AWS_ENDPOINT_URL: awsEndpoint,
        AWS_ACCESS_KEY_ID: 'testing',
        AWS_SECRET_ACCESS_KEY: 'testing',
        AWS_REGION: 'us-east-1',
        LOG_LEVEL: 'INFO',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t.track({
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  });
  await pollUntil('the worker to run', async () => (/"state":"RUNNING"/.test(out) ? true : undefined), {
    timeoutMs: 60_000,
    intervalMs: 100,
    abort: () => (child.exitCode !== null ? `exited: ${out}` : undefined),
  });
  return { child, output: () => out, exited };
}

test('SIGTERM while an activity runs: the worker exits cleanly and the next one completes the migration', async () => {
  const s = t.track(await startScenario({ maxAttempts: 3 }));
  s.world.scriptCommand(BUILD, { status: 'InProgress' });
  const taskQueue = `shutdown-${randomBytes(5).toString('hex')}`;
  const metricsPort = await freePort();
  const first = await startCliWorker(taskQueue, s.proxy.endpoint, metricsPort);
  expect(first.output()).not.toMatch(/max-old-space-size/);
  // A versioned worker (Worker Versioning is on by default): its build id is the bundle's hash,
  // and the deployment's first version is made current, so migrations start on it.
  const polling = /"message":"polling task queues".*"deployment":"ec2-gpu-migration","buildId":"([0-9a-f]{16})"/.exec(
    first.output(),
  );
  expect(polling).not.toBeNull();
  await pollUntil(
    'the version to be current',
    async () =>
      new RegExp(
        `ec2-gpu-migration/${polling?.[1]} (is the first version of its deployment: made it current|is the current version)`,
      ).test(first.output())
        ? true
        : undefined,
    { timeoutMs: 30_000, intervalMs: 100 },
  );

  const handle = await startMigration(t.client, taskQueue, s.plan);
  const build = await pollUntil(
    'the build command',
    async () => s.proxy.sentCommands().find((c) => c.commands.some((line) => line.includes(BUILD))),
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  expect((await handle.query(statusQuery)).phase).toBe('build');

  // The Temporal runtime's Prometheus endpoint answers while it works.
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  expect(metrics).toMatch(/^temporal_\w+/m);

  first.child.kill('SIGTERM');
  // The runtime's grace time is 10 s; a clean shutdown is well inside this bound.
  const exit = await Promise.race([
    first.exited,
    new Promise<'still running'>((r) => setTimeout(() => r('still running'), 30_000)),
  ]);
  expect(exit).toEqual({ code: 0, signal: null });

  // The next one starts without a heap limit (as `node lib/client.js worker` would): where V8's
  // default on this machine is far above the limit, it says how to set one.
  const second = await startCliWorker(taskQueue, s.proxy.endpoint, await freePort(), []);
  const warning =
    /"level":"WARN","message":"the V8 heap may grow to (\d+) MiB[^"]*NODE_OPTIONS=--max-old-space-size=(\d+)/.exec(
      second.output(),
    );
  const defaultLimitMiB = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20);
  if (defaultLimitMiB > 2 * WORKER_HEAP_MIB && !process.execArgv.some((f) => f.includes('old-space'))) {
    expect(warning?.slice(1).map(Number)).toEqual([defaultLimitMiB, WORKER_HEAP_MIB]);
  } else expect(warning).toBeNull();
  await pollUntil(
    'the build to be retried on the next worker',
    async () => {
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      return pending.find((a) => a.activityType?.name === 'runRemote' && (a.attempt ?? 0) >= 2) ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  s.proxy.setCommandResult(build.commandId, build.instanceIds[0], { status: 'Success', exitCode: 0, stdout: 'built' });

  await waitForPhase(handle, 'awaiting-approval', 60_000);
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await handle.result();
  expect(report.outcome).toBe('completed');
  // The interrupted build was taken over, not run again; one GPU instance.
  expect(s.proxy.sentCommands().filter((c) => c.commands.some((line) => line.includes(BUILD)))).toHaveLength(1);
  expect(await aliveInstancesOfPlan(s.direct, s.plan)).toHaveLength(1);
  second.child.kill('SIGTERM');
  expect(await second.exited).toEqual({ code: 0, signal: null });
});

// Our own metrics carry no `temporal_` prefix (the runtime adds it to its own only), and carry the region.
const SCAN_ERRORS = 'ec2_gpu_migration_router_scan_errors';
const READ_ERRORS = 'ec2_gpu_migration_router_read_errors';

test("the worker's metrics count the router's failed scans and queue reads", async () => {
  // A region no other test's router uses.
  const region = 'sa-east-1';
  const s = t.track(await startScenario());
  const queueUrl = await createQueue(s.direct, region);
  // The worker's role may neither list instances nor read the queue.
  const policy = iamPolicy({ ...s.plan, region });
  s.proxy.setPolicies([withoutAction(withoutAction(policy, 'ec2:DescribeInstances'), 'sqs:ReceiveMessage')]);
  const taskQueue = `metrics-${randomBytes(5).toString('hex')}`;
  const metricsPort = await freePort();
  const worker = await startCliWorker(taskQueue, s.proxy.endpoint, metricsPort);
  const input: RouterInput = { region, queueUrls: [queueUrl], pollIntervalMs: 1000 };
  await t.client.workflow.start('spotEventRouter', {
    workflowId: routerWorkflowId(region),
    taskQueue,
    args: [input],
  });
  t.endSpotWorkflows(region);
  await pollUntil(
    'a failed scan and a failed read',
    async () => {
      const r = await routerStatus(t.client, region);
      return (r.stats.scanErrors ?? 0) >= 1 && (r.stats.readErrors ?? 0) >= 1 ? r : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 200 },
  );
  const counter = async (name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`region="${region}"`));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  // The runtime exports on its own schedule: wait for the counters to appear there.
  const scans = await pollUntil('the scan counter', async () => ((await counter(SCAN_ERRORS)) ?? 0) >= 1 || undefined, {
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  const reads = await pollUntil('the read counter', async () => ((await counter(READ_ERRORS)) ?? 0) >= 1 || undefined, {
    timeoutMs: 30_000,
    intervalMs: 200,
  });
  expect([scans, reads]).toEqual([true, true]);
  worker.child.kill('SIGTERM');
  expect(await worker.exited).toEqual({ code: 0, signal: null });
});

test("the worker's metrics count a guardian's rounds by kind and outcome", async () => {
  // A region no other test's router uses.
  const region = 'ca-central-1';
  const s = t.track(await startScenario({ seed: { region } }));
  const plan = testPlan(s.source, s.world.ports, {
    target: { market: 'spot' },
    spot: { pollInterval: '2m' },
    checks: { attempts: 1, interval: '1s' },
  });
  // An instance to guard, tagged with its plan as the migration leaves it.
  const launched = await s.direct.ec2(region).send(
    new RunInstancesCommand({
      ImageId: s.source.imageId,
      InstanceType: 'g4dn.xlarge',
      MinCount: 1,
      MaxCount: 1,
      SubnetId: s.source.subnetId,
      InstanceMarketOptions: { MarketType: 'spot' },
    }),
  );
  const instanceId = launched.Instances?.[0]?.InstanceId as string;
  await tagForPlan(s.direct, plan, [instanceId]);
  // The worker may not launch: every replacement try fails at once.
  s.proxy.setPolicies([withoutAction(iamPolicy(plan), 'ec2:RunInstances')]);
  const taskQueue = `metrics-${randomBytes(5).toString('hex')}`;
  const metricsPort = await freePort();
  const worker = await startCliWorker(taskQueue, s.proxy.endpoint, metricsPort);
  const input: GuardianInput = { plan, instanceId, goldenImageId: s.source.imageId, market: 'spot' };
  const guardian = await t.client.workflow.start<typeof spotGuardian>('spotGuardian', {
    taskQueue,
    workflowId: guardianWorkflowId(plan.name),
    args: [input],
  });
  t.endSpotWorkflows(region, () => [guardian.workflowId]);
  await waitForGuardian(guardian, 'guarding', (g) => g.state === 'guarding');
  await guardian.signal(interruptionSignal, { instanceId, kind: 'manual', source: 'test' });
  const failed = await waitForGuardian(guardian, 'the round given up', (g) => g.events.length === 1, 90_000);
  expect(failed.events[0]).toMatchObject({ kind: 'manual', outcome: 'failed' });
  expect(failed.ledger?.interruptions).toEqual({ [`g4dn.xlarge@${s.source.availabilityZone}`]: 1 });

  const counter = async (name: string, labels: string[]) => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  // The runtime exports on its own schedule: wait for the counters to appear there.
  const rounds = await pollUntil(
    'the rounds counter',
    async () =>
      ((await counter('ec2_gpu_migration_guardian_rounds', ['kind="manual"', 'outcome="failed"'])) ?? 0) >= 1 ||
      undefined,
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const pools = await pollUntil(
    'the interruptions counter',
    async () =>
      ((await counter('ec2_gpu_migration_guardian_interruptions', [
        `pool="g4dn.xlarge@${s.source.availabilityZone}"`,
      ])) ?? 0) >= 1 || undefined,
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  expect([rounds, pools]).toEqual([true, true]);
  worker.child.kill('SIGTERM');
  expect(await worker.exited).toEqual({ code: 0, signal: null });
}, 180_000);
