/**
 * spotGuardian and spotEventRouter against the real dev server and moto (EC2, SSM, SQS): every
 * test migrates onto Spot first, so the guardian is started the way production starts it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import type { WorkflowHandle } from '@temporalio/client';
import { guardianWorkflowId, TAG_GUARDED } from '../../src/shared/constants';
import { decideUpdate } from '../../src/shared/migration';
import { guardianStatusQuery, interruptionSignal } from '../../src/shared/spot';
import { runCli, setEnv } from '../harness/cli';
import { temporalAddress, temporalNamespace } from '../harness/env';
import { useIntegration } from '../harness/lifecycle';
import { addressHolder, aliveInstancesOfPlan, instance, startMigration, waitForPhase } from '../harness/migration';
import { gate, onLaunched } from '../harness/outcome';
import { startScenario, type Scenario } from '../harness/scenario';
import { testPlan } from '../harness/seed';
import { countScans, createQueue, putMessage, routerStatus, spotEvent, waitForGuardian } from '../harness/spot';
import { startWorker } from '../harness/worker';
import { listed } from '../harness/visibility';
import { expectRecovered, migrated as migratedOnSpot, routerKnows, waitFor } from '../harness/guarded';
import type { Plan } from '../../src/plan/schema';

// Guardian tests use their own region, so the region's router is theirs alone.
const REGION = 'us-west-2';

const t = useIntegration();

const migrated = (overrides: Parameters<typeof testPlan>[2] = {}) => migratedOnSpot(t, REGION, overrides);

/**
 * A Spot migration of its own plan, up to the approval wait; the guardian does not run yet.
 * `before` sets up the world before the migration starts.
 */
async function awaitingApproval(before: (s: Scenario) => void = () => undefined): Promise<{
  s: Scenario;
  plan: Plan;
  queueUrl: string;
  handle: WorkflowHandle;
  newId: string;
}> {
  const s = await startScenario({ maxAttempts: 3, seed: { region: REGION } });
  t.track(s);
  const queueUrl = await createQueue(s.direct, REGION);
  const plan = testPlan(s.source, s.world.ports, {
    target: { market: 'spot' },
    spot: { interruptionQueueUrl: queueUrl, pollInterval: '1s' },
    checks: { attempts: 3, interval: '1s' },
  });
  const w = await startWorker({ clients: s.clients });
  t.track({ close: () => w.stop() });
  t.endSpotWorkflows(REGION, () => [guardianWorkflowId(plan.name)]);
  before(s);
  const handle = await startMigration(t.client, w.taskQueue, plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');
  const newId = waiting.newInstanceId as string;
  // The migration guards the new instance itself until the guardian starts.
  const tags = (await instance(s.direct, REGION, newId)).Tags ?? [];
  expect(tags).toContainEqual({ Key: TAG_GUARDED, Value: handle.workflowId });
  await waitFor('the router knows the new instance', async () => (await routerStatus(t.client, REGION)).guarded >= 1);
  return { s, plan, queueUrl, handle, newId };
}

test('the guardian guards from the moment the old instance is stopped, before the golden image is ready', async () => {
  // The golden image (made from the approval wait on) takes its time; the new instance is
  // interrupted meanwhile, once the person approved.
  const golden = gate();
  const { s, plan, handle, newId } = await awaitingApproval((world) =>
    world.proxy.onAfter('CreateImage', async ({ request }) => {
      if (String(request.params.DryRun) !== 'true' && String(request.params.Description ?? '').startsWith('golden'))
        await golden.promise;
    }),
  );
  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const guardian = t.client.workflow.getHandle(guardianWorkflowId(plan.name));
  await waitForGuardian(
    guardian,
    'guarding the new instance',
    (g) => g.state === 'guarding' && g.instanceId === newId && g.goldenImageId === undefined,
  );
  await waitFor('the guardian owns the instance', async () =>
    ((await instance(s.direct, REGION, newId)).Tags ?? []).some(
      (tag) => tag.Key === TAG_GUARDED && tag.Value === guardian.workflowId,
    ),
  );
  await guardian.signal(interruptionSignal, { instanceId: newId, kind: 'interruption' });
  // Replaced from the plan's image: every remote step runs on the replacement.
  const after = await waitForGuardian(
    guardian,
    'one replacement',
    (g) => g.replacements === 1 && g.state === 'guarding',
  );
  expect(after.instanceId).not.toBe(newId);
  expect(await addressHolder(s.direct, plan)).toBe(after.instanceId);
  golden.open();
  const report = await handle.result();
  expect(report.guardianWorkflowId).toBe(guardian.workflowId);
  // The guardian is told of the golden image once it is there.
  await waitForGuardian(
    guardian,
    'the golden image',
    (g) => g.goldenImageId !== undefined && g.goldenImageId === report.images.golden,
  );
});

test('an interruption warning on the queue: a replacement runs the service and holds the EIP', async () => {
  const g = await migrated();
  const oldId = g.first.instanceId;
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', oldId, REGION));

  // The guardian continues as new after a replacement, carrying its state into run 2.
  const after = await waitForGuardian(
    g.guardian,
    'one replacement, in a new run',
    (s) => s.replacements === 1 && s.state === 'guarding' && s.run === 2,
  );
  await expectRecovered(g, oldId, after);
  expect(after.events[0]).toMatchObject({ kind: 'interruption', source: 'queue' });
  // The Web UI finds the guardian by the instance it guards now; the old instance only by the
  // run that replaced it (closed: continued as new).
  const guarding = `GuardedInstance="${after.instanceId}" AND PlanName="${g.plan.name}" AND ExecutionStatus="Running"`;
  expect(await listed(t.client, guarding, [g.guardian.workflowId])).toEqual([g.guardian.workflowId]);
  const before = await listed(t.client, `GuardedInstance="${oldId}" AND ExecutionStatus="Running"`, []);
  expect(before).toEqual([]);
  // The router deleted the message after the guardian took it.
  await waitFor('queue drained', async () => (await routerStatus(t.client, REGION)).stats.messagesRouted >= 1);
  const tagged = await g.s.direct.ec2(REGION).send(new DescribeInstancesCommand({ InstanceIds: [after.instanceId] }));
  expect(tagged.Reservations?.[0]?.Instances?.[0]?.Tags).toContainEqual({
    Key: TAG_GUARDED,
    Value: g.guardian.workflowId,
  });
});

test('an instance terminated with no warning is recovered through the batched poll', async () => {
  const g = await migrated();
  const oldId = g.first.instanceId;
  await g.s.direct.ec2(REGION).send(new TerminateInstancesCommand({ InstanceIds: [oldId] }));

  const after = await waitForGuardian(
    g.guardian,
    'one replacement',
    (s) => s.replacements === 1 && s.state === 'guarding',
  );
  await expectRecovered(g, oldId, after);
  expect(after.events[0]).toMatchObject({ kind: 'stopped', source: 'poll' });
});

test('a rebalance recommendation replaces the instance while it still serves; the EIP moves once', async () => {
  const g = await migrated();
  const oldId = g.first.instanceId;
  const moves = g.s.proxy.count('AssociateAddress');
  // The old instance must still be running when the EIP leaves it: zero downtime.
  const stateAtMove: string[] = [];
  g.s.proxy.onAfter('AssociateAddress', async () => {
    stateAtMove.push((await instance(g.s.direct, REGION, oldId)).State?.Name ?? '?');
  });
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('rebalance', oldId, REGION));

  const after = await waitForGuardian(
    g.guardian,
    'one replacement',
    (s) => s.replacements === 1 && s.state === 'guarding',
  );
  await expectRecovered(g, oldId, after);
  expect(after.events[0].kind).toBe('rebalance');
  expect(g.s.proxy.count('AssociateAddress') - moves).toBe(1);
  expect(stateAtMove).toEqual(['running']);
});

test('two notices for the same instance give one replacement', async () => {
  const g = await migrated();
  const oldId = g.first.instanceId;
  const launches = g.s.proxy.count('RunInstances');
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', oldId, REGION));
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('rebalance', oldId, REGION));
  await g.guardian.signal(interruptionSignal, { instanceId: oldId, kind: 'manual' });

  const after = await waitForGuardian(
    g.guardian,
    'one replacement',
    (s) => s.replacements === 1 && s.state === 'guarding',
  );
  await expectRecovered(g, oldId, after);
  // Let the router deliver both queued notices; the guardian must ignore the later ones.
  await waitFor('both messages routed', async () => (await routerStatus(t.client, REGION)).stats.messagesRouted >= 2);
  const settled = await g.guardian.query(guardianStatusQuery);
  expect(settled.replacements).toBe(1);
  expect(g.s.proxy.count('RunInstances') - launches).toBe(1);
  expect(await aliveInstancesOfPlan(g.s.direct, g.plan)).toHaveLength(1);
});

test('InsufficientInstanceCapacity on the first type takes the next type; on every Spot type, on-demand', async () => {
  // The launch's own fallback through the plan's order: no pool ranked, none skipped.
  const g = await migrated({ spot: { poolOrder: 'plan', avoidInterruptedPoolFor: '0s' } } as Parameters<
    typeof testPlan
  >[2]);
  const forReal = (p: Record<string, unknown>) => p.DryRun !== 'true';
  // First replacement: the main type has no capacity.
  g.s.proxy.fail({
    action: 'RunInstances',
    code: 'InsufficientInstanceCapacity',
    status: 500,
    times: 1,
    when: (p) => forReal(p) && p.InstanceType === 'g4dn.xlarge',
  });
  await g.guardian.signal(interruptionSignal, { instanceId: g.first.instanceId, kind: 'interruption' });
  const one = await waitForGuardian(
    g.guardian,
    'first replacement',
    (s) => s.replacements === 1 && s.state === 'guarding',
  );
  expect(one.events[0]).toMatchObject({ instanceType: 'g4dn.2xlarge', market: 'spot', outcome: 'replaced' });

  // Second: no Spot capacity for any type.
  g.s.proxy.fail({
    action: 'RunInstances',
    code: 'InsufficientInstanceCapacity',
    status: 500,
    times: 100,
    when: (p) => forReal(p) && String(p['InstanceMarketOptions.MarketType']) === 'spot',
  });
  await g.guardian.signal(interruptionSignal, { instanceId: one.instanceId, kind: 'interruption' });
  const two = await waitForGuardian(
    g.guardian,
    'second replacement',
    (s) => s.replacements === 2 && s.state === 'guarding',
  );
  expect(two.events[1]).toMatchObject({ instanceType: 'g4dn.xlarge', market: 'on-demand', outcome: 'replaced' });
  expect((await instance(g.s.direct, REGION, two.instanceId)).InstanceLifecycle).toBeUndefined();
  expect(await addressHolder(g.s.direct, g.plan)).toBe(two.instanceId);
});

test('after a failed round the guardian launches again, spot.retryRoundAfter later: each launch has ClientTokens of its own', async () => {
  const g = await migrated({ spot: { retryRoundAfter: '3s' } });
  // The first round's three replacements never get healthy: their backend refuses connections.
  const launched = new Set<string>();
  onLaunched(g.s.proxy, (id) => {
    if (launched.has(id)) return;
    launched.add(id);
    if (launched.size <= 3) g.s.world.configure({ service: 'backend', instanceId: id, fail: 'refuse' });
  });
  await g.guardian.signal(interruptionSignal, { instanceId: g.first.instanceId, kind: 'rebalance' });
  const failed = await waitForGuardian(
    g.guardian,
    'a failed round',
    (s) => s.events.some((e) => e.outcome === 'failed'),
    90_000,
  );
  expect(failed.instanceId).toBe(g.first.instanceId);
  // The next round (3 s later, in a new run) launches a fourth instance rather than replaying
  // the first round's terminated ones.
  const after = await waitForGuardian(
    g.guardian,
    'replaced in the next round',
    (s) => s.replacements === 1 && s.state === 'guarding',
    150_000,
  );
  expect(launched.size).toBe(4);
  expect([...launched]).toContain(after.instanceId);
  await expectRecovered(g, g.first.instanceId, after);
}, 300_000);

test('a guarded instance one listing leaves out is asked for by id, not replaced', async () => {
  const g = await migrated();
  // The region's router is shared by this file's tests: compare its counters with now.
  const before = (await routerStatus(t.client, REGION)).stats;
  const scans = countScans(g.s.proxy);
  const omitted = g.s.proxy.omitFromListings(g.first.instanceId, 1);
  await waitFor(
    'the scan that missed it',
    async () =>
      omitted.fired === 1 &&
      ((await routerStatus(t.client, REGION)).stats.missedByScan ?? 0) > (before.missedByScan ?? 0),
  );
  // A few more scans: still no notice, still the same instance.
  const seen = scans.count;
  await waitFor('three more scans', async () => scans.count >= seen + 3);
  const status = await g.guardian.query(guardianStatusQuery);
  expect(status).toMatchObject({ instanceId: g.first.instanceId, replacements: 0, state: 'guarding', pending: [] });
  expect(status.events).toEqual([]);
  expect((await routerStatus(t.client, REGION)).stats.pollNotices).toBe(before.pollNotices);
});

test('many replacements: each run stays small and the state carries over', async () => {
  const g = await migrated();
  let current = g.first.instanceId;
  const cycles = 5;
  for (let i = 1; i <= cycles; i++) {
    await g.guardian.signal(interruptionSignal, { instanceId: current, kind: 'interruption' });
    const s = await waitForGuardian(
      g.guardian,
      `replacement ${i}`,
      // Each replacement ends its run: the next run guards (a run that says guarding has not
      // continued as new yet while it waits for its notifications).
      (x) => x.replacements === i && x.state === 'guarding' && x.run === i + 1,
    );
    current = s.instanceId;
  }
  const final = await g.guardian.query(guardianStatusQuery);
  expect(final.replacements).toBe(cycles);
  expect(final.events.map((e) => e.outcome)).toEqual(Array(cycles).fill('replaced'));
  expect(final.run).toBe(cycles + 1);
  // Every closed run's history is small: one replacement each.
  const runs = [];
  for await (const wf of t.client.workflow.list({ query: `WorkflowId = '${g.guardian.workflowId}'` })) runs.push(wf);
  expect(runs.length).toBe(cycles + 1);
  for (const run of runs) {
    const history = await t.client.workflow.getHandle(g.guardian.workflowId, run.runId).fetchHistory();
    expect(history.events?.length ?? 0).toBeLessThan(200);
  }
  expect(await aliveInstancesOfPlan(g.s.direct, g.plan)).toHaveLength(1);
});

test('a warm spare takes the Elastic IP on an interruption before the old instance goes, with no launch on the way; a lost spare is made again; cleanup leaves it while its guardian runs', async () => {
  const g = await migrated({ spot: { standby: 'warm', standbyCheckInterval: '2s' } });
  const oldId = g.first.instanceId;
  // The report prices the spare beside the serving instance.
  const priced = g.report.cost.rows.filter((r) => r.market === 'spot').map((r) => [r.label, r.perHour.value]);
  expect(priced).toHaveLength(2);
  expect(priced[1]).toEqual(['warm spare', priced[0][1]]);
  const ready = await waitForGuardian(
    g.guardian,
    'a spare, checked again',
    (s) => s.spare !== undefined && (s.spareEvents ?? []).some((e) => e.what === 'checked'),
  );
  const spare = ready.spare as NonNullable<typeof ready.spare>;
  const spareOf = await instance(g.s.direct, REGION, spare.instanceId);
  // From the golden image, in another pool, started, tagged for the router, never behind the EIP.
  expect(spareOf.ImageId).toBe(ready.goldenImageId);
  expect(spareOf.State?.Name).toBe('running');
  expect(spareOf.InstanceType).not.toBe((await instance(g.s.direct, REGION, oldId)).InstanceType);
  expect(spareOf.Tags).toContainEqual({ Key: TAG_GUARDED, Value: g.guardian.workflowId });
  expect(g.s.world.startedInstances()).toContain(spare.instanceId);
  expect(g.s.world.requests({ instanceId: spare.instanceId }).some((r) => r.path.startsWith('/api/voice'))).toBe(true);
  expect(await addressHolder(g.s.direct, g.plan)).toBe(oldId);
  await routerKnows(t, REGION, 2);
  const restore = setEnv({ TEMPORAL_ADDRESS: temporalAddress(), TEMPORAL_NAMESPACE: temporalNamespace() });
  try {
    const shown = await runCli(['status', g.guardian.workflowId]);
    expect(shown).toMatchObject({ code: 0 });
    expect(shown.stdout).toContain(`warm spare: ${spare.instanceId} ${spareOf.InstanceType}`);
    expect(shown.stdout).toMatch(/h of warm spare \(\$/);
  } finally {
    restore();
  }

  const launches = g.s.proxy.count('RunInstances');
  const commands = g.s.proxy.count('SendCommand');
  const atMove: { old: string; launches: number; commands: number }[] = [];
  g.s.proxy.onAfter('AssociateAddress', async () => {
    atMove.push({
      old: (await instance(g.s.direct, REGION, oldId)).State?.Name ?? '?',
      launches: g.s.proxy.count('RunInstances') - launches,
      commands: g.s.proxy.count('SendCommand') - commands,
    });
  });
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', oldId, REGION));
  const after = await waitForGuardian(
    g.guardian,
    'the spare serving, and a new spare',
    (s) => s.replacements === 1 && s.state === 'guarding' && s.spare !== undefined,
  );
  expect(after.instanceId).toBe(spare.instanceId);
  await expectRecovered(g, oldId, after);
  expect(after.events[0]).toMatchObject({ kind: 'interruption', viaSpare: true, newInstanceId: spare.instanceId });
  // The pool the notice named is in the ledger, and the next spare goes elsewhere.
  const oldPool = `${(await instance(g.s.direct, REGION, oldId)).InstanceType}@${g.s.source.availabilityZone}`;
  expect(after.ledger?.interruptions).toEqual({ [oldPool]: 1 });
  // The address moved once, while the old instance still ran, before any new launch and with no
  // Run Command on the way (the quick check is from outside).
  expect(atMove).toEqual([{ old: 'running', launches: 0, commands: 0 }]);
  const next = after.spare as NonNullable<typeof after.spare>;
  expect(next.instanceId).not.toBe(spare.instanceId);
  expect(`${next.instanceType}@${next.availabilityZone}`).not.toBe(oldPool);
  expect(after.ledger?.hours.spare).toBeGreaterThan(0);

  // A notice for the spare: it goes and another is made; the serving instance is untouched.
  await g.guardian.signal(interruptionSignal, { instanceId: next.instanceId, kind: 'interruption' });
  const third = await waitForGuardian(
    g.guardian,
    'the lost spare made again',
    (s) => s.spare !== undefined && s.spare.instanceId !== next.instanceId,
  );
  expect(third.instanceId).toBe(spare.instanceId);
  expect(third.replacements).toBe(1);
  expect((await instance(g.s.direct, REGION, next.instanceId)).State?.Name).toMatch(/shutting-down|terminated/);
  expect(third.spareEvents?.map((e) => e.what)).toContain('lost');
  expect(await addressHolder(g.s.direct, g.plan)).toBe(spare.instanceId);

  // `cleanup` leaves the spare of a running guardian alone; once the guardian is gone without
  // stopping (terminated), the spare is left over and goes.
  const cleanup = async (...extra: string[]) => {
    const dir = await mkdtemp(join(tmpdir(), 'spare-cleanup-'));
    const file = join(dir, 'plan.json');
    await writeFile(file, JSON.stringify(g.plan));
    const env = setEnv({
      TEMPORAL_ADDRESS: temporalAddress(),
      TEMPORAL_NAMESPACE: temporalNamespace(),
      AWS_ENDPOINT_URL: g.s.proxy.endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_REGION: g.plan.region,
    });
    try {
      return await runCli(['cleanup', '--plan', file, '--older-than', '0s', ...extra]);
    } finally {
      env();
      await rm(dir, { recursive: true, force: true });
    }
  };
  const spareNow = (third.spare as NonNullable<typeof third.spare>).instanceId;
  const kept = await cleanup();
  expect(kept.code).toBe(0);
  expect(kept.stdout).not.toContain(spareNow);
  await g.guardian.terminate('gone without stopping');
  const over = await cleanup('--apply');
  expect(over.stdout).toContain(`${spareNow}  running warm spare of ${g.guardian.workflowId}, which no longer runs`);
  expect(over.stdout).toContain(`terminated ${spareNow}`);
  expect((await aliveInstancesOfPlan(g.s.direct, g.plan)).map((i) => i.InstanceId)).toEqual([spare.instanceId]);
}, 240_000);

test('the CLI rehearses a replacement (`interrupt --kind rebalance`) and shows the guardian (`status`)', async () => {
  const g = await migrated();
  const restore = setEnv({ TEMPORAL_ADDRESS: temporalAddress(), TEMPORAL_NAMESPACE: temporalNamespace() });
  try {
    const sent = await runCli(['interrupt', g.plan.name, '--kind', 'rebalance']);
    expect(sent).toMatchObject({ code: 0 });
    expect(sent.stdout).toContain(`sent rebalance for ${g.first.instanceId} to ${g.guardian.workflowId}`);
    const after = await waitForGuardian(
      g.guardian,
      'one replacement',
      (s) => s.replacements === 1 && s.state === 'guarding',
    );
    expect(after.events[0]).toMatchObject({ kind: 'rebalance', source: 'cli', outcome: 'replaced' });

    const text = await runCli(['status', g.guardian.workflowId]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`guarding ${after.instanceId}`);
    expect(text.stdout).toMatch(
      new RegExp(`rebalance \\(cli\\): ${g.first.instanceId} → ${after.instanceId} \\S+@\\S+ spot replaced`),
    );
    // The interrupted pool, skipped, and the ledger.
    expect(text.stdout).toMatch(/\n {4}skipped: g4dn\.xlarge@\S+ \(interrupted at /);
    expect(text.stdout).toMatch(/\n {2}ledger: [\d.]+ h on Spot, 0 h on-demand; /);
    const json = await runCli(['status', g.guardian.workflowId, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ instanceId: after.instanceId, replacements: 1 });

    expect(await runCli(['interrupt', g.plan.name, '--kind', 'meteor'])).toMatchObject({ code: 2 });
  } finally {
    restore();
  }
});
