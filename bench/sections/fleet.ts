/**
 * Section 4, fleet: many migrations at once, then many guardians, each on one worker (a process
 * of its own, so its peak RSS is its own) on this machine. Measures time to finish, peak RSS,
 * how long tasks wait for the worker (schedule-to-start, from the histories), and how many
 * DescribeInstances the router makes per poll for all the guardians of a region.
 */
import { durationMs } from '../../src/plan/duration';
import type { spotEventRouter } from '../../src/workflows';
import { TAG_GUARDED, guardianWorkflowId, routerWorkflowId } from '../../src/shared/constants';
import { routerStatusQuery, type RouterStatus } from '../../src/shared/spot';
import { tagForPlan, testPlan, type PlanOverrides } from '../../test/harness/seed';
import { createQueue } from '../../test/harness/spot';
import { activityTimings, activityWaits, fetchEvents, workflowTaskWaits } from '../history';
import { ApprovalWatch, runMigration, seededPlan, type MigrationRun } from '../migrations';
import { guardedService, launchInstances, routerStatusOf, startGuardian } from '../spot';
import { recoverOnce, type RecoverySample } from './recovery';
import { measureCpu, openAccount, openRegionalWorld, spawnBenchWorker, type BenchWorker, type Stack } from '../stack';
import { mapLimit, sleep, summarize, type Summary } from '../stats';

export interface WorkerFigures {
  peakMiB: number;
  rssMiB: number;
  /** RSS of the worker once it polls, before any work. */
  idleMiB: number;
  /** The worker's own view (V8 heap used and total, memory outside the heap) when its RSS was highest. */
  heap?: HeapFigures;
  /** The same at the end. */
  heapNow?: HeapFigures;
}

type HeapFigures = Awaited<ReturnType<BenchWorker['heap']>>;

/** Samples the worker's heap every second; the returned function gives the sample of highest RSS. */
function sampleHeap(w: BenchWorker): () => HeapFigures | undefined {
  let top: HeapFigures | undefined;
  let stopped = false;
  void (async () => {
    while (!stopped) {
      const h = await w.heap().catch(() => undefined);
      if (h && (!top || h.rssMiB > top.rssMiB)) top = h;
      await sleep(1000);
    }
  })();
  return () => {
    stopped = true;
    return top;
  };
}

export interface FleetMigrations {
  count: number;
  /** Regions they were spread over (see FLEET_REGIONS). */
  regions: number;
  completed: number;
  failed: string[];
  /** First start → last result. */
  wallMs: number;
  /** Each migration, start → result, without its approval wait. */
  perMigration: Summary;
  worker: WorkerFigures;
  activityWait: Summary;
  workflowTaskWait: Summary;
  /** Per phase: its duration over the migrations, and how many needed more than one attempt. */
  phases: Record<string, { duration: Summary; retried: number }>;
  /** CPU seconds each process of the stack used while the migrations ran. */
  cpuSeconds: Record<string, number>;
  /** Activities that needed more than one attempt, by type (from the histories). */
  retriedActivities: Record<string, number>;
}

export interface FleetGuardians {
  count: number;
  pollInterval: string;
  /** First start → every guarded instance tagged (each guardian's first activity done). */
  taggedMs: number;
  /** First start → the router's poll knows every guarded instance. */
  wallMs: number;
  polls: number;
  describeCalls: number;
  describePerPoll: number;
  /** The one batched DescribeInstances over every guarded instance, as AWS (moto) answered it. */
  scanMs: Summary;
  worker: WorkerFigures;
  activityWait: Summary;
  workflowTaskWait: Summary;
  /** Interruption warning → EIP moved (guardian's record), with the whole fleet on the worker. */
  recovery?: Summary;
  recoverySamples?: RecoverySample[];
  /** CPU seconds each process used from the first start until the router knew every instance. */
  cpuSeconds: Record<string, number>;
}

export interface FleetResult {
  migrations: FleetMigrations;
  guardians: FleetGuardians;
}

export async function benchFleet(
  stack: Stack,
  options: { migrations: number; guardians: number; quick: boolean; log: (s: string) => void },
): Promise<FleetResult> {
  const migrations = await fleetMigrations(stack, options.migrations, options.log);
  const guardians = await fleetGuardians(stack, options.guardians, options.quick, options.log);
  return { migrations, guardians };
}

/**
 * Regions the migrations are spread over, at most MIGRATIONS_PER_REGION each. Not for the product
 * (one worker serves any number of regions alike) but for the local AWS: moto's SendCommand
 * targets every instance of the region, and the app's stand-ins re-read every instance of their
 * region after each EC2 change, so one region of 400 instances would measure moto and the
 * stand-ins, not the worker.
 */
const FLEET_REGIONS = [
  'eu-west-1',
  'eu-west-2',
  'eu-west-3',
  'eu-north-1',
  'eu-south-1',
  'ca-central-1',
  'sa-east-1',
  'ap-south-1',
  'ap-southeast-1',
  'ap-southeast-2',
];
const MIGRATIONS_PER_REGION = 20;

async function fleetMigrations(stack: Stack, count: number, log: (s: string) => void): Promise<FleetMigrations> {
  const regions = FLEET_REGIONS.slice(0, Math.min(FLEET_REGIONS.length, Math.ceil(count / MIGRATIONS_PER_REGION)));
  const account = await openAccount(stack, regions[0]);
  const worlds = [account.world];
  let worker: BenchWorker | undefined;
  const watch = new ApprovalWatch(worlds);
  try {
    for (const region of regions.slice(1)) worlds.push(await openRegionalWorld(account, region));
    log(`  seeding ${count} old services in ${regions.length} region(s)`);
    // The app's stand-ins share the two cores with everything else: the reference plan's limits
    // (latency 50 ms, synthesis 2 s) would fail (and retry 10 s later) on their slowness under
    // this load, not on ours. The checks still run and must pass.
    const limits = {
      checks: {
        latency: { service: 'backend', path: '/health', samples: 5, maxAverageMs: 2000 },
        voiceClone: { maxSeconds: 30 },
      },
    };
    const services = await mapLimit(
      Array.from({ length: count }, (_, i) => worlds[i % worlds.length]),
      8,
      (world) => seededPlan(account, limits as PlanOverrides, world),
    );
    worker = await spawnBenchWorker(stack, account);
    const w = worker;
    const idleMiB = (await w.memory()).rssMiB;
    log(`  starting ${count} migrations at once`);
    const heapAtPeak = sampleHeap(w);
    const failed: string[] = [];
    const {
      result: runs,
      cpu,
      wallMs,
    } = await measureCpu({ ...(await stack.processes()), worker: w.pid }, () =>
      Promise.all(
        services.map(async (s): Promise<MigrationRun | undefined> => {
          try {
            return await runMigration(stack.client, w.taskQueue, s.plan, s.seeded.publicIp, watch);
          } catch (err) {
            failed.push(`${s.plan.name}: ${(err as Error).message}`);
            return undefined;
          }
        }),
      ),
    );
    const memory = { ...(await w.memory()), idleMiB, heap: heapAtPeak(), heapNow: await w.heap() };
    const done = runs.filter((r): r is MigrationRun => r !== undefined);
    log(
      `  ${done.length}/${count} completed in ${(wallMs / 1000).toFixed(1)} s; worker peak RSS ${Math.round(memory.peakMiB)} MiB (idle ${Math.round(idleMiB)} MiB); at the highest sample ${JSON.stringify(memory.heap)}`,
    );
    const histories = await mapLimit(done, 8, (r) => fetchEvents(stack.client, r.workflowId));
    const retriedActivities: Record<string, number> = {};
    for (const t of histories.flatMap(activityTimings))
      if ((t.attempt ?? 1) > 1) retriedActivities[t.activityType] = (retriedActivities[t.activityType] ?? 0) + 1;
    const phases: FleetMigrations['phases'] = {};
    for (const name of done[0]?.report.phases.map((p) => p.name) ?? []) {
      const recs = done.map((r) => r.report.phases.find((p) => p.name === name)).filter((p) => p !== undefined);
      phases[name] = {
        duration: summarize(recs.map((p) => p.durationMs ?? NaN)),
        retried: recs.filter((p) => p.attempts > 1).length,
      };
    }
    return {
      count,
      regions: regions.length,
      completed: done.length,
      failed,
      wallMs,
      perMigration: summarize(done.map((r) => r.netMs)),
      worker: memory,
      activityWait: summarize(histories.flatMap(activityWaits)),
      workflowTaskWait: summarize(histories.flatMap(workflowTaskWaits)),
      phases,
      cpuSeconds: cpu,
      retriedActivities,
    };
  } finally {
    watch.close();
    await worker?.stop();
    for (const world of worlds.slice(1)) await world.close();
    await account.close();
  }
}

async function fleetGuardians(
  stack: Stack,
  count: number,
  quick: boolean,
  log: (s: string) => void,
): Promise<FleetGuardians> {
  const region = 'eu-central-1';
  const pollInterval = quick ? '2s' : '5s';
  const windowPolls = quick ? 5 : 12;
  const account = await openAccount(stack, region);
  let worker: BenchWorker | undefined;
  const ids: string[] = [];
  try {
    const queueUrl = await createQueue(account.direct, region);
    const overrides = { spot: { pollInterval, interruptionQueueUrl: queueUrl } };
    // One service set up as after a migration (it holds the EIP, recoveries use it); the rest are
    // instances of their own under guardians of their own.
    const first = await guardedService(account, overrides);
    log(`  launching ${count - 1} more Spot instances`);
    const more = await launchInstances(account, first.seeded, count - 1);
    const guarded = [
      { plan: first.plan, instanceId: first.instanceId },
      ...more.map((instanceId) => ({
        plan: testPlan(first.seeded, account.world.ports, { ...overrides, target: { market: 'spot' } }),
        instanceId,
      })),
    ];
    for (const g of guarded.slice(1)) await tagForPlan(account.direct, g.plan, [g.instanceId]);
    worker = await spawnBenchWorker(stack, account);
    const w = worker;
    const idleMiB = (await w.memory()).rssMiB;
    // The router first, with watches of 10 s: its counters come up to date as each one returns.
    await stack.client.workflow.start<typeof spotEventRouter>('spotEventRouter', {
      taskQueue: w.taskQueue,
      workflowId: routerWorkflowId(region),
      args: [
        {
          region,
          queueUrls: [queueUrl],
          pollIntervalMs: durationMs(pollInterval),
          watch: { maxMs: 10_000, heartbeatMs: 2_000 },
        },
      ],
    });

    let describeCalls = 0;
    const scanMs: number[] = [];
    let counting = false;
    account.proxy.onAfter('DescribeInstances', ({ request, call }) => {
      const p = request.params;
      if (!counting || p['Filter.1.Name'] !== 'tag-key' || p['Filter.1.Value.1'] !== TAG_GUARDED) return;
      describeCalls++;
      scanMs.push(call.durationMs);
    });

    log(`  starting ${count} guardians`);
    const heapAtPeak = sampleHeap(w);
    const t0 = Date.now();
    let taggedMs = NaN;
    const router = stack.client.workflow.getHandle(routerWorkflowId(region));
    const { cpu, wallMs } = await measureCpu({ ...(await stack.processes()), worker: w.pid }, async () => {
      await mapLimit(guarded, 32, async (g) => {
        await startGuardian(stack.client, w.taskQueue, g.plan, g.instanceId, first.seeded.imageId);
        ids.push(guardianWorkflowId(g.plan.name));
      });
      let status: RouterStatus | undefined;
      for (const deadline = Date.now() + 600_000; ;) {
        if (Number.isNaN(taggedMs) && account.proxy.count('CreateTags') >= count) taggedMs = Date.now() - t0;
        status = await router.query(routerStatusQuery).catch(() => undefined);
        if (status && status.guarded >= count) break;
        if (Date.now() > deadline)
          throw new Error(`the router knows ${status?.guarded ?? 0} of ${count} guarded instances after 10 minutes`);
        await sleep(100);
      }
    });
    if (Number.isNaN(taggedMs)) taggedMs = wallMs;
    log(
      `  ${count} guardians: all tagged after ${(taggedMs / 1000).toFixed(1)} s, the router knows all after ${(wallMs / 1000).toFixed(1)} s`,
    );

    // A window of quiet polls: how many DescribeInstances each poll makes for the whole region.
    // It opens and closes as a watch returns (the router's counters move then); the next watch
    // may scan at once, so either edge may hold one scan the other count has not.
    const routerStats = async () => (await routerStatusOf(router)).stats;
    const nextWatch = async () => {
      const from = (await routerStats()).watches ?? 0;
      for (;;) {
        const now = await routerStats();
        if ((now.watches ?? 0) > from) return now;
        await sleep(100);
      }
    };
    const opened = await nextWatch();
    counting = true;
    let polls = 0;
    while (polls < windowPolls) polls = (await nextWatch()).polls - opened.polls;
    counting = false;
    const counted = describeCalls;
    log(`  ${counted} tag-key DescribeInstances in ${polls} polls`);

    // Recoveries with the whole fleet on the worker.
    const recoveries: RecoverySample[] = [];
    let current = first.instanceId;
    for (let i = 0; i < (quick ? 1 : 3); i++) {
      const r = await recoverOnce(stack, account, first.guardianId, queueUrl, current);
      recoveries.push(r.sample);
      current = r.newInstanceId;
      const x = r.sample;
      const r0 = (v: number) => Math.round(v);
      log(
        `  recovery ${i + 1} with ${count} guarded: ${x.recordedMs} ms (pickup ${r0(x.pickupMs)}, launch ${r0(x.launchMs)}, start ${r0(x.startMs)}, checks ${r0(x.checksMs)}, eip ${r0(x.eipMs)}, orchestration ${r0(x.orchestrationMs)}; slowest AWS calls ${x.slowestAws.map((c) => `${c.action} ${c.ms} ms`).join(', ')})`,
      );
    }

    const memory = { ...(await w.memory()), idleMiB, heap: heapAtPeak(), heapNow: await w.heap() };
    log(
      `  worker peak RSS ${Math.round(memory.peakMiB)} MiB (idle ${Math.round(idleMiB)} MiB); at the highest sample ${JSON.stringify(memory.heap)}`,
    );
    const histories = await mapLimit(ids, 8, (id) => fetchEvents(stack.client, id));
    return {
      count,
      pollInterval,
      taggedMs,
      wallMs,
      polls,
      describeCalls: counted,
      describePerPoll: polls ? counted / polls : NaN,
      scanMs: summarize(scanMs),
      worker: memory,
      activityWait: summarize(histories.flatMap(activityWaits)),
      workflowTaskWait: summarize(histories.flatMap(workflowTaskWaits)),
      recovery: summarize(recoveries.map((r) => r.recordedMs)),
      recoverySamples: recoveries,
      cpuSeconds: cpu,
    };
  } finally {
    await mapLimit([...ids, routerWorkflowId(region)], 16, (id) =>
      stack.client.workflow
        .getHandle(id)
        .terminate('benchmark finished')
        .catch(() => undefined),
    );
    await worker?.stop();
    await account.close();
  }
}
