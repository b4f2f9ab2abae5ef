/**
 * A Spot migration guarded from its launch, on the time-skipping test server with every activity
 * stubbed: a notice for the new instance before the Elastic IP switch launches again in another
 * pool; after it, the Elastic IP goes back to the old instance first and approval is asked again;
 * past MAX_RELAUNCHES the run rolls back.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../src/activities';
import type { LaunchInput } from '../../src/shared/launch';
import { migrationWorkflowId, TAG_GUARDED } from '../../src/shared/constants';
import { ErrorType } from '../../src/shared/errors';
import { approveSignal, rejectSignal, type MigrationStatus } from '../../src/shared/migration';
import { interruptionSignal } from '../../src/shared/spot';
import { MAX_RELAUNCHES } from '../../src/workflows/migrate/guarded';
import {
  IDS,
  failureOf,
  gate,
  happyStubs,
  migrationStatus as status,
  phaseOf,
  recordStubs,
  startMigration,
  startTimeSkipping,
  waitFor,
  withWorker,
  workflowBundle,
  workflowPlan,
} from './helpers';

let env: TestWorkflowEnvironment;
beforeAll(() => workflowBundle(), 60_000);
beforeEach(async () => {
  env = await startTimeSkipping();
}, 30_000);
afterEach(() => env?.teardown());

/** The instance of each launch step: `launch` → IDS.newInstance, `launch-N` → i-…0N. */
const idOf = (step: string) =>
  step === 'launch' ? IDS.newInstance : `i-0feedface000000${step.replace('launch-', '').padStart(2, '0')}`;

const spotPlan = () =>
  workflowPlan({ target: { market: 'spot', fallbackInstanceTypes: ['g5.xlarge'], subnetIds: [IDS.subnet] } });

/** The happy stubs, each launch step with an instance of its own; `hold` keeps a step of an instance running. */
function relaunchStubs(
  plan: ReturnType<typeof spotPlan>,
  hold: (label: string, instanceId: string) => Promise<void> | undefined,
): Partial<Activities> {
  const happy = happyStubs(plan);
  return {
    ...happy,
    launchInstance: async (input) => ({ ...(await happy.launchInstance!(input)), instanceId: idOf(input.step) }),
    runRemote: async (input) => {
      await hold(input.label, input.instanceId);
      return happy.runRemote!(input);
    },
    // The pool of the instance a notice named is left out: the next launch takes the other type.
    rankSpotPools: async ({ interruptedInstanceId }) => ({
      pools: [{ instanceType: interruptedInstanceId ? 'g5.xlarge' : 'g4dn.xlarge', subnetId: IDS.subnet }],
      skipped: interruptedInstanceId
        ? [{ pool: { instanceType: 'g4dn.xlarge', subnetId: IDS.subnet }, reason: 'interrupted' }]
        : [],
      sources: {},
      ...(interruptedInstanceId
        ? { interruptedPool: { instanceType: 'g4dn.xlarge', availabilityZone: 'us-east-1a' } }
        : {}),
    }),
  };
}

test('a notice for the new Spot instance in its build: it is terminated, the next launch leaves its pool out, and the run goes on from the launch', async () => {
  const plan = spotPlan();
  const build = gate();
  const stubs = recordStubs(
    relaunchStubs(plan, (label, id) => (label === 'build' && id === IDS.newInstance ? build.passed() : undefined)),
  );
  const second = idOf('launch-2');
  const report = await withWorker(env, stubs.activities, build.open, async (taskQueue) => {
    const handle = await startMigration(env, taskQueue, plan);
    await waitFor(
      'the build',
      () => status(handle),
      (s) => phaseOf(s, 'build')?.state === 'running',
    );
    await handle.signal(interruptionSignal, { instanceId: IDS.newInstance, kind: 'interruption', source: 'queue' });
    const again: MigrationStatus = await waitFor(
      'approval asked of the second instance',
      () => status(handle),
      (s) => s.phase === 'awaiting-approval',
    );
    expect(again.newInstanceId).toBe(second);
    expect(again.relaunches).toEqual([
      {
        instanceId: IDS.newInstance,
        kind: 'interruption',
        source: 'queue',
        noticeAt: expect.any(String),
        during: 'build',
        pool: 'g4dn.xlarge@us-east-1a',
        replacedBy: second,
      },
    ]);
    expect(again.error).toBeUndefined();
    expect(phaseOf(again, 'build')).toMatchObject({ state: 'succeeded', attempts: 1 });
    await handle.signal(approveSignal, { by: 'ops' });
    return handle.result();
  });

  expect(report.outcome).toBe('completed');
  expect(report.relaunches).toHaveLength(1);
  const guardTag = { [TAG_GUARDED]: migrationWorkflowId(plan.name) };
  // Both launches carry the guard tag from their first second; the second leaves the lost pool out.
  expect((stubs.inputs('launchInstance') as LaunchInput[]).map((i) => [i.step, i.spec.spotPools, i.tags])).toEqual([
    ['launch', undefined, guardTag],
    ['launch-2', [{ instanceType: 'g5.xlarge', subnetId: IDS.subnet }], guardTag],
  ]);
  expect(stubs.inputs('rankSpotPools')[0]).toMatchObject({ interruptedInstanceId: IDS.newInstance });
  expect(stubs.inputs('terminateInstance').map((i) => i.instanceId)).toContain(IDS.newInstance);
  // The Elastic IP never went to the lost instance; the ingress was opened once.
  expect(stubs.inputs('associateAddress').map((i) => i.instanceId)).toEqual([second]);
  expect(stubs.inputs('applyIngress')).toHaveLength(1);
  // Every remote step ran again on the second instance, and its golden image was made.
  expect(
    stubs
      .inputs('runRemote')
      .filter((i) => i.instanceId === second)
      .map((i) => i.label),
  ).toEqual(['setup', 'source', 'build', 'start', 'sync before the golden image']);
  expect(stubs.inputs('createImage').map((i) => [i.step, i.instanceId])).toEqual([
    ['golden', second],
    ['backup', IDS.oldInstance],
  ]);
});

test('a notice during the approval wait, while the golden image is made: the Elastic IP goes back to the old instance first, the image is discarded, and approval is asked again', async () => {
  const plan = spotPlan();
  const sync = gate();
  const stubs = recordStubs(
    relaunchStubs(plan, (label, id) =>
      label.startsWith('sync') && id === IDS.newInstance ? sync.passed() : undefined,
    ),
  );
  const second = idOf('launch-2');
  const { failure, report } = await withWorker(env, stubs.activities, sync.open, async (taskQueue) => {
    const handle = await startMigration(env, taskQueue, plan);
    await waitFor(
      'the approval wait',
      () => status(handle),
      (s) => s.phase === 'awaiting-approval',
    );
    await waitFor(
      'the golden image under way',
      async () => stubs.inputs('runRemote').filter((i) => i.label.startsWith('sync')),
      (calls) => calls.length === 1,
    );
    await handle.signal(interruptionSignal, { instanceId: IDS.newInstance, kind: 'rebalance', source: 'queue' });
    const again: MigrationStatus = await waitFor(
      'approval asked again',
      () => status(handle),
      (s) => s.phase === 'awaiting-approval' && s.newInstanceId === second && s.golden?.state === 'made',
    );
    expect(again.relaunches).toEqual([
      expect.objectContaining({
        instanceId: IDS.newInstance,
        kind: 'rebalance',
        during: 'awaiting-approval',
        elasticIpBackAt: expect.any(String),
        replacedBy: second,
      }),
    ]);
    expect(again.approval).toBeUndefined();
    await handle.signal(rejectSignal, { by: 'ops', reason: 'two interruptions in a day' });
    return failureOf(handle);
  });

  const names = stubs.calls.map((c) => `${c.name} ${String(c.input.instanceId ?? c.input.sourceInstanceId ?? '')}`);
  // The Elastic IP back on the old instance before anything else happens to the lost one.
  const back = names.indexOf(`associateAddress ${IDS.oldInstance}`);
  expect(names.slice(0, back)).toContain(`associateAddress ${IDS.newInstance}`);
  expect(names.slice(back)).toEqual(
    expect.arrayContaining([`terminateInstance ${IDS.newInstance}`, `discardImages ${IDS.newInstance}`]),
  );
  expect(names.indexOf(`discardImages ${IDS.newInstance}`)).toBeLessThan(names.lastIndexOf('launchInstance '));
  // The golden image of the lost instance was never made: its sync was cancelled.
  expect(stubs.inputs('createImage').filter((i) => i.instanceId === IDS.newInstance)).toEqual([]);

  // Rejected: the second instance's golden image, the Elastic IP, the ingress and both launches undone, once each.
  expect(failure.type).toBe(ErrorType.Rejected);
  expect(report.relaunches).toHaveLength(1);
  expect(report.compensations.map((c) => [c.name, c.state])).toEqual([
    [`discard the golden image of ${second}`, 'done'],
    [`move the Elastic IP back to ${IDS.oldInstance}`, 'done'],
    ['terminate the new instance of launch-2', 'done'],
    ['undo the security-group changes', 'done'],
    ['terminate the new instance', 'done'],
  ]);
  expect(stubs.inputs('associateAddress').map((i) => i.instanceId)).toEqual([
    IDS.newInstance,
    IDS.oldInstance,
    second,
    IDS.oldInstance,
  ]);
  expect(stubs.inputs('stopInstance')).toEqual([]);
});

test(`a new instance lost ${MAX_RELAUNCHES + 1} times: the run rolls back to the old instance, which still runs`, async () => {
  const plan = spotPlan();
  const setups = gate();
  const stubs = recordStubs(relaunchStubs(plan, (label) => (label === 'setup' ? setups.passed() : undefined)));
  const { failure, report } = await withWorker(env, stubs.activities, setups.open, async (taskQueue) => {
    const handle = await startMigration(env, taskQueue, plan);
    for (let n = 1; n <= MAX_RELAUNCHES + 1; n++) {
      const s: MigrationStatus = await waitFor(
        `setup of launch ${n}`,
        () => status(handle),
        (x) => x.newInstanceId === idOf(n === 1 ? 'launch' : `launch-${n}`) && phaseOf(x, 'setup')?.state === 'running',
      );
      await handle.signal(interruptionSignal, { instanceId: s.newInstanceId as string, kind: 'interruption' });
    }
    return failureOf(handle);
  });
  expect(failure.type).toBe(ErrorType.SpotInterrupted);
  expect(failure.message).toContain(`during setup, after ${MAX_RELAUNCHES} relaunches`);
  expect(report.relaunches?.map((r) => r.instanceId)).toEqual(
    [1, 2, 3].map((n) => idOf(n === 1 ? 'launch' : `launch-${n}`)),
  );
  expect(stubs.inputs('terminateLaunched').map((i) => i.step)).toEqual(['launch-4', 'launch-3', 'launch-2', 'launch']);
  expect(stubs.inputs('associateAddress')).toEqual([]);
  expect(stubs.inputs('stopInstance')).toEqual([]);
});
