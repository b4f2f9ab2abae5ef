/**
 * One chaos run: a seeded world (its own AWS account behind the strict proxy, the app's
 * stand-ins, worker processes), a migration driven through approval and a Spot life, the faults
 * of its schedule applied at their moments, and the invariant checker fed all along.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DescribeAddressesCommand, DescribeInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { findLeftovers } from '../src/activities/cleanup';
import type { Plan } from '../src/plan/schema';
import { guardianWorkflowId, routerWorkflowId, TAG_PLAN } from '../src/shared/constants';
import { isDead } from '../src/shared/instance-states';
import { decideUpdate, statusQuery, type MigrationStatus } from '../src/shared/migration';
import type { MigrationReport } from '../src/shared/report';
import {
  guardianStatusQuery,
  routerStatusQuery,
  stopGuardingSignal,
  WATCH_DEFAULTS,
  type GuardianStatus,
  type RouterStatus,
} from '../src/shared/spot';
import type { RuleHandle } from '../test/harness/aws-proxy';
import { startMigration } from '../test/harness/migration';
import { startScenario, type Scenario } from '../test/harness/scenario';
import { testPlan } from '../test/harness/seed';
import { spawnWorkerProcess, type WorkerProcess } from '../test/harness/spawn-worker';
import { createQueue, spotEvent } from '../test/harness/spot';
import { Checker, type NoticeTrail, type Outage, type Violation } from './invariants';
import { describeFault, type Fault, type RunSpec } from './schedule';
import type { ChaosStack } from './stack';

/** The bounds, from the world's own timeline (see docs/reliability.md, "Chaos"). */
export const BOUNDS = {
  /** A cold replacement: launch, agent, start from the golden image, checks, the switch. */
  coldMs: 120_000,
  /** With a warm spare: the switch to a checked spare. */
  warmMs: 30_000,
  /** After a blocking fault ends: retries back off, heartbeats time out. */
  catchUpMs: 45_000,
  /**
   * After a worker is killed: its activities are retried elsewhere once their heartbeat times
   * out, the router's watch after twice WATCH_DEFAULTS.heartbeatMs (2 min), during which no
   * Spot notice is read (the price of one heartbeat a minute).
   */
  killCatchUpMs: 2 * WATCH_DEFAULTS.heartbeatMs + 15_000,
  /** How long the world may take to settle once the faults are healed. */
  settleMs: 240_000,
};

const REGION = 'us-east-1';
/** Where each run's worker logs go. */
export const ARTIFACTS = join(__dirname, '..', 'test-artifacts', 'chaos');
const SAMPLE_MS = 300;

export interface FaultOutcome {
  fault: Fault;
  /** When it struck (ms since the run began), or why it did not. */
  atMs?: number;
  skipped?: string;
  /** The instance it hit. */
  instanceId?: string;
  /** The serving instance interrupted first, so that a replacement starts (`starting` in the life). */
  lost?: string;
}

export interface RunResult {
  spec: RunSpec;
  outcome: string;
  violations: Violation[];
  faults: FaultOutcome[];
  notices: number;
  replacements: number;
  longestDownMs: number;
  /** Every spell without service behind the Elastic IP (absent in results of older runners). */
  outages?: Outage[];
  durationMs: number;
  /** The first violation, with the faults that had struck before it. */
  firstViolation?: { violation: Violation; faultsBefore: string[] };
}

type Log = (line: string) => void;

/** Retries `fn` while the Temporal server is down or restarting, up to `timeoutMs`. */
async function temporalCall<T>(stack: ChaosStack, fn: (c: Client) => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (!stack.down()) return await fn(stack.client());
    } catch (err) {
      if (Date.now() > deadline) throw err;
      const text = String((err as Error).message ?? err);
      // Only the server's absence is waited out; anything else is the answer.
      if (!/UNAVAILABLE|ECONNREFUSED|Connection|connect|unavailable|DEADLINE|shut down|No connection/i.test(text))
        throw err;
    }
    if (Date.now() > deadline) throw new Error('the Temporal server did not come back');
    await delay(200);
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runOnce(stack: ChaosStack, spec: RunSpec, log: Log): Promise<RunResult> {
  const started = Date.now();
  const now = () => Date.now() - started;
  const s: Scenario = await startScenario({ maxAttempts: 3, seed: { region: REGION } });
  const cleanups: (() => Promise<unknown>)[] = [() => s.close()];
  const checker = new Checker({
    boundMs: spec.warmSpare ? BOUNDS.warmMs : BOUNDS.coldMs,
    catchUpMs: BOUNDS.catchUpMs,
    outcomes:
      spec.decision === 'approve'
        ? ['completed', 'rolled back']
        : spec.decision === 'reject'
          ? ['rolled back']
          : ['approval timed out', 'rolled back'],
    warmSpare: spec.warmSpare,
    guarded: false,
  });
  const outcomes: FaultOutcome[] = spec.faults.map((fault) => ({ fault }));
  const notices: NoticeTrail[] = [];
  const receipts = new Map<string, string>();
  let approvedAtMs: number | undefined;
  let stopSeen = false;
  /** Resolves with the Spot life's start, or undefined once it is known there is none. */
  let lifeStarts: (at: number | undefined) => void = () => undefined;
  const lifeStart = new Promise<number | undefined>((resolve) => (lifeStarts = resolve));
  let finished = false;
  let outcome = 'running';
  let report: MigrationReport | undefined;
  try {
    const queueUrl = spec.market === 'spot' ? await createQueue(s.direct, REGION) : undefined;
    const plan: Plan = testPlan(s.source, s.world.ports, {
      checks: { attempts: 3, interval: '1s' },
      approval: { timeout: spec.decision === 'timeout' ? '15s' : '1h' },
      target: { market: spec.market },
      ...(queueUrl
        ? {
            spot: {
              interruptionQueueUrl: queueUrl,
              pollInterval: '1s',
              revertAfter: '20s',
              ...(spec.warmSpare ? { standby: 'warm' as const } : {}),
            },
          }
        : {}),
    });
    const oldId = s.source.instanceId;
    const eip = s.source.publicIp;
    const ec2 = s.direct.ec2(REGION);
    const taskQueue = `chaos-${spec.seed}-${spec.run}-${Date.now().toString(36)}`;

    /** Who holds the Elastic IP, its state, and whether the service answers there. */
    const look = async (): Promise<{ holder?: string; holderState?: string; serves: boolean }> => {
      const address = (await ec2.send(new DescribeAddressesCommand({ AllocationIds: [plan.elasticIp.allocationId] })))
        .Addresses?.[0];
      const holder = address?.InstanceId;
      let holderState: string | undefined;
      if (holder) {
        const r = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [holder] }));
        holderState = r.Reservations?.[0]?.Instances?.[0]?.State?.Name;
      }
      let serves = false;
      try {
        const res = await fetch(s.world.url(eip, 'backend'), { signal: AbortSignal.timeout(1500) });
        serves = res.status === 200;
        await res.arrayBuffer();
      } catch {
        serves = false;
      }
      return { ...(holder ? { holder } : {}), ...(holderState ? { holderState } : {}), serves };
    };

    // The old instance's stop, seen as it goes through.
    s.proxy.onAfter('StopInstances', async ({ call, request }) => {
      if (call.status !== 200 || request.params.DryRun === 'true' || request.params['InstanceId.1'] !== oldId) return;
      stopSeen = true;
      const seen = await look();
      checker.oldStopped({
        atMs: now(),
        ...(approvedAtMs !== undefined ? { approvedAtMs } : {}),
        ...(seen.holder ? { holder: seen.holder === oldId ? 'old' : seen.holder } : {}),
        ...(seen.holderState ? { holderState: seen.holderState } : {}),
        serves: seen.serves,
      });
    });
    // Launches, for faults aimed at an instance while it starts.
    const launchWaiters: ((id: string) => void)[] = [];
    s.proxy.onAfter('RunInstances', ({ call, request, responseBody }) => {
      if (call.status !== 200 || request.params.DryRun === 'true') return;
      const id = /<instanceId>(i-[0-9a-f]+)<\/instanceId>/.exec(responseBody)?.[1];
      if (id) for (const w of launchWaiters.splice(0)) w(id);
    });
    // Which message a receipt handle is, and when the router deleted it.
    s.proxy.onAfter('ReceiveMessage', ({ call, responseBody }) => {
      if (call.status !== 200) return;
      try {
        const body = JSON.parse(responseBody) as { Messages?: { MessageId?: string; ReceiptHandle?: string }[] };
        for (const m of body.Messages ?? [])
          if (m.MessageId && m.ReceiptHandle) receipts.set(m.ReceiptHandle, m.MessageId);
      } catch {
        // not JSON: not a read that brought messages
      }
    });
    s.proxy.onAfter('DeleteMessageBatch', ({ call, request }) => {
      if (call.status !== 200) return;
      const entries = (request.params.Entries ?? []) as { ReceiptHandle?: string }[];
      for (const e of entries) {
        const id = receipts.get(e.ReceiptHandle ?? '');
        const trail = notices.find((n) => n.messageId === id);
        if (trail && trail.deletedAtMs === undefined) trail.deletedAtMs = now();
      }
    });

    // The workers; each one's output is kept under test-artifacts/chaos/ once it ends.
    const workers: (WorkerProcess | undefined)[] = [];
    const logDir = join(ARTIFACTS, `seed-${spec.seed}-run-${spec.run}`);
    await mkdir(logDir, { recursive: true });
    let spawned = 0;
    const keepLog = (w: WorkerProcess) =>
      writeFile(join(logDir, `${w.identity}.log`), w.output()).catch(() => undefined);
    /** Starts worker `i`, again and again while it cannot connect (the server may be restarting). */
    const spawn = async (i: number) => {
      const deadline = Date.now() + 180_000;
      for (;;) {
        const identity = `chaos-worker-${i}-${++spawned}`;
        try {
          const w = await spawnWorkerProcess({
            taskQueue,
            awsEndpoint: s.proxy.endpoint,
            temporalAddress: stack.address,
            identity,
            readyTimeoutMs: 120_000,
          });
          void w.exited.then(() => keepLog(w));
          workers[i] = w;
          return;
        } catch (err) {
          await writeFile(join(logDir, `${identity}.log`), String((err as Error).message)).catch(() => undefined);
          if (Date.now() > deadline) throw err;
          await delay(1_000);
        }
      }
    };
    for (let i = 0; i < spec.workers; i++) await spawn(i);
    cleanups.push(async () => {
      for (const w of workers) await w?.kill();
    });

    const handle: WorkflowHandle = await temporalCall(stack, (c) => startMigration(c, taskQueue, plan));
    const migrationId = handle.workflowId;
    const migration = () => stack.client().workflow.getHandle(migrationId);
    const guardian = () => stack.client().workflow.getHandle(guardianWorkflowId(plan.name));
    log(
      `  run ${spec.run}: ${spec.market}${spec.warmSpare ? ' + warm spare' : ''}, ${spec.workers} worker(s), ${spec.decision} after ${(spec.decisionAfterMs / 1000).toFixed(1)} s, life ${(spec.lifeMs / 1000).toFixed(0)} s, ${spec.faults.length} faults; ${migrationId}`,
    );

    // The sampler.
    const sampling = (async () => {
      while (!finished) {
        try {
          const seen = await look();
          checker.sample({ atMs: now(), ...seen });
        } catch {
          // the side door is never faulted; a failed look is skipped
        }
        await delay(SAMPLE_MS);
      }
    })();

    /** Puts a Spot event on the queue, keeping its message id. */
    const notify = async (kind: 'interruption' | 'rebalance', instanceId: string) => {
      if (!queueUrl) return;
      const sent = await s.direct
        .sqs(REGION)
        .send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: spotEvent(kind, instanceId, REGION) }));
      if (sent.MessageId) notices.push({ messageId: sent.MessageId, instanceId, sentAtMs: now() });
    };
    const terminate = (instanceId: string) =>
      ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] })).catch(() => undefined);

    /** The instance a victim names now, or why there is none. */
    const victimOf = async (o: FaultOutcome): Promise<string | { skipped: string }> => {
      const f = o.fault;
      if (f.victim === 'starting') {
        const launch = new Promise<string>((resolve) => launchWaiters.push(resolve));
        if (f.stage === 'life') {
          // A replacement starts once the serving instance is interrupted.
          const seen = await look();
          if (!seen.holder || seen.holder === oldId) return { skipped: 'the old instance serves' };
          o.lost = seen.holder;
          await notify('interruption', seen.holder);
          await delay(2_000);
          await terminate(seen.holder);
        }
        const launched = await Promise.race([launch, delay(60_000).then(() => undefined)]);
        if (!launched) return { skipped: 'no launch within 60 s' };
        await delay(1_000); // while it starts
        return launched;
      }
      if (f.victim === 'target') {
        const st = await temporalCall(stack, () => migration().query(statusQuery)).catch(() => undefined);
        if (!st?.newInstanceId) return { skipped: 'no new instance yet' };
        if (st.approval || ['completed', 'rolled-back', 'failed', 'finalizing', 'stop-old'].includes(st.phase))
          return { skipped: `already ${st.phase}` };
        return st.newInstanceId;
      }
      if (f.victim === 'spare') {
        const g = await temporalCall(stack, () => guardian().query(guardianStatusQuery)).catch(() => undefined);
        return g?.spare?.instanceId ?? { skipped: 'no spare' };
      }
      const seen = await look();
      if (!seen.holder || seen.holder === oldId) return { skipped: 'the old instance serves' };
      return seen.holder;
    };

    const apply = async (o: FaultOutcome): Promise<void> => {
      const f = o.fault;
      const base = f.stage === 'migration' ? 0 : await lifeStart;
      if (base === undefined) {
        o.skipped = 'no Spot life';
        return;
      }
      const wait = base + f.atMs - now();
      if (wait > 0) await delay(wait);
      if (finished) {
        o.skipped = 'the run had ended';
        return;
      }
      const at = now();
      const during = async (ms: number, rule: RuleHandle | undefined, blocking: string | undefined) => {
        o.atMs = at;
        await delay(ms);
        rule?.remove();
        if (blocking) checker.block({ fromMs: at, toMs: now(), why: blocking });
      };
      switch (f.kind) {
        case 'worker-kill': {
          const i = f.worker ?? 0;
          const w = workers[i];
          if (!w) {
            o.skipped = 'worker already down';
            return;
          }
          workers[i] = undefined;
          o.atMs = at;
          await w.kill();
          await delay(f.durationMs ?? 1000);
          await spawn(i);
          checker.block({ fromMs: at, toMs: now(), why: `worker ${i} killed`, catchUpMs: BOUNDS.killCatchUpMs });
          return;
        }
        case 'server-restart':
          o.atMs = at;
          await stack.restartServer(f.durationMs ?? 1000);
          checker.block({ fromMs: at, toMs: now(), why: 'server restart' });
          return;
        case 'aws-unreachable':
          return during(f.durationMs ?? 5000, s.proxy.unreachable(), 'AWS unreachable');
        case 'throttle-burst':
          return during(
            f.durationMs ?? 5000,
            s.proxy.throttle('*', { rate: f.rate ?? 0.5, seed: spec.seed + f.index }),
            'throttling',
          );
        case 'server-error-burst':
          return during(
            f.durationMs ?? 5000,
            s.proxy.serverError('*', { rate: f.rate ?? 0.3, seed: spec.seed + f.index, status: 503 }),
            '5xx burst',
          );
        case 'capacity': {
          const types = f.instanceTypes ?? [];
          const rule = s.proxy.fail({
            action: 'RunInstances',
            code: 'InsufficientInstanceCapacity',
            status: 500,
            message: 'There is no Spot capacity available that matches your request.',
            when: (p) =>
              p.DryRun !== 'true' &&
              String(p['InstanceMarketOptions.MarketType']) === 'spot' &&
              types.includes(String(p.InstanceType)),
          });
          return during(f.durationMs ?? 10_000, rule, undefined);
        }
        default: {
          const victim = await victimOf(o);
          if (typeof victim !== 'string') {
            o.skipped = victim.skipped;
            return;
          }
          o.atMs = now();
          o.instanceId = victim;
          if (f.kind === 'interruption') {
            await notify('interruption', victim);
            await delay(f.warningMs ?? 2000);
            await terminate(victim);
          } else if (f.kind === 'rebalance') await notify('rebalance', victim);
          else await terminate(victim);
        }
      }
    };
    const faulting = Promise.all(
      outcomes.map((o) => apply(o).catch((err: Error) => void (o.skipped = `failed: ${err.message}`))),
    );

    // The person. They stop waiting once the run has ended, whatever phase it ended in (a run
    // that timed out or was terminated still says the phase it was in).
    let migrationEnded = false;
    const deciding = (async () => {
      let st: MigrationStatus | undefined;
      for (;;) {
        if (migrationEnded) return;
        st = await temporalCall(stack, () => migration().query(statusQuery)).catch(() => undefined);
        if (st && (st.phase === 'awaiting-approval' || ['completed', 'rolled-back', 'failed'].includes(st.phase)))
          break;
        await delay(250);
      }
      if (st.phase !== 'awaiting-approval' || spec.decision === 'timeout') return;
      await delay(spec.decisionAfterMs);
      const decision = spec.decision === 'approve' ? 'approve' : 'reject';
      for (;;) {
        if (decision === 'approve') approvedAtMs ??= now();
        try {
          await temporalCall(stack, () =>
            migration().executeUpdate(decideUpdate, {
              args: [
                decision === 'approve'
                  ? { decision: 'approve', by: 'chaos' }
                  : { decision: 'reject', by: 'chaos', reason: 'chaos said no' },
              ],
            }),
          );
          return;
        } catch (err) {
          // Refused (a relaunch asked again, or the run ended): ask again while it waits.
          if (migrationEnded) return;
          const again = await temporalCall(stack, () => migration().query(statusQuery)).catch(() => undefined);
          if (!again || ['completed', 'rolled-back', 'failed', 'finalizing'].includes(again.phase)) return;
          if (again.approval) return;
          log(`  decision refused (${(err as Error).message.split('\n')[0]}); asking again`);
          await delay(1000);
        }
      }
    })();

    // The migration's end.
    for (;;) {
      try {
        report = await temporalCall(stack, () => migration().result() as Promise<MigrationReport>, 600_000);
        outcome = report.outcome;
        break;
      } catch (err) {
        if (err instanceof WorkflowFailedError) {
          const cause = err.cause;
          const details = cause instanceof ApplicationFailure ? cause.details?.[0] : undefined;
          report = details && typeof details === 'object' ? (details as MigrationReport) : undefined;
          outcome = report?.outcome ?? `failed: ${cause?.message ?? err.message}`;
          break;
        }
        if (now() > 900_000) throw err;
        await delay(500);
      }
    }
    migrationEnded = true;
    await deciding;
    const guarded = Boolean(report?.guardianWorkflowId);
    checker.expectGuardian(guarded);
    if (guarded && spec.lifeMs > 0) {
      lifeStarts(now());
      await delay(spec.lifeMs);
    } else lifeStarts(undefined);
    // Faults of the life stage that were waiting for it are skipped once it is known there is none.
    await faulting;

    // Heal, and let it settle.
    s.proxy.reset();
    for (let i = 0; i < spec.workers; i++) if (!workers[i]) await spawn(i);
    const settleBy = Date.now() + BOUNDS.settleMs;
    let g: GuardianStatus | undefined;
    for (;;) {
      const seen = await look();
      g = guarded
        ? await temporalCall(stack, () => guardian().query(guardianStatusQuery)).catch(() => undefined)
        : undefined;
      const guardianSettled =
        !guarded || (g?.state === 'guarding' && g.pending.length === 0 && (!spec.warmSpare || g.spare !== undefined));
      // Every notice on the queue taken (the router may still be catching up after an outage).
      const drained = !queueUrl || (await queueDepth(s, queueUrl)) === 0;
      if (seen.serves && guardianSettled && drained) break;
      if (Date.now() > settleBy) break;
      await delay(500);
    }
    const live = (
      await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG_PLAN}`, Values: [plan.name] }] }))
    ).Reservations?.flatMap((r) => r.Instances ?? [])
      .filter((i) => i.InstanceId !== oldId && !isDead(i.State?.Name) && i.State?.Name !== 'stopped')
      .map((i) => i.InstanceId ?? '');
    const holder = (await look()).holder;
    finished = true;
    await sampling;

    // What the router made of each notice, and whether its workflow shows it.
    const router = await temporalCall(stack, (c) =>
      c.workflow.getHandle(routerWorkflowId(REGION)).query(routerStatusQuery),
    ).catch(() => undefined as RouterStatus | undefined);
    const migrationStatus = await temporalCall(stack, () => migration().query(statusQuery)).catch(() => undefined);
    for (const n of notices) {
      const record = router?.notices?.find((r) => r.messageId === n.messageId);
      if (record) {
        n.record = {
          outcome: record.outcome,
          ...(record.guardianId ? { guardianId: record.guardianId } : {}),
          ...(record.reason ? { reason: record.reason } : {}),
        };
        if (record.outcome === 'routed')
          n.taken = shows(record.guardianId, n.instanceId, g, migrationStatus, migrationId);
      }
    }
    const queued = queueUrl ? await queueDepth(s, queueUrl) : 0;

    // The guardian told to stop; then nothing may be left over.
    let guardianAfter: string | undefined;
    if (guarded) {
      await temporalCall(stack, () => guardian().signal(stopGuardingSignal)).catch(() => undefined);
      guardianAfter = await temporalCall(stack, () => guardian().result() as Promise<GuardianStatus>, 120_000).then(
        (ended) => ended.state,
        (err: Error) => `not ended: ${err.message}`,
      );
    }
    const leftovers = await findLeftovers(s.direct, plan, { olderThanMs: 0, guardianRuns: async () => false });
    const violations = checker.finish(
      {
        atMs: now(),
        migration: {
          outcome,
          compensations: (report?.compensations ?? []).map((c) => ({ name: c.name, state: c.state })),
          undoFailing: migrationStatus?.undoFailing !== undefined,
        },
        ...(guarded ? { guardian: { before: g?.state ?? 'unknown', after: guardianAfter ?? 'unknown' } } : {}),
        live: live ?? [],
        ...(g?.spare ? { spare: g.spare.instanceId } : {}),
        ...(holder ? { holder } : {}),
        oldInstanceId: oldId,
        leftovers: leftovers.map((l) => `${l.kind} ${l.id} (${l.why})`),
        queued,
      },
      notices,
    );
    if (stopSeen && report?.approval?.decision !== 'approved')
      violations.push({
        invariant: 'old-stopped-early',
        atMs: now(),
        detail: `the old instance was stopped, and the run records no approval (${report?.approval?.decision ?? 'none'})`,
      });
    cleanups.push(async () => {
      for (const id of [guardianWorkflowId(plan.name), routerWorkflowId(REGION)])
        await temporalCall(stack, (c) => c.workflow.getHandle(id).terminate('chaos run over'), 20_000).catch(
          () => undefined,
        );
    });
    violations.sort((a, b) => a.atMs - b.atMs);
    const first = violations[0];
    return {
      spec,
      outcome,
      violations,
      faults: outcomes,
      notices: notices.length,
      replacements: g?.replacements ?? 0,
      longestDownMs: checker.longestDownMs,
      outages: checker.outages,
      durationMs: now(),
      ...(first
        ? {
            firstViolation: {
              violation: first,
              faultsBefore: outcomes
                .filter((o) => o.atMs !== undefined && o.atMs <= first.atMs)
                .map(
                  (o) =>
                    `${describeFault(o.fault)} at +${((o.atMs ?? 0) / 1000).toFixed(1)}s${o.instanceId ? ` on ${o.instanceId}` : ''}`,
                ),
            },
          }
        : {}),
    };
  } finally {
    finished = true;
    lifeStarts(undefined);
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }
}

/** Whether the workflow a notice went to shows it: acted on (a round, a relaunch) or ignored with a reason. */
function shows(
  workflowId: string | undefined,
  instanceId: string,
  g: GuardianStatus | undefined,
  m: MigrationStatus | undefined,
  migrationId: string,
): boolean {
  if (workflowId === migrationId)
    return Boolean(
      m?.relaunches?.some((r) => r.instanceId === instanceId) ||
      m?.ignoredMessages.some((x) => JSON.stringify(x).includes(instanceId)),
    );
  return Boolean(
    g?.events.some((e) => e.oldInstanceId === instanceId) ||
    g?.ignored.some((x) => JSON.stringify(x).includes(instanceId)) ||
    g?.spareEvents?.some((x) => JSON.stringify(x).includes(instanceId)) ||
    g?.pending.some((p) => p.instanceId === instanceId),
  );
}

async function queueDepth(s: Scenario, queueUrl: string): Promise<number> {
  const out = await s.direct.sqs(REGION).send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  const a = out.Attributes ?? {};
  return Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0);
}
