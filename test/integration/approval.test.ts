/**
 * The approval step of the migration, each test a whole run up to `awaiting-approval` against
 * the real Temporal dev server and moto: what stands while a person decides, rejection by
 * signal and by update (a full rollback), invalid signals (recorded, ignored), the update's
 * validator (refused at once, nothing changes), the approval timeout, and --keep-failed.
 */
import { TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ErrorType } from '../../src/shared/errors';
import {
  approveSignal,
  decideUpdate,
  rejectSignal,
  statusQuery,
  SIGNAL_DESCRIPTIONS,
  type Decision,
  type MigrationStatus,
} from '../../src/shared/migration';
import { useIntegration } from '../harness/lifecycle';
import {
  addressHolder,
  aliveInstancesOfPlan,
  imagesOfPlan,
  ingressOf,
  instance,
  startMigration,
  waitForPhase,
} from '../harness/migration';
import { pollUntil } from '../harness/net';
import { failureOf, gate, whoServes } from '../harness/outcome';
import type { Scenario } from '../harness/scenario';

const t = useIntegration();

/** Ends a run the test leaves waiting, so nothing of it outlives the test. */
function terminateAfterTest(handle: WorkflowHandle): void {
  t.track({
    close: () =>
      handle.terminate('test over').then(
        () => undefined,
        () => undefined,
      ),
  });
}

const phaseState = (status: MigrationStatus, name: string) => status.phases.find((p) => p.name === name)?.state;

/** The update's refusal: the validator's message, as the client sees it. */
async function refusalOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (err as WorkflowUpdateFailedError).cause;
    return cause?.message ?? '';
  }
  throw new Error('expected the update to be refused, and it was accepted');
}

/** Waits until the run has recorded `n` ignored messages. */
function ignoredCount(handle: WorkflowHandle, n: number): Promise<MigrationStatus> {
  return pollUntil(
    `${n} ignored messages`,
    async () => {
      const st = await handle.query(statusQuery);
      return st.ignoredMessages.length >= n ? st : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
}

/** What a rejection undoes, newest first: the golden image was being made while the person decided. */
const COMPENSATIONS = (s: Scenario, newId: string) => [
  `discard the golden image of ${newId}`,
  `move the Elastic IP back to ${s.source.instanceId}`,
  'undo the security-group changes',
  'terminate the new instance',
];

describe('waiting for approval', () => {
  test('the old instance keeps running while the new one holds the Elastic IP, and the UI lists the messages', async () => {
    const { s, w } = await t.setup();
    const handle = await startMigration(t.client, w.taskQueue, s.plan);
    terminateAfterTest(handle);

    const waiting = await waitForPhase(handle, 'awaiting-approval');
    const newId = waiting.newInstanceId as string;
    expect(newId).toMatch(/^i-/);
    expect(waiting.approval).toBeUndefined();
    expect(phaseState(waiting, 'performance')).toBe('succeeded');
    expect(phaseState(waiting, 'stop-old')).toBe('pending');

    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');
    expect(await addressHolder(s.direct, s.plan)).toBe(newId);
    expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(newId);
    // No backup is taken before someone approves.
    expect(await imagesOfPlan(s.direct, s.plan)).toEqual([]);

    // The Web UI reads this: "Send a Signal" lists the signals with their descriptions.
    const meta = await handle.query<{
      definition: {
        signalDefinitions: { name: string; description?: string }[];
        updateDefinitions: { name: string; description?: string }[];
      };
      currentDetails: string;
    }>('__temporal_workflow_metadata');
    expect(meta.definition.signalDefinitions).toEqual(
      expect.arrayContaining([
        { name: 'approve', description: SIGNAL_DESCRIPTIONS.approve },
        { name: 'reject', description: SIGNAL_DESCRIPTIONS.reject },
      ]),
    );
    expect(meta.definition.updateDefinitions.map((u) => u.name)).toContain('decide');
    expect(meta.currentDetails).toContain('awaiting-approval');
    expect(meta.currentDetails).toContain(newId);
  });
});

describe('the new instance lost during the wait', () => {
  test('the new instance terminated during the approval wait and not yet seen by its watch: the approval rolls back onto the old instance, which is never stopped', async () => {
    // The watch looks only once an hour: the approval comes first.
    const { s, w } = await t.setup({ planOverrides: { approval: { watchInterval: '1h' } } });
    const handle = await startMigration(t.client, w.taskQueue, s.plan);
    const waiting = await waitForPhase(handle, 'awaiting-approval');
    const newId = waiting.newInstanceId as string;
    await s.direct.ec2(s.plan.region).send(new TerminateInstancesCommand({ InstanceIds: [newId] }));
    // AWS takes the Elastic IP off a terminated instance: nothing answers on it now.
    expect(await addressHolder(s.direct, s.plan)).toBeUndefined();
    expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe('dropped');

    await handle.signal(approveSignal, { by: 'carol', comment: 'numbers looked right' });
    const { failure, report } = await failureOf(handle);
    expect(failure.type).toBe(ErrorType.InstanceNotRunning);
    expect(failure.message).toMatch(
      new RegExp(`the new instance ${newId} is (shutting-down|terminated) after the decision`),
    );
    expect(report.outcome).toBe('rolled back');
    expect(report.approval).toMatchObject({ decision: 'approved', by: 'carol' });
    expect(report.phases.find((p) => p.name === 'stop-old')?.state).toBe('failed');
    // The old instance was never stopped, no backup was taken of it, and it has the address back.
    expect(s.proxy.calls({ action: 'StopInstances' }).filter((c) => c.status !== 412)).toEqual([]); // 412: preflight's DryRun
    expect(await imagesOfPlan(s.direct, s.plan)).toEqual([]);
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');
    expect(await addressHolder(s.direct, s.plan)).toBe(s.source.instanceId);
    expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(s.source.instanceId);
    expect(await aliveInstancesOfPlan(s.direct, s.plan)).toEqual([]);
  });

  test('the new instance terminated during the approval wait: its watch rolls the run back onto the old instance at once, with nobody deciding', async () => {
    const { s, w } = await t.setup({ planOverrides: { approval: { watchInterval: '1s' } } });
    const handle = await startMigration(t.client, w.taskQueue, s.plan);
    const waiting = await waitForPhase(handle, 'awaiting-approval');
    const newId = waiting.newInstanceId as string;
    await s.direct.ec2(s.plan.region).send(new TerminateInstancesCommand({ InstanceIds: [newId] }));

    const { failure, report } = await failureOf(handle);
    expect(failure.type).toBe(ErrorType.InstanceNotRunning);
    expect(failure.message).toMatch(
      new RegExp(
        `the new instance ${newId} stopped running \\((shutting-down|terminated), seen by the watch\\) while awaiting approval: the Elastic IP goes back to ${s.source.instanceId}, which still runs`,
      ),
    );
    expect(report.outcome).toBe('rolled back');
    expect(report.approval).toBeUndefined();
    expect(s.proxy.calls({ action: 'StopInstances' }).filter((c) => c.status !== 412)).toEqual([]); // 412: preflight's DryRun
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');
    expect(await addressHolder(s.direct, s.plan)).toBe(s.source.instanceId);
    expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(s.source.instanceId);
    expect(await aliveInstancesOfPlan(s.direct, s.plan)).toEqual([]);
    expect(await imagesOfPlan(s.direct, s.plan)).toEqual([]);
  });
});

describe.each(['signal', 'update'] as const)('a rejection by %s', (via) => {
  test('rolls back: the Elastic IP returns, the new instance is terminated, the added rules are revoked', async () => {
    const { s, w } = await t.setup();
    const handle = await startMigration(t.client, w.taskQueue, s.plan);
    const waiting = await waitForPhase(handle, 'awaiting-approval');
    const newId = waiting.newInstanceId as string;
    const { backend, frontend } = s.world.ports;
    expect(await ingressOf(s.direct, s.plan.region, s.source.securityGroupId)).toEqual(
      [`tcp/${backend}/0.0.0.0/0`, `tcp/${frontend}/0.0.0.0/0`].sort(),
    );

    const reason = 'synthesis sounds robotic on the T4';
    if (via === 'signal') {
      await handle.signal(rejectSignal, { by: 'bob', reason });
    } else {
      const accepted = await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'bob', reason }] });
      expect(accepted).toMatchObject({ decision: 'rejected', by: 'bob', comment: reason, via: 'update' });
    }

    const { failure, report } = await failureOf(handle);
    expect(failure.type).toBe(ErrorType.Rejected);
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain(`rejected by bob: ${reason}`);
    expect(report.outcome).toBe('rolled back');
    expect(report.approval).toMatchObject({ decision: 'rejected', by: 'bob', comment: reason, via });
    expect(report.compensations).toEqual(COMPENSATIONS(s, newId).map((name) => ({ name, state: 'done' })));
    expect(report.error).toMatchObject({ type: ErrorType.Rejected });

    const status = await handle.query(statusQuery);
    expect(status.phase).toBe('rolled-back');
    expect(status.approval).toMatchObject({ decision: 'rejected', by: 'bob', via });
    expect(status.ignoredMessages).toEqual([]);
    expect(['launch', 'security-group', 'eip-switch'].map((p) => phaseState(status, p))).toEqual([
      'compensated',
      'compensated',
      'compensated',
    ]);
    expect(phaseState(status, 'stop-old')).toBe('pending');

    expect(await addressHolder(s.direct, s.plan)).toBe(s.source.instanceId);
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');
    expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(s.source.instanceId);
    expect((await instance(s.direct, s.plan.region, newId)).State?.Name).toBe('terminated');
    expect(await aliveInstancesOfPlan(s.direct, s.plan)).toEqual([]);
    expect(await ingressOf(s.direct, s.plan.region, s.source.securityGroupId)).toEqual([]);
    expect(await imagesOfPlan(s.direct, s.plan)).toEqual([]);
  });
});

describe('signals with an invalid payload', () => {
  test('are recorded with a reason and ignored; a valid approval afterwards completes the run', async () => {
    const { s, w } = await t.setup({ planOverrides: { approval: { approvers: ['alice', 'carol'] } } });
    const handle = await startMigration(t.client, w.taskQueue, s.plan);
    const waiting = await waitForPhase(handle, 'awaiting-approval');
    const newId = waiting.newInstanceId as string;

    const invalid: { signal: 'approve' | 'reject'; payload: unknown; reason: RegExp }[] = [
      { signal: 'approve', payload: undefined, reason: /needs a JSON object payload/ },
      { signal: 'approve', payload: 'alice', reason: /needs a JSON object payload/ },
      { signal: 'approve', payload: {}, reason: /needs "by"/ },
      { signal: 'approve', payload: { comment: 'looks fine' }, reason: /needs "by"/ },
      { signal: 'approve', payload: { by: 42 }, reason: /needs "by"/ },
      { signal: 'approve', payload: { by: '   ' }, reason: /needs "by"/ },
      { signal: 'approve', payload: { by: 'alice', comment: 5 }, reason: /"comment" must be a string/ },
      { signal: 'reject', payload: { by: 'bob' }, reason: /needs "reason"/ },
      { signal: 'reject', payload: { by: 'bob', reason: ' ' }, reason: /needs "reason"/ },
      { signal: 'approve', payload: { by: 'mallory' }, reason: /mallory is not an approver/ },
    ];
    for (const { signal, payload } of invalid) {
      const definition = signal === 'approve' ? approveSignal : rejectSignal;
      if (payload === undefined) await (handle.signal as (def: unknown) => Promise<void>)(definition);
      else await handle.signal(definition, payload as never);
    }

    const status = await ignoredCount(handle, invalid.length);
    expect(status.ignoredMessages).toHaveLength(invalid.length);
    status.ignoredMessages.forEach((m, i) => {
      expect(m.name).toBe(invalid[i].signal);
      expect(m.reason).toMatch(invalid[i].reason);
      expect(Number.isNaN(Date.parse(m.at))).toBe(false);
    });
    // Nothing was decided: the run still waits, and nothing moved.
    expect(status.phase).toBe('awaiting-approval');
    expect(status.approval).toBeUndefined();
    expect(await addressHolder(s.direct, s.plan)).toBe(newId);
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');

    await handle.signal(approveSignal, { by: 'carol', comment: 'numbers look right' });
    const report = await handle.result();
    expect(report.outcome).toBe('completed');
    expect(report.approval).toMatchObject({
      decision: 'approved',
      by: 'carol',
      comment: 'numbers look right',
      via: 'signal',
    });
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('stopped');
    expect(await addressHolder(s.direct, s.plan)).toBe(newId);
    const done = await handle.query(statusQuery);
    expect(done.phase).toBe('completed');
    expect(done.ignoredMessages).toHaveLength(invalid.length);
  });
});

describe('the decide update', () => {
  test('is refused at once before, during and after the wait when the decision is not acceptable; nothing changes', async () => {
    const { s, w } = await t.setup({ planOverrides: { approval: { approvers: ['alice'] } } });
    const decide = (d: unknown) => handle.executeUpdate(decideUpdate, { args: [d as Decision] });

    // Hold the security-group phase until the test has tried to decide early.
    const inSecurityGroup = gate();
    const releaseSecurityGroup = gate();
    // (Preflight's DryRuns of these calls are not the phases.)
    const offSg = s.proxy.onAfter('AuthorizeSecurityGroupIngress', async ({ request }) => {
      if (String(request.params.DryRun) === 'true') return;
      inSecurityGroup.open();
      await releaseSecurityGroup.promise;
    });
    // Hold the stop-old phase (its backup image) until the test has tried to decide again.
    const inStopOld = gate();
    const releaseStopOld = gate();
    s.proxy.onAfter('CreateImage', async ({ request }) => {
      if (String(request.params.DryRun) === 'true') return;
      inStopOld.open();
      await releaseStopOld.promise;
    });
    t.track({ close: async () => releaseStopOld.open() });
    t.track({ close: async () => releaseSecurityGroup.open() });

    const handle = await startMigration(t.client, w.taskQueue, s.plan);
    terminateAfterTest(handle);

    await inSecurityGroup.promise;
    expect(await refusalOf(decide({ decision: 'approve', by: 'alice' }))).toMatch(
      /no decision is awaited now \(phase: security-group\)/,
    );
    // The same decision by signal, too early: recorded and ignored.
    await handle.signal(approveSignal, { by: 'alice' });
    await ignoredCount(handle, 1);
    releaseSecurityGroup.open();
    offSg();

    const waiting = await waitForPhase(handle, 'awaiting-approval');
    expect(waiting.approval).toBeUndefined();
    const refusals: [unknown, RegExp][] = [
      [{ decision: 'approve', by: 'mallory' }, /mallory is not an approver/],
      [{ decision: 'approve' }, /needs "by"/],
      [{ decision: 'approve', by: '' }, /needs "by"/],
      [{ decision: 'maybe', by: 'alice' }, /"decision" must be "approve" or "reject"/],
      [{ by: 'alice' }, /"decision" must be "approve" or "reject"/],
      [{ decision: 'reject', by: 'alice' }, /needs "reason"/],
      ['approve', /"decision" must be "approve" or "reject"/],
    ];
    for (const [payload, message] of refusals) expect(await refusalOf(decide(payload))).toMatch(message);

    const after = await handle.query(statusQuery);
    expect(after.phase).toBe('awaiting-approval');
    expect(after.approval).toBeUndefined();
    // A refused update is answered to its caller, not recorded as an ignored signal: only the
    // early signal is there.
    expect(after.ignoredMessages).toEqual([
      { name: 'approve', at: expect.any(String), reason: 'no decision is awaited now (phase: security-group)' },
    ]);
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');

    const accepted = await decide({ decision: 'approve', by: 'alice', comment: 'go' });
    expect(accepted).toMatchObject({ decision: 'approved', by: 'alice', comment: 'go', via: 'update' });

    await inStopOld.promise;
    expect(await refusalOf(decide({ decision: 'reject', by: 'alice', reason: 'changed my mind' }))).toMatch(
      /^already approved by alice at \d{4}-/,
    );
    // A late rejection by signal is recorded and ignored as well.
    await handle.signal(rejectSignal, { by: 'bob', reason: 'too late' });
    const late = (await ignoredCount(handle, 2)).ignoredMessages[1];
    expect(late).toMatchObject({
      name: 'reject',
      reason: expect.stringMatching(/^already approved by alice at \d{4}-/),
    });
    expect((await handle.query(statusQuery)).approval).toMatchObject({ decision: 'approved', by: 'alice' });
    releaseStopOld.open();

    const report = await handle.result();
    expect(report.outcome).toBe('completed');
    expect(report.approval).toMatchObject({ decision: 'approved', by: 'alice', via: 'update' });
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('stopped');
  });
});

describe('the approval timeout', () => {
  test('completes as "approval timed out" with the old instance running and the Elastic IP on the new one', async () => {
    const { s, w } = await t.setup({ planOverrides: { approval: { timeout: '2s' } } });
    const handle = await startMigration(t.client, w.taskQueue, s.plan);
    const waiting = await waitForPhase(handle, 'awaiting-approval');
    const newId = waiting.newInstanceId as string;

    const report = await handle.result();
    expect(report.outcome).toBe('approval timed out');
    expect(report.approval).toMatchObject({ decision: 'timed-out' });
    expect(report.warnings.join('\n')).toMatch(/approval timed out after 2s/);
    expect(report.compensations).toEqual([]);

    const status = await handle.query(statusQuery);
    expect(status.phase).toBe('completed');
    expect(status.approval?.decision).toBe('timed-out');
    expect(phaseState(status, 'stop-old')).toBe('skipped');
    expect(status.phases.find((p) => p.name === 'stop-old')?.figures.skipped?.value).toMatch(/approval timed out/);
    expect(status.phases.find((p) => p.name === 'stop-old')?.lastError).toBeUndefined();

    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');
    expect(await addressHolder(s.direct, s.plan)).toBe(newId);
    expect((await instance(s.direct, s.plan.region, newId)).State?.Name).toBe('running');
    expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(newId);
    // No backup of the old instance (it was never going to be stopped), but the golden image of
    // the new one, which now serves: a Spot target gets its guardian from it.
    const images = await imagesOfPlan(s.direct, s.plan);
    expect(images.map((i) => i.Tags?.find((t) => t.Key === 'ec2-gpu-migration:step')?.Value)).toEqual(['golden']);
    expect(report.images).toEqual({ golden: images[0].ImageId });
  });
});

describe('--keep-failed', () => {
  test('a rejection leaves the new instance running, records its compensation as skipped, and moves the Elastic IP back', async () => {
    const { s, w } = await t.setup();
    const handle = await startMigration(t.client, w.taskQueue, s.plan, { keepFailed: true });
    const waiting = await waitForPhase(handle, 'awaiting-approval');
    const newId = waiting.newInstanceId as string;

    await handle.executeUpdate(decideUpdate, {
      args: [{ decision: 'reject', by: 'bob', reason: 'need to look at the logs' }],
    });
    const { failure, report } = await failureOf(handle);
    expect(failure.type).toBe(ErrorType.Rejected);
    expect(report.outcome).toBe('rolled back');
    const [golden, eipBack, ingressUndo, terminate] = COMPENSATIONS(s, newId);
    expect(report.compensations).toEqual([
      { name: golden, state: 'done' },
      { name: eipBack, state: 'done' },
      { name: ingressUndo, state: 'done' },
      { name: terminate, state: 'skipped', detail: '--keep-failed' },
    ]);

    const status = await handle.query(statusQuery);
    expect(status.phase).toBe('rolled-back');
    // The kept instance was not undone; what was undone says so.
    expect(phaseState(status, 'launch')).toBe('succeeded');
    expect(phaseState(status, 'security-group')).toBe('compensated');
    expect(phaseState(status, 'eip-switch')).toBe('compensated');

    expect((await instance(s.direct, s.plan.region, newId)).State?.Name).toBe('running');
    expect((await aliveInstancesOfPlan(s.direct, s.plan)).map((i) => i.InstanceId)).toEqual([newId]);
    expect(await addressHolder(s.direct, s.plan)).toBe(s.source.instanceId);
    expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('running');
    expect(await whoServes(s.world, s.source.publicIp, 'backend')).toBe(s.source.instanceId);
    expect(await ingressOf(s.direct, s.plan.region, s.source.securityGroupId)).toEqual([]);
  });
});
