/**
 * Whole migrations for the benchmarks: a fresh old service per run, the workflow started on the
 * benchmark worker, approved through the `decide` update the moment it waits for a person, and
 * its result. The approval wait is taken out of the figures (a person is no overhead of ours).
 */
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { Plan } from '../src/plan/schema';
import { migrationWorkflowId } from '../src/shared/constants';
import { decideUpdate } from '../src/shared/migration';
import type { MigrationReport } from '../src/shared/report';
import type { migrateToGpu } from '../src/workflows';
import { seedSource, testPlan, type PlanOverrides, type SeededSource } from '../test/harness/seed';
import type { AppWorld } from '../test/harness/world';
import type { Account } from './stack';
import { sleep } from './stats';

/** A fresh old service in `world`'s region (default: the account's), and a plan for it. */
export async function seededPlan(
  account: Account,
  overrides: PlanOverrides = {},
  world: AppWorld = account.world,
): Promise<{ seeded: SeededSource; plan: Plan }> {
  const seeded = {
    ...(await seedSource(account.direct, { region: world.region, world })),
    grant: (p: Plan) => account.proxy.grantPlan(p),
  };
  const plan = testPlan(seeded, world.ports, { ...overrides, target: { market: 'on-demand' } });
  return { seeded, plan };
}

/**
 * Tells when a migration reaches its approval: its last check before the wait is the synthesis
 * request at the Elastic IP (phase 10), which the app's stand-in sees. One poller for many runs.
 */
export class ApprovalWatch {
  private readonly waiting = new Map<string, () => void>();
  private readonly timer: NodeJS.Timeout;

  private readonly seenBy = new Map<AppWorld, number>();

  /** Watches the app's stand-ins of the account, or of these worlds. */
  constructor(private readonly worlds: AppWorld[]) {
    this.timer = setInterval(() => this.check(), 10);
  }

  /** Resolves once the synthesis request to `elasticIp` was made. */
  reached(elasticIp: string): Promise<void> {
    return new Promise((resolve) => this.waiting.set(elasticIp, resolve));
  }

  private check(): void {
    for (const world of this.worlds) {
      const requests = world.requests({ service: 'backend' });
      let seen = this.seenBy.get(world) ?? 0;
      for (; seen < requests.length; seen++) {
        const r = requests[seen];
        if (r.method !== 'POST') continue;
        const done = this.waiting.get(r.address);
        if (done) {
          this.waiting.delete(r.address);
          done();
        }
      }
      this.seenBy.set(world, seen);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

export interface MigrationRun {
  workflowId: string;
  /** Client start → result, minus the time the run waited for the decision. */
  netMs: number;
  totalMs: number;
  approvalWaitMs: number;
  report: MigrationReport;
}

export async function runMigration(
  client: Client,
  taskQueue: string,
  plan: Plan,
  elasticIp: string,
  watch: ApprovalWatch,
): Promise<MigrationRun> {
  const workflowId = migrationWorkflowId(plan.name);
  const atApproval = watch.reached(elasticIp);
  const t0 = Date.now();
  const handle = await client.workflow.start<typeof migrateToGpu>('migrateToGpu', {
    taskQueue,
    workflowId,
    args: [{ plan }],
  });
  const result = handle.result();
  // A run that fails before its approval never asks for it.
  const next = await Promise.race([
    atApproval.then(() => 'approval' as const),
    result.then(
      () => 'ended' as const,
      () => 'ended' as const,
    ),
  ]);
  if (next === 'approval') await approve(handle.workflowId, client);
  const report = await result;
  const t1 = Date.now();
  if (report.outcome !== 'completed')
    throw new Error(`${workflowId} ended ${report.outcome}: ${JSON.stringify(report.error)}`);
  const performance = report.phases.find((p) => p.name === 'performance');
  const waitedFrom = Date.parse(performance?.endedAt ?? '');
  const decidedAt = Date.parse(report.approval?.at ?? '');
  const approvalWaitMs =
    Number.isFinite(waitedFrom) && Number.isFinite(decidedAt) ? Math.max(0, decidedAt - waitedFrom) : 0;
  return { workflowId, totalMs: t1 - t0, approvalWaitMs, netMs: t1 - t0 - approvalWaitMs, report };
}

/** Sends `decide approve` until the validator accepts it (the run may still be finishing phase 10). */
async function approve(workflowId: string, client: Client): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      await client.workflow
        .getHandle(workflowId)
        .executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'bench' }] });
      return;
    } catch (err) {
      if (!(err instanceof WorkflowUpdateFailedError) || Date.now() > deadline) throw err;
      await sleep(10);
    }
  }
}
