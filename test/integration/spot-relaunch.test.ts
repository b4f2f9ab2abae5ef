/**
 * A Spot migration guarded from its first second, against the real dev server and the strict
 * AWS world: the new instance is lost in its build, just after the Elastic IP switch, while its
 * golden image is being made and during the approval wait. Each time a new instance is launched
 * in another pool; after the switch the Elastic IP is back on the old instance first, and
 * approval is asked again.
 */
import { TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { guardianWorkflowId, TAG_GUARDED } from '../../src/shared/constants';
import { ErrorType } from '../../src/shared/errors';
import { decideUpdate, statusQuery, type MigrationStatus } from '../../src/shared/migration';
import type { Plan } from '../../src/plan/schema';
import { httpGet } from '../harness/calls';
import { waitFor } from '../harness/guarded';
import { useIntegration } from '../harness/lifecycle';
import { addressHolder, aliveInstancesOfPlan, imagesOfPlan, instance, startMigration } from '../harness/migration';
import { pollUntil } from '../harness/net';
import { failureOf, onLaunched } from '../harness/outcome';
import { startScenario, type Scenario } from '../harness/scenario';
import { testPlan } from '../harness/seed';
import { createQueue, putMessage, spotEvent } from '../harness/spot';
import { startWorker } from '../harness/worker';

// A region of its own: its router is this file's alone.
const REGION = 'ap-northeast-2';

const t = useIntegration();

interface Run {
  s: Scenario;
  plan: Plan;
  queueUrl: string;
  handle: Awaited<ReturnType<typeof startMigration>>;
  /** Instances the run launched, in order. */
  launched: string[];
  /** Where each AssociateAddress put the Elastic IP, in order. */
  eipMoves: string[];
}

/** A Spot migration of its own plan; `onLaunch` sees each new instance before it runs anything. */
async function spotMigration(onLaunch: (s: Scenario, instanceId: string, n: number) => void): Promise<Run> {
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
  const launched: string[] = [];
  onLaunched(s.proxy, (id) => {
    launched.push(id);
    onLaunch(s, id, launched.length);
  });
  const eipMoves: string[] = [];
  s.proxy.onAfter('AssociateAddress', ({ call, request }) => {
    if (call.status === 200 && String(request.params.DryRun) !== 'true')
      eipMoves.push(String(request.params.InstanceId));
  });
  const handle = await startMigration(t.client, w.taskQueue, plan);
  return { s, plan, queueUrl, handle, launched, eipMoves };
}

const status = (r: Run): Promise<MigrationStatus> => r.handle.query(statusQuery);

async function until(r: Run, what: string, ok: (s: MigrationStatus) => boolean): Promise<MigrationStatus> {
  return pollUntil(
    what,
    async () => {
      const s = await status(r);
      if (['completed', 'rolled-back', 'failed'].includes(s.phase)) throw new Error(`ended in ${s.phase}`);
      return ok(s) ? s : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 100 },
  );
}

const commandSent = (s: Scenario, instanceId: string, match: RegExp) =>
  s.world.commands(instanceId).some((c) => c.commands.some((line) => match.test(line)));

const poolOf = async (r: Run, id: string) => {
  const i = await instance(r.s.direct, REGION, id);
  return `${i.InstanceType}@${i.Placement?.AvailabilityZone}`;
};

test('lost in its build, then just after the Elastic IP switch: each time a new instance in another pool, the Elastic IP back on the old one at once; approved, it completes on the third', async () => {
  const r = await spotMigration((s, id, n) => {
    // The first instance's build runs until it is lost.
    if (n === 1) s.world.scriptCommand('docker compose build', { status: 'InProgress' }, id);
  });
  // The second is interrupted the moment the Elastic IP is on it.
  r.s.proxy.onAfter('AssociateAddress', async ({ call, request }) => {
    if (call.status === 200 && r.launched.length === 2 && request.params.InstanceId === r.launched[1])
      await putMessage(r.s.direct, REGION, r.queueUrl, spotEvent('interruption', r.launched[1], REGION));
  });
  await waitFor('the first build under way', async () =>
    r.launched.length === 1 ? commandSent(r.s, r.launched[0], /docker compose build/) : false,
  );
  // Guarded from its launch: the router routes its notices to the migration.
  expect((await instance(r.s.direct, REGION, r.launched[0])).Tags).toContainEqual({
    Key: TAG_GUARDED,
    Value: r.handle.workflowId,
  });
  await putMessage(r.s.direct, REGION, r.queueUrl, spotEvent('interruption', r.launched[0], REGION));

  const waiting = await until(
    r,
    'approval asked of the third instance',
    (s) => s.phase === 'awaiting-approval' && s.relaunches?.length === 2,
  );
  const [first, second, third] = r.launched;
  expect(r.launched).toHaveLength(3);
  expect(waiting.newInstanceId).toBe(third);
  expect(waiting.relaunches?.[0]).toMatchObject({
    instanceId: first,
    kind: 'interruption',
    source: 'queue',
    during: 'build',
    pool: await poolOf(r, first),
    replacedBy: second,
  });
  expect(waiting.relaunches?.[0].elasticIpBackAt).toBeUndefined();
  expect(waiting.relaunches?.[1]).toMatchObject({
    instanceId: second,
    elasticIpBackAt: expect.any(String),
    replacedBy: third,
  });
  expect(['eip-switch', 'performance']).toContain(waiting.relaunches?.[1].during);
  // Three pools: each lost one was left out of the next launch.
  expect(new Set([await poolOf(r, first), await poolOf(r, second), await poolOf(r, third)]).size).toBe(3);
  // The Elastic IP never went to the first; it came back from the second to the old instance before the third.
  expect(r.eipMoves).toEqual([second, r.plan.source.instanceId, third]);
  for (const lost of [first, second])
    expect(['shutting-down', 'terminated']).toContain((await instance(r.s.direct, REGION, lost)).State?.Name);

  await r.handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await r.handle.result();
  expect(report.outcome).toBe('completed');
  expect(report.relaunches?.map((l) => l.instanceId)).toEqual([first, second]);
  expect(await addressHolder(r.s.direct, r.plan)).toBe(third);
  expect((await httpGet(r.s.world.url(r.s.source.publicIp, 'backend'))).servedBy).toBe(third);
  expect((await aliveInstancesOfPlan(r.s.direct, r.plan)).map((i) => i.InstanceId)).toEqual([third]);
});

test('lost while its golden image is made (no warning: the poll finds it), then by a warning in the approval wait: the Elastic IP back on the old one, the image discarded, approval asked again; rejected, nothing is left', async () => {
  const r = await spotMigration((s, id, n) => {
    // The first instance's golden image waits on its sync until the instance is lost.
    if (n === 1) s.world.scriptCommand(/^sync$/, { status: 'InProgress' }, id);
  });
  await until(r, 'the first approval wait', (s) => s.phase === 'awaiting-approval');
  await waitFor('the golden image under way', async () => commandSent(r.s, r.launched[0], /^sync$/));
  await r.s.direct.ec2(REGION).send(new TerminateInstancesCommand({ InstanceIds: [r.launched[0]] }));

  const second = await until(
    r,
    'approval asked again, the golden image made',
    (s) => s.phase === 'awaiting-approval' && s.relaunches?.length === 1 && s.golden?.state === 'made',
  );
  expect(second.relaunches?.[0]).toMatchObject({
    instanceId: r.launched[0],
    kind: 'stopped',
    source: 'poll',
    during: 'awaiting-approval',
    elasticIpBackAt: expect.any(String),
  });
  expect(r.eipMoves).toEqual([r.launched[0], r.plan.source.instanceId, r.launched[1]]);
  // Only the second instance's golden image exists.
  const images = (await imagesOfPlan(r.s.direct, r.plan)).filter((i) => i.State !== 'deregistered');
  expect(images.map((i) => i.ImageId)).toEqual([second.golden?.imageId]);

  await putMessage(r.s.direct, REGION, r.queueUrl, spotEvent('interruption', r.launched[1], REGION));
  const third = await until(
    r,
    'approval asked a third time',
    (s) => s.phase === 'awaiting-approval' && s.relaunches?.length === 2 && s.golden?.state === 'made',
  );
  expect(third.relaunches?.[1]).toMatchObject({
    instanceId: r.launched[1],
    source: 'queue',
    during: 'awaiting-approval',
    goldenDiscarded: [second.golden?.imageId],
  });

  await r.handle.executeUpdate(decideUpdate, {
    args: [{ decision: 'reject', by: 'ops', reason: 'two interruptions before approval' }],
  });
  const { failure, report } = await failureOf(r.handle);
  expect(failure.type).toBe(ErrorType.Rejected);
  expect(report.relaunches).toHaveLength(2);
  expect(await addressHolder(r.s.direct, r.plan)).toBe(r.plan.source.instanceId);
  expect((await instance(r.s.direct, REGION, r.plan.source.instanceId)).State?.Name).toBe('running');
  expect((await httpGet(r.s.world.url(r.s.source.publicIp, 'backend'))).servedBy).toBe(r.plan.source.instanceId);
  expect(await aliveInstancesOfPlan(r.s.direct, r.plan)).toEqual([]);
  expect((await imagesOfPlan(r.s.direct, r.plan)).filter((i) => i.State !== 'deregistered')).toEqual([]);
});
