/**
 * A service migrated onto Spot and its guardian, for the tests of the guardian and the router:
 * the migration runs and is approved, so the guardian starts the way production starts it.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { NotifySettings } from '../../src/activities/notify';
import type { Plan } from '../../src/plan/schema';
import { guardianWorkflowId } from '../../src/shared/constants';
import { decideUpdate } from '../../src/shared/migration';
import type { MigrationReport } from '../../src/shared/report';
import type { GuardianStatus } from '../../src/shared/spot';
import type { Integration } from './lifecycle';
import { addressHolder, instance, startMigration, waitForPhase } from './migration';
import { pollUntil } from './net';
import { startScenario, type Scenario } from './scenario';
import { testPlan } from './seed';
import { createQueue, routerStatus, setUpEvents, waitForGuardian } from './spot';
import { startWorker, type TestWorker } from './worker';

type PlanOverrides = NonNullable<Parameters<typeof testPlan>[2]>;

export interface Guarded {
  s: Scenario;
  w: TestWorker;
  /** The spot queue's own worker, when the workers run apart. */
  spot?: TestWorker;
  plan: Plan;
  queueUrl: string;
  guardian: WorkflowHandle;
  first: GuardianStatus;
  report: MigrationReport;
}

export async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  await pollUntil(what, async () => ((await ok()) ? true : undefined), { timeoutMs, intervalMs: 100 });
}

export async function routerKnows(t: Integration, region: string, count: number): Promise<void> {
  await waitFor(
    `router sees ${count} guarded instance(s)`,
    async () => (await routerStatus(t.client, region)).guarded >= count,
  );
}

/** A Spot migration in `region`, approved; returns its guardian once it guards the new instance. */
export async function migrated(
  t: Integration,
  region: string,
  overrides: PlanOverrides | ((s: Scenario) => PlanOverrides) = {},
  options: {
    workers?: 'together' | 'apart';
    notify?: NotifySettings;
    /** `events-setup`: the queue and rules `migration events setup` makes, instead of a bare queue. */
    queue?: 'bare' | 'events-setup';
  } = {},
): Promise<Guarded> {
  const s = await startScenario({ maxAttempts: 3, seed: { region } });
  t.track(s);
  const queueUrl =
    options.queue === 'events-setup' ? await setUpEvents(s.direct, region) : await createQueue(s.direct, region);
  const o = typeof overrides === 'function' ? overrides(s) : overrides;
  const plan = testPlan(s.source, s.world.ports, {
    checks: { attempts: 3, interval: '1s' },
    ...o,
    target: { market: 'spot', ...(o.target ?? {}) },
    spot: { interruptionQueueUrl: queueUrl, pollInterval: '1s', ...(o.spot ?? {}) },
  } as PlanOverrides);
  // One worker on both queues, as `migration worker` runs by default; or one on each, as the
  // docs show for keeping recoveries apart.
  const apart = options.workers === 'apart';
  const w = await startWorker({
    clients: s.clients,
    ...(apart ? { queues: 'migration' as const, identity: 'migration-worker' } : {}),
    ...(options.notify ? { notify: options.notify } : {}),
  });
  t.track({ close: () => w.stop() });
  let spot: TestWorker | undefined;
  if (apart) {
    spot = await startWorker({ clients: s.clients, taskQueue: w.taskQueue, queues: 'spot', identity: 'spot-worker' });
    t.track({ close: async () => spot?.stop() });
  }
  t.endSpotWorkflows(region, () => [guardianWorkflowId(plan.name)]);
  const handle = await startMigration(t.client, w.taskQueue, plan);
  await waitForPhase(handle, 'awaiting-approval');
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await handle.result();
  expect(report.guardianWorkflowId).toBe(guardianWorkflowId(plan.name));
  const guardian = t.client.workflow.getHandle(guardianWorkflowId(plan.name));
  const first = await waitForGuardian(
    guardian,
    'guarding',
    (g) => g.state === 'guarding' && g.instanceId === report.after.instanceId,
  );
  // The router knows the instance before the test interrupts it.
  await routerKnows(t, region, 1);
  return { s, w, ...(spot ? { spot } : {}), plan, queueUrl, guardian, first, report };
}

/** The replacement `status` names runs, holds the Elastic IP and serves; `oldId` is terminated. */
export async function expectRecovered(g: Guarded, oldId: string, status: GuardianStatus): Promise<string> {
  const region = g.plan.region;
  const newId = status.instanceId;
  expect(newId).not.toBe(oldId);
  expect((await instance(g.s.direct, region, newId)).State?.Name).toBe('running');
  expect(await addressHolder(g.s.direct, g.plan)).toBe(newId);
  expect((await instance(g.s.direct, region, oldId)).State?.Name).toBe('terminated');
  // The service answers on the Elastic IP, from the replacement.
  const res = await fetch(g.s.world.url(g.s.source.publicIp, 'backend'));
  expect(res.status).toBe(200);
  expect(g.s.world.startedInstances()).toContain(newId);
  const event = status.events[status.events.length - 1];
  expect(event).toMatchObject({ oldInstanceId: oldId, newInstanceId: newId, outcome: 'replaced' });
  expect(event.recoveryMs).toBeGreaterThanOrEqual(0);
  return newId;
}
