/**
 * What a guardian makes sure of before the Elastic IP moves to a replacement, and where it
 * launches it: against the real dev server and moto behind the strict world (IAM enforced).
 */
import { addressHolder, aliveInstancesOfPlan, instance } from '../harness/migration';
import { expectRecovered, migrated } from '../harness/guarded';
import { useIntegration } from '../harness/lifecycle';
import { startReceiver } from '../harness/receiver';
import { putMessage, spotEvent, waitForGuardian } from '../harness/spot';

// A region of this file's own: the region's router is shared by its guardians.
const REGION = 'us-east-2';

const t = useIntegration();

test('a replacement whose voice clone is over its limit is not switched to: the Elastic IP stays on the instance that serves', async () => {
  const g = await migrated(t, REGION);
  const oldId = g.first.instanceId;
  // Every service answers its health check, but a synthesis now takes 2.5 s (the plan allows 2 s):
  // a GPU that is not used, a model that did not load.
  g.s.world.configure({ service: 'backend', synthesisDelayMs: 2_500 });
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('rebalance', oldId, REGION));
  const failed = await waitForGuardian(
    g.guardian,
    'the round given up',
    (s) => s.events.length === 1 && s.events[0]?.outcome === 'failed',
    120_000,
  );
  expect(failed.events[0]?.error).toMatch(/synthesis took [\d.]+ s, over the limit of 2 s/);
  expect(failed.instanceId).toBe(oldId);
  expect(failed.replacements).toBe(0);
  expect(await addressHolder(g.s.direct, g.plan)).toBe(oldId);
  expect((await instance(g.s.direct, REGION, oldId)).State?.Name).toBe('running');
  // The replacements that failed were terminated: only the old instance is left.
  expect((await aliveInstancesOfPlan(g.s.direct, g.plan)).map((i) => i.InstanceId)).toEqual([oldId]);
}, 240_000);

test('the interrupted pool is skipped for spot.avoidInterruptedPoolFor; the other pools go by placement score, then price', async () => {
  // Three zones, three types: nine pools. The migration launches g4dn.xlarge in the first zone.
  const g = await migrated(t, REGION, (s) => ({ target: { subnetIds: s.source.defaultSubnetIds.slice(0, 3) } }));
  const [zoneA, zoneB, zoneC] = ['us-east-2a', 'us-east-2b', 'us-east-2c'];
  const oldId = g.first.instanceId;
  expect((await instance(g.s.direct, REGION, oldId)).Placement?.AvailabilityZone).toBe(zoneA);
  // The first zone scores best, and g4dn.xlarge is its cheapest type: by score and price alone
  // the replacement would go back into the pool that was just interrupted.
  g.s.proxy.setPlacementScore(zoneA, 9);
  g.s.proxy.setPlacementScore(zoneB, 3);
  g.s.proxy.setPlacementScore(zoneC, 6);
  for (const zone of [zoneA, zoneB, zoneC]) {
    g.s.proxy.setSpotPrice('g4dn.xlarge', zone, 0.2);
    g.s.proxy.setSpotPrice('g5.xlarge', zone, 0.35);
    g.s.proxy.setSpotPrice('g4dn.2xlarge', zone, 0.4);
  }

  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', oldId, REGION));
  const one = await waitForGuardian(
    g.guardian,
    'first replacement',
    (s) => s.replacements === 1 && s.state === 'guarding',
    120_000,
  );
  const first = one.events[0];
  expect(first).toMatchObject({
    outcome: 'replaced',
    interruptedPool: { instanceType: 'g4dn.xlarge', availabilityZone: zoneA },
    instanceType: 'g5.xlarge',
    availabilityZone: zoneA,
    market: 'spot',
  });
  expect(first.pools?.skipped).toEqual([expect.stringMatching(/^g4dn\.xlarge@us-east-2a \(interrupted at /)]);
  expect(first.pools?.tried.slice(0, 3)).toEqual([
    'g5.xlarge@us-east-2a',
    'g4dn.2xlarge@us-east-2a',
    'g4dn.xlarge@us-east-2c',
  ]);
  expect(first.pools?.sources).toEqual({ scores: 'GetSpotPlacementScores', prices: 'DescribeSpotPriceHistory' });
  const replacement = await instance(g.s.direct, REGION, one.instanceId);
  expect([replacement.InstanceType, replacement.Placement?.AvailabilityZone]).toEqual(['g5.xlarge', zoneA]);

  // The first zone loses its capacity; the replacement is interrupted in turn. Both interrupted
  // pools are still within their three minutes: the best of the rest is in the third zone.
  g.s.proxy.setPlacementScore(zoneA, 2);
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', one.instanceId, REGION));
  const two = await waitForGuardian(
    g.guardian,
    'second replacement',
    (s) => s.replacements === 2 && s.state === 'guarding',
    120_000,
  );
  expect(two.events[1]).toMatchObject({
    outcome: 'replaced',
    interruptedPool: { instanceType: 'g5.xlarge', availabilityZone: zoneA },
    instanceType: 'g4dn.xlarge',
    availabilityZone: zoneC,
  });
  expect(two.events[1].pools?.skipped).toEqual([
    expect.stringMatching(/^g4dn\.xlarge@us-east-2a \(interrupted at /),
    expect.stringMatching(/^g5\.xlarge@us-east-2a \(interrupted at /),
  ]);
  expect(await addressHolder(g.s.direct, g.plan)).toBe(two.instanceId);
  // Each was asked of EC2 once per round, with the three planned types together.
  const asked = g.s.proxy.calls({ action: 'GetSpotPlacementScores' });
  expect(asked.filter((c) => c.status === 200)).toHaveLength(2);
}, 300_000);

test('after a fallback to on-demand the guardian goes back to Spot by itself: a failed try changes nothing, and the on-demand instance serves until a checked Spot one holds the Elastic IP', async () => {
  const receiver = await startReceiver();
  t.track({ close: () => receiver.close() });
  const g = await migrated(
    t,
    REGION,
    { spot: { revertAfter: '5s' } },
    { notify: { targets: [{ url: `${receiver.url}/json`, format: 'json' }], uiBase: 'http://ui.example:8233' } },
  );
  const told = (kind: string) =>
    receiver.waitFor(kind, (r) => r.body.event === kind && r.body.workflowId === g.guardian.workflowId);
  const spotOnly = (p: Record<string, unknown>) =>
    p.DryRun !== 'true' && String(p['InstanceMarketOptions.MarketType']) === 'spot';
  // No Spot capacity in any pool: the replacement falls back to on-demand.
  const noSpot = g.s.proxy.fail({
    action: 'RunInstances',
    code: 'InsufficientInstanceCapacity',
    status: 500,
    times: 1000,
    when: spotOnly,
  });
  t.track({ close: async () => noSpot.remove() });
  await putMessage(g.s.direct, REGION, g.queueUrl, spotEvent('interruption', g.first.instanceId, REGION));
  const onDemand = await waitForGuardian(
    g.guardian,
    'on on-demand',
    (s) => s.replacements === 1 && s.state === 'guarding' && s.market === 'on-demand',
    120_000,
  );
  expect((await instance(g.s.direct, REGION, onDemand.instanceId)).InstanceLifecycle).toBeUndefined();
  expect(onDemand.nextSpotTryAt).toEqual(expect.any(String));
  // The webhook hears of the fallback, with the on-demand instance.
  const fallback = await told('on-demand-fallback');
  expect(fallback.body).toMatchObject({ instanceId: onDemand.instanceId, planName: g.plan.name });
  expect(fallback.body.text).toMatch(/no Spot capacity/);

  // spot.revertAfter later: still no Spot capacity. The try is recorded; nothing else changes.
  const tried = await waitForGuardian(
    g.guardian,
    'a try back to Spot',
    (s) => s.events.some((e) => e.kind === 'back-to-spot' && e.outcome === 'failed') && s.state === 'guarding',
    60_000,
  );
  expect(tried).toMatchObject({ instanceId: onDemand.instanceId, market: 'on-demand', replacements: 1 });
  expect(await addressHolder(g.s.direct, g.plan)).toBe(onDemand.instanceId);
  expect((await aliveInstancesOfPlan(g.s.direct, g.plan)).map((i) => i.InstanceId)).toEqual([onDemand.instanceId]);

  // Spot capacity is back: the next try takes it.
  noSpot.remove();
  const back = await waitForGuardian(
    g.guardian,
    'back on Spot',
    (s) => s.replacements === 2 && s.state === 'guarding',
    120_000,
  );
  expect(back).toMatchObject({ market: 'spot' });
  expect(back.nextSpotTryAt).toBeUndefined();
  const event = back.events[back.events.length - 1];
  expect(event).toMatchObject({
    kind: 'back-to-spot',
    outcome: 'replaced',
    market: 'spot',
    oldInstanceId: onDemand.instanceId,
  });
  // The on-demand instance went only after the Spot one held the address.
  expect(Date.parse(event.oldTerminatedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(event.eipMovedAt ?? ''));
  expect((await instance(g.s.direct, REGION, back.instanceId)).InstanceLifecycle).toBe('spot');
  await expectRecovered(g, onDemand.instanceId, back);
  const backOnSpot = await told('back-to-spot');
  expect(backOnSpot.body).toMatchObject({ instanceId: back.instanceId, planName: g.plan.name });
  expect(backOnSpot.body.text).toContain(`back on Spot: the service runs on ${back.instanceId}`);
  // The failed try changed nothing, so nobody was told of it as a move.
  expect(receiver.received.filter((r) => r.body.event === 'back-to-spot')).toHaveLength(1);
}, 300_000);
