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
import { Checker, type NoticeTrail, type Outage, type Sample, type Violation } from './invariants';
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

/** Runs one seeded world through its schedule and judges what it saw. */
export async function runOnce(stack: ChaosStack, spec: RunSpec, log: Log): Promise<RunResult> {
  const started = Date.now();
  const s: Scenario = await startScenario({ maxAttempts: 3, seed: { region: REGION } });
  let run: ChaosRun | undefined;
  try {
    const queueUrl = spec.market === 'spot' ? await createQueue(s.direct, REGION) : undefined;
    run = new ChaosRun(stack, spec, log, s, started, queueUrl);
    return await run.execute();
  } finally {
    if (run) await run.close();
    else await s.close().catch(() => undefined);
  }
}

/** Who holds the Elastic IP, its state, and whether the service answers there: a sample, not yet timed. */
type Look = Omit<Sample, 'atMs'>;

/** What the world came to once the faults were healed. */
interface Settled {
  guarded: boolean;
  g?: GuardianStatus;
  live: string[];
}

/**
 * One run's world and its actors: the sampler, the fault scheduler, the person deciding, the
 * migration's end, the settling and the judgement. Each actor is a method; they share what the
 * run has seen so far through the fields below.
 */
class ChaosRun {
  private readonly checker: Checker;
  private readonly outcomes: FaultOutcome[];
  private readonly notices: NoticeTrail[] = [];
  /** Receipt handle → message id, to see which notice a delete was for. */
  private readonly receipts = new Map<string, string>();
  private readonly cleanups: (() => Promise<unknown>)[];
  private readonly workers: (WorkerProcess | undefined)[] = [];
  /** Faults aimed at an instance while it starts, waiting for the next launch. */
  private readonly launchWaiters: ((id: string) => void)[] = [];
  private readonly plan: Plan;
  private readonly oldId: string;
  private readonly eip: string;
  private readonly ec2: ReturnType<Scenario['direct']['ec2']>;
  private readonly taskQueue: string;
  private readonly logDir: string;
  /** Resolves with the Spot life's start, or undefined once it is known there is none. */
  private readonly lifeStart: Promise<number | undefined>;
  private lifeStarts: (at: number | undefined) => void = () => undefined;
  private approvedAtMs: number | undefined;
  private stopSeen = false;
  private finished = false;
  private migrationEnded = false;
  private spawned = 0;
  private migrationId = '';
  private outcome = 'running';
  private report: MigrationReport | undefined;

  constructor(
    private readonly stack: ChaosStack,
    private readonly spec: RunSpec,
    private readonly log: Log,
    private readonly s: Scenario,
    private readonly started: number,
    private readonly queueUrl: string | undefined,
  ) {
    this.cleanups = [() => s.close()];
    this.checker = new Checker({
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
    this.outcomes = spec.faults.map((fault) => ({ fault }));
    this.lifeStart = new Promise<number | undefined>((resolve) => (this.lifeStarts = resolve));
    this.plan = testPlan(s.source, s.world.ports, {
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
    this.oldId = s.source.instanceId;
    this.eip = s.source.publicIp;
    this.ec2 = s.direct.ec2(REGION);
    this.taskQueue = `chaos-${spec.seed}-${spec.run}-${Date.now().toString(36)}`;
    this.logDir = join(ARTIFACTS, `seed-${spec.seed}-run-${spec.run}`);
  }

  private now(): number {
    return Date.now() - this.started;
  }

  private migration(): WorkflowHandle {
    return this.stack.client().workflow.getHandle(this.migrationId);
  }

  private guardian(): WorkflowHandle {
    return this.stack.client().workflow.getHandle(guardianWorkflowId(this.plan.name));
  }

  async execute(): Promise<RunResult> {
    const { spec } = this;
    this.hookProxy();
    await mkdir(this.logDir, { recursive: true });
    for (let i = 0; i < spec.workers; i++) await this.spawn(i);
    this.cleanups.push(async () => {
      for (const w of this.workers) await w?.kill();
    });

    const handle = await temporalCall(this.stack, (c) => startMigration(c, this.taskQueue, this.plan));
    this.migrationId = handle.workflowId;
    this.log(
      `  run ${spec.run}: ${spec.market}${spec.warmSpare ? ' + warm spare' : ''}, ${spec.workers} worker(s), ${spec.decision} after ${(spec.decisionAfterMs / 1000).toFixed(1)} s, life ${(spec.lifeMs / 1000).toFixed(0)} s, ${spec.faults.length} faults; ${this.migrationId}`,
    );

    const sampling = this.sample();
    const faulting = Promise.all(
      this.outcomes.map((o) => this.apply(o).catch((err: Error) => void (o.skipped = `failed: ${err.message}`))),
    );
    const deciding = this.decide();
    await this.awaitMigration();
    this.migrationEnded = true;
    await deciding;
    const guarded = Boolean(this.report?.guardianWorkflowId);
    this.checker.expectGuardian(guarded);
    if (guarded && spec.lifeMs > 0) {
      this.lifeStarts(this.now());
      await delay(spec.lifeMs);
    } else this.lifeStarts(undefined);
    // Faults of the life stage that were waiting for it are skipped once it is known there is none.
    await faulting;

    const settled = await this.settle(guarded);
    this.finished = true;
    await sampling;
    return this.judge(settled);
  }

  /** Stops what the run started: workers, the scenario, the run's long-lived workflows. */
  async close(): Promise<void> {
    this.finished = true;
    this.lifeStarts(undefined);
    for (const c of this.cleanups.reverse()) await c().catch(() => undefined);
  }

  private async look(): Promise<Look> {
    const address = (
      await this.ec2.send(new DescribeAddressesCommand({ AllocationIds: [this.plan.elasticIp.allocationId] }))
    ).Addresses?.[0];
    const holder = address?.InstanceId;
    let holderState: string | undefined;
    if (holder) {
      const r = await this.ec2.send(new DescribeInstancesCommand({ InstanceIds: [holder] }));
      holderState = r.Reservations?.[0]?.Instances?.[0]?.State?.Name;
    }
    let serves = false;
    try {
      const res = await fetch(this.s.world.url(this.eip, 'backend'), { signal: AbortSignal.timeout(1500) });
      serves = res.status === 200;
      await res.arrayBuffer();
    } catch {
      serves = false;
    }
    return { ...(holder ? { holder } : {}), ...(holderState ? { holderState } : {}), serves };
  }

  /** What the run learns from the traffic itself: the old instance's stop, launches, queue reads and deletes. */
  private hookProxy(): void {
    const { proxy } = this.s;
    proxy.onAfter('StopInstances', async ({ call, request }) => {
      if (call.status !== 200 || request.params.DryRun === 'true' || request.params['InstanceId.1'] !== this.oldId)
        return;
      this.stopSeen = true;
      const seen = await this.look();
      this.checker.oldStopped({
        atMs: this.now(),
        ...(this.approvedAtMs !== undefined ? { approvedAtMs: this.approvedAtMs } : {}),
        ...(seen.holder ? { holder: seen.holder === this.oldId ? 'old' : seen.holder } : {}),
        ...(seen.holderState ? { holderState: seen.holderState } : {}),
        serves: seen.serves,
      });
    });
    proxy.onAfter('RunInstances', ({ call, request, responseBody }) => {
      if (call.status !== 200 || request.params.DryRun === 'true') return;
      const id = /<instanceId>(i-[0-9a-f]+)<\/instanceId>/.exec(responseBody)?.[1];
      if (id) for (const w of this.launchWaiters.splice(0)) w(id);
    });
    proxy.onAfter('ReceiveMessage', ({ call, responseBody }) => {
      if (call.status !== 200) return;
      try {
        const body = JSON.parse(responseBody) as { Messages?: { MessageId?: string; ReceiptHandle?: string }[] };
        for (const m of body.Messages ?? [])
          if (m.MessageId && m.ReceiptHandle) this.receipts.set(m.ReceiptHandle, m.MessageId);
      } catch {
        // not JSON: not a read that brought messages
      }
    });
    proxy.onAfter('DeleteMessageBatch', ({ call, request }) => {
      if (call.status !== 200) return;
      const entries = (request.params.Entries ?? []) as { ReceiptHandle?: string }[];
      for (const e of entries) {
        const id = this.receipts.get(e.ReceiptHandle ?? '');
        const trail = this.notices.find((n) => n.messageId === id);
        if (trail && trail.deletedAtMs === undefined) trail.deletedAtMs = this.now();
      }
    });
  }

  /**
   * Starts worker `i`, again and again while it cannot connect (the server may be restarting).
   * Each worker's output is kept under test-artifacts/chaos/ once it ends.
   */
  private async spawn(i: number): Promise<void> {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const identity = `chaos-worker-${i}-${++this.spawned}`;
      try {
        const w = await spawnWorkerProcess({
          taskQueue: this.taskQueue,
          awsEndpoint: this.s.proxy.endpoint,
          temporalAddress: this.stack.address,
          identity,
          readyTimeoutMs: 120_000,
        });
        void w.exited.then(() => writeFile(join(this.logDir, `${w.identity}.log`), w.output()).catch(() => undefined));
        this.workers[i] = w;
        return;
      } catch (err) {
        await writeFile(join(this.logDir, `${identity}.log`), String((err as Error).message)).catch(() => undefined);
        if (Date.now() > deadline) throw err;
        await delay(1_000);
      }
    }
  }

  /** The sampler: what the Elastic IP shows, every SAMPLE_MS until the run is finished. */
  private async sample(): Promise<void> {
    while (!this.finished) {
      try {
        this.checker.sample({ atMs: this.now(), ...(await this.look()) });
      } catch {
        // the side door is never faulted; a failed look is skipped
      }
      await delay(SAMPLE_MS);
    }
  }

  /** Puts a Spot event on the queue, keeping its message id. */
  private async notify(kind: 'interruption' | 'rebalance', instanceId: string): Promise<void> {
    if (!this.queueUrl) return;
    const sent = await this.s.direct
      .sqs(REGION)
      .send(new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: spotEvent(kind, instanceId, REGION) }));
    if (sent.MessageId) this.notices.push({ messageId: sent.MessageId, instanceId, sentAtMs: this.now() });
  }

  private async terminate(instanceId: string): Promise<void> {
    await this.ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] })).catch(() => undefined);
  }

  /** The instance a victim names now, or why there is none. */
  private async victimOf(o: FaultOutcome): Promise<string | { skipped: string }> {
    const f = o.fault;
    if (f.victim === 'starting') {
      const launch = new Promise<string>((resolve) => this.launchWaiters.push(resolve));
      if (f.stage === 'life') {
        // A replacement starts once the serving instance is interrupted.
        const seen = await this.look();
        if (!seen.holder || seen.holder === this.oldId) return { skipped: 'the old instance serves' };
        o.lost = seen.holder;
        await this.notify('interruption', seen.holder);
        await delay(2_000);
        await this.terminate(seen.holder);
      }
      const launched = await Promise.race([launch, delay(60_000).then(() => undefined)]);
      if (!launched) return { skipped: 'no launch within 60 s' };
      await delay(1_000); // while it starts
      return launched;
    }
    if (f.victim === 'target') {
      const st = await temporalCall(this.stack, () => this.migration().query(statusQuery)).catch(() => undefined);
      if (!st?.newInstanceId) return { skipped: 'no new instance yet' };
      if (st.approval || ['completed', 'rolled-back', 'failed', 'finalizing', 'stop-old'].includes(st.phase))
        return { skipped: `already ${st.phase}` };
      return st.newInstanceId;
    }
    if (f.victim === 'spare') {
      const g = await temporalCall(this.stack, () => this.guardian().query(guardianStatusQuery)).catch(() => undefined);
      return g?.spare?.instanceId ?? { skipped: 'no spare' };
    }
    const seen = await this.look();
    if (!seen.holder || seen.holder === this.oldId) return { skipped: 'the old instance serves' };
    return seen.holder;
  }

  /** Applies one fault at its moment, recording when it struck, or why it did not. */
  private async apply(o: FaultOutcome): Promise<void> {
    const { spec, s, checker } = this;
    const f = o.fault;
    const base = f.stage === 'migration' ? 0 : await this.lifeStart;
    if (base === undefined) {
      o.skipped = 'no Spot life';
      return;
    }
    const wait = base + f.atMs - this.now();
    if (wait > 0) await delay(wait);
    if (this.finished) {
      o.skipped = 'the run had ended';
      return;
    }
    const at = this.now();
    const during = async (ms: number, rule: RuleHandle | undefined, blocking: string | undefined) => {
      o.atMs = at;
      await delay(ms);
      rule?.remove();
      if (blocking) checker.block({ fromMs: at, toMs: this.now(), why: blocking });
    };
    switch (f.kind) {
      case 'worker-kill': {
        const i = f.worker ?? 0;
        const w = this.workers[i];
        if (!w) {
          o.skipped = 'worker already down';
          return;
        }
        this.workers[i] = undefined;
        o.atMs = at;
        await w.kill();
        await delay(f.durationMs ?? 1000);
        await this.spawn(i);
        checker.block({ fromMs: at, toMs: this.now(), why: `worker ${i} killed`, catchUpMs: BOUNDS.killCatchUpMs });
        return;
      }
      case 'server-restart':
        o.atMs = at;
        await this.stack.restartServer(f.durationMs ?? 1000);
        checker.block({ fromMs: at, toMs: this.now(), why: 'server restart' });
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
        const victim = await this.victimOf(o);
        if (typeof victim !== 'string') {
          o.skipped = victim.skipped;
          return;
        }
        o.atMs = this.now();
        o.instanceId = victim;
        if (f.kind === 'interruption') {
          await this.notify('interruption', victim);
          await delay(f.warningMs ?? 2000);
          await this.terminate(victim);
        } else if (f.kind === 'rebalance') await this.notify('rebalance', victim);
        else await this.terminate(victim);
      }
    }
  }

  /**
   * The person. They stop waiting once the run has ended, whatever phase it ended in (a run
   * that timed out or was terminated still says the phase it was in).
   */
  private async decide(): Promise<void> {
    const { spec } = this;
    const status = () => temporalCall(this.stack, () => this.migration().query(statusQuery)).catch(() => undefined);
    let st: MigrationStatus | undefined;
    for (;;) {
      if (this.migrationEnded) return;
      st = await status();
      if (st && (st.phase === 'awaiting-approval' || ['completed', 'rolled-back', 'failed'].includes(st.phase))) break;
      await delay(250);
    }
    if (st.phase !== 'awaiting-approval' || spec.decision === 'timeout') return;
    await delay(spec.decisionAfterMs);
    const decision = spec.decision === 'approve' ? 'approve' : 'reject';
    for (;;) {
      if (decision === 'approve') this.approvedAtMs ??= this.now();
      try {
        await temporalCall(this.stack, () =>
          this.migration().executeUpdate(decideUpdate, {
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
        if (this.migrationEnded) return;
        const again = await status();
        if (!again || ['completed', 'rolled-back', 'failed', 'finalizing'].includes(again.phase)) return;
        if (again.approval) return;
        this.log(`  decision refused (${(err as Error).message.split('\n')[0]}); asking again`);
        await delay(1000);
      }
    }
  }

  /** The migration's end: its report, from its result or from the failure's details. */
  private async awaitMigration(): Promise<void> {
    for (;;) {
      try {
        this.report = await temporalCall(
          this.stack,
          () => this.migration().result() as Promise<MigrationReport>,
          600_000,
        );
        this.outcome = this.report.outcome;
        return;
      } catch (err) {
        if (err instanceof WorkflowFailedError) {
          const cause = err.cause;
          const details = cause instanceof ApplicationFailure ? cause.details?.[0] : undefined;
          this.report = details && typeof details === 'object' ? (details as MigrationReport) : undefined;
          this.outcome = this.report?.outcome ?? `failed: ${cause?.message ?? err.message}`;
          return;
        }
        if (this.now() > 900_000) throw err;
        await delay(500);
      }
    }
  }

  /** Heals every fault, restarts missing workers, and waits (up to the bound) for the world to settle. */
  private async settle(guarded: boolean): Promise<Settled> {
    const { spec, queueUrl } = this;
    this.s.proxy.reset();
    for (let i = 0; i < spec.workers; i++) if (!this.workers[i]) await this.spawn(i);
    const settleBy = Date.now() + BOUNDS.settleMs;
    let g: GuardianStatus | undefined;
    for (;;) {
      const seen = await this.look();
      g = guarded
        ? await temporalCall(this.stack, () => this.guardian().query(guardianStatusQuery)).catch(() => undefined)
        : undefined;
      const guardianSettled =
        !guarded || (g?.state === 'guarding' && g.pending.length === 0 && (!spec.warmSpare || g.spare !== undefined));
      // Every notice on the queue taken (the router may still be catching up after an outage).
      const drained = !queueUrl || (await queueDepth(this.s, queueUrl)) === 0;
      if (seen.serves && guardianSettled && drained) break;
      if (Date.now() > settleBy) break;
      await delay(500);
    }
    const live = (
      await this.ec2.send(
        new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG_PLAN}`, Values: [this.plan.name] }] }),
      )
    ).Reservations?.flatMap((r) => r.Instances ?? [])
      .filter((i) => i.InstanceId !== this.oldId && !isDead(i.State?.Name) && i.State?.Name !== 'stopped')
      .map((i) => i.InstanceId ?? '');
    return { guarded, ...(g ? { g } : {}), live: live ?? [] };
  }

  /** The final state, the notices' trails, the guardian's stop and the leftovers, judged by the checker. */
  private async judge({ guarded, g, live }: Settled): Promise<RunResult> {
    const { stack, plan, report, queueUrl, notices, outcomes } = this;
    // What the router made of each notice, and whether its workflow shows it.
    const router = await temporalCall(stack, (c) =>
      c.workflow.getHandle(routerWorkflowId(REGION)).query(routerStatusQuery),
    ).catch(() => undefined as RouterStatus | undefined);
    const migrationStatus = await temporalCall(stack, () => this.migration().query(statusQuery)).catch(() => undefined);
    for (const n of notices) {
      const record = router?.notices?.find((r) => r.messageId === n.messageId);
      if (record) {
        n.record = {
          outcome: record.outcome,
          ...(record.guardianId ? { guardianId: record.guardianId } : {}),
          ...(record.reason ? { reason: record.reason } : {}),
        };
        if (record.outcome === 'routed')
          n.taken = shows(record.guardianId, n.instanceId, g, migrationStatus, this.migrationId);
      }
    }
    const queued = queueUrl ? await queueDepth(this.s, queueUrl) : 0;

    // The guardian told to stop; then nothing may be left over.
    let guardianAfter: string | undefined;
    if (guarded) {
      await temporalCall(stack, () => this.guardian().signal(stopGuardingSignal)).catch(() => undefined);
      guardianAfter = await temporalCall(
        stack,
        () => this.guardian().result() as Promise<GuardianStatus>,
        120_000,
      ).then(
        (ended) => ended.state,
        (err: Error) => `not ended: ${err.message}`,
      );
    }
    const leftovers = await findLeftovers(this.s.direct, plan, { olderThanMs: 0, guardianRuns: async () => false });
    // The last word on how the run ends: a look now, the sampler stopped (its last sample, in
    // flight when settling ended, may predate the recovery that settling saw).
    const end = await this.look();
    const violations = this.checker.finish(
      {
        atMs: this.now(),
        migration: {
          outcome: this.outcome,
          compensations: (report?.compensations ?? []).map((c) => ({ name: c.name, state: c.state })),
          undoFailing: migrationStatus?.undoFailing !== undefined,
        },
        ...(guarded ? { guardian: { before: g?.state ?? 'unknown', after: guardianAfter ?? 'unknown' } } : {}),
        live,
        ...(g?.spare ? { spare: g.spare.instanceId } : {}),
        ...end,
        oldInstanceId: this.oldId,
        leftovers: leftovers.map((l) => `${l.kind} ${l.id} (${l.why})`),
        queued,
      },
      notices,
    );
    if (this.stopSeen && report?.approval?.decision !== 'approved')
      violations.push({
        invariant: 'old-stopped-early',
        atMs: this.now(),
        detail: `the old instance was stopped, and the run records no approval (${report?.approval?.decision ?? 'none'})`,
      });
    this.cleanups.push(async () => {
      for (const id of [guardianWorkflowId(plan.name), routerWorkflowId(REGION)])
        await temporalCall(stack, (c) => c.workflow.getHandle(id).terminate('chaos run over'), 20_000).catch(
          () => undefined,
        );
    });
    violations.sort((a, b) => a.atMs - b.atMs);
    const first = violations[0];
    return {
      spec: this.spec,
      outcome: this.outcome,
      violations,
      faults: outcomes,
      notices: notices.length,
      replacements: g?.replacements ?? 0,
      longestDownMs: this.checker.longestDownMs,
      outages: this.checker.outages,
      durationMs: this.now(),
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
