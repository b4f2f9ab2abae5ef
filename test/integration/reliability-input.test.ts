/**
 * Bad input never reaches AWS, and never harms a running migration:
 * - every malformed plan of test/fixtures/bad-plans.ts, given to `migration start --plan` with a
 *   worker polling the task queue through a fresh AWS proxy: exit 2, the field named, no
 *   workflow, zero AWS calls;
 * - bad command lines: exit 2;
 * - bad approve/reject signals and decide updates: recorded or rejected, the run unharmed.
 * And the security defaults of ingress: SSH and private ports stay closed unless the plan names
 * who may reach them; SSH open to the world is loudly reported by `plan` and in the report.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { approveSignal, decideUpdate, rejectSignal, statusQuery, type Decision } from '../../src/shared/migration';
import { migrationWorkflowId } from '../../src/shared/constants';
import { BAD_PLANS, badPlanText } from '../fixtures/bad-plans';
import { AwsProxy } from '../harness/aws-proxy';
import { runCli, setEnv } from '../harness/cli';
import { connectClient, motoEndpoint, temporalAddress, temporalNamespace, type ConnectedClient } from '../harness/env';
import { aliveInstancesOfPlan, ingressOf, startMigration, waitForPhase } from '../harness/migration';
import { pollUntil } from '../harness/net';
import { startScenario } from '../harness/scenario';
import { testPlan } from '../harness/seed';
import { startWorker } from '../harness/worker';

let temporal: ConnectedClient;
let dir: string;
let restoreEnv: () => void;
const open: { close(): Promise<unknown> }[] = [];

beforeAll(async () => {
  temporal = await connectClient();
  dir = await mkdtemp(join(tmpdir(), 'bad-plans-'));
  restoreEnv = setEnv({
    TEMPORAL_ADDRESS: temporalAddress(),
    TEMPORAL_NAMESPACE: temporalNamespace(),
    TEMPORAL_PROFILE: undefined,
  });
});
afterEach(async () => {
  while (open.length) await open.pop()?.close();
});
afterAll(async () => {
  restoreEnv?.();
  await rm(dir, { recursive: true, force: true });
  await temporal?.close();
});

test(`all ${BAD_PLANS.length} malformed plans: start exits 2 naming the field; nothing started, zero AWS calls`, async () => {
  expect(BAD_PLANS.length).toBeGreaterThanOrEqual(50);
  const proxy = await AwsProxy.start({ target: motoEndpoint() });
  open.push({ close: () => proxy.close() });
  // A worker on the queue the CLI starts on: had any plan been started, it would call AWS.
  const w = await startWorker({ clients: proxy.clients({ maxAttempts: 3 }) });
  open.push({ close: () => w.stop() });
  const failures: string[] = [];
  for (const [i, c] of BAD_PLANS.entries()) {
    const file = join(dir, `case-${i}.${c.text?.trimStart().startsWith('{') ? 'json' : 'yaml'}`);
    await writeFile(file, badPlanText(c));
    const r = await runCli(['start', '--plan', file, '--task-queue', w.taskQueue]);
    const named =
      c.field === '(plan)' ? r.stderr.includes(file) || r.stderr.includes('(plan)') : r.stderr.includes(`- ${c.field}`);
    if (r.code !== 2 || !named || r.connected || !/Nothing was started/.test(r.stderr)) {
      failures.push(`${c.name}: exit ${r.code}, connected ${r.connected}, stderr ${r.stderr.slice(0, 300)}`);
    }
  }
  expect(failures).toEqual([]);
  expect(proxy.calls()).toEqual([]);
  // No workflow was started on that queue.
  const started = [];
  for await (const wf of temporal.client.workflow.list({ query: `TaskQueue = '${w.taskQueue}'` }))
    started.push(wf.workflowId);
  expect(started).toEqual([]);
});

test('bad command lines exit 2 and touch nothing', async () => {
  const cases: string[][] = [
    [],
    ['no-such-command'],
    ['start'],
    ['start', '--plan'],
    ['start', '--plan', join(dir, 'does-not-exist.yaml')],
    ['start', '--plan', 'x.yaml', '--no-such-flag'],
    ['status'],
    ['approve', 'migrate-x'],
    ['reject', 'migrate-x', '--by', 'alice'],
    ['report', 'migrate-x', '--format', 'pdf'],
    ['interrupt', 'spot-guardian-x', '--kind', 'earthquake'],
    ['plan'],
    ['iam-policy', '--plan', join(dir, 'does-not-exist.yaml')],
  ];
  const wrong: string[] = [];
  for (const args of cases) {
    const r = await runCli(args);
    if (r.code !== 2 || r.connected)
      wrong.push(`${args.join(' ') || '(none)'}: exit ${r.code}, connected ${r.connected}: ${r.stderr.slice(0, 200)}`);
  }
  expect(wrong).toEqual([]);
});

test('bad approve/reject signals and decide updates are refused and recorded; the run goes on and completes', async () => {
  const s = await startScenario({ maxAttempts: 3 });
  open.push(s);
  const w = await startWorker({ clients: s.clients });
  open.push({ close: () => w.stop() });
  const plan = testPlan(s.source, s.world.ports, { approval: { approvers: ['alice'], timeout: '7d' } });
  const handle = await startMigration(temporal.client, w.taskQueue, plan);
  await waitForPhase(handle, 'awaiting-approval');

  const badSignals: [typeof approveSignal | typeof rejectSignal, unknown, RegExp][] = [
    [approveSignal, null, /JSON object payload/],
    [approveSignal, 'alice', /JSON object payload/],
    [approveSignal, {}, /needs "by"/],
    [approveSignal, { by: '   ' }, /needs "by"/],
    [approveSignal, { by: 42 }, /needs "by"/],
    [approveSignal, { by: 'alice', comment: { html: '<b>' } }, /"comment" must be a string/],
    [approveSignal, { by: 'mallory' }, /mallory is not an approver/],
    [rejectSignal, { by: 'alice' }, /reject needs "reason"/],
    [rejectSignal, { by: 'alice', reason: '' }, /reject needs "reason"/],
    [approveSignal, [1, 2, 3], /needs "by"/],
  ];
  for (const [signal, payload] of badSignals) await handle.signal(signal as typeof approveSignal, payload as never);
  const afterSignals = await pollUntil(
    'every bad signal recorded',
    async () => {
      const st = await handle.query(statusQuery);
      return st.ignoredMessages.length >= badSignals.length ? st : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  expect(afterSignals.ignoredMessages).toHaveLength(badSignals.length);
  afterSignals.ignoredMessages.forEach((m, i) => expect(m.reason).toMatch(badSignals[i][2]));
  expect(afterSignals.phase).toBe('awaiting-approval');
  expect(afterSignals.approval).toBeUndefined();

  const badUpdates: [unknown, RegExp][] = [
    [{ decision: 'maybe', by: 'alice' }, /"decision" must be "approve" or "reject"/],
    [{ decision: 'approve' }, /needs "by"/],
    [{ decision: 'approve', by: 'mallory' }, /not an approver/],
    [{ decision: 'reject', by: 'alice' }, /needs "reason"/],
    [null, /"decision" must be/],
  ];
  for (const [payload, says] of badUpdates) {
    const err = await handle.executeUpdate(decideUpdate, { args: [payload as Decision] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(((err as WorkflowUpdateFailedError).cause as Error).message).toMatch(says);
  }
  const still = await handle.query(statusQuery);
  expect(still.phase).toBe('awaiting-approval');
  expect(still.approval).toBeUndefined();
  // Refused updates leave no trace in the history (validators run before acceptance).
  const history = await handle.fetchHistory();
  expect(history.events?.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes)).toHaveLength(0);

  await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'alice' }] });
  const report = await handle.result();
  expect(report.outcome).toBe('completed');
  expect(report.approval).toMatchObject({ decision: 'approved', by: 'alice', via: 'update' });
  expect(await aliveInstancesOfPlan(s.direct, plan)).toHaveLength(1);
  expect((await handle.query(statusQuery)).phase).toBe('completed');
});

describe('security defaults of ingress', () => {
  test('by default no rule for SSH or the private services; plan lists what faces the internet', async () => {
    const s = await startScenario({ maxAttempts: 3 });
    open.push(s);
    const w = await startWorker({ clients: s.clients });
    open.push({ close: () => w.stop() });
    const plan = testPlan(s.source, s.world.ports);
    const file = join(dir, 'default.json');
    await writeFile(file, JSON.stringify(plan));
    const shown = await runCli(['plan', file]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/SSH \(port 22\) gets no rule/);
    expect(shown.stdout).toMatch(/Private services get no rule: openvoice \(port \d+\), voicevox \(port \d+\)/);
    expect(shown.stdout).toContain(
      `Rules that face the internet: 2\n     - tcp ${s.world.ports.backend} from 0.0.0.0/0 (backend)\n     - tcp ${s.world.ports.frontend} from 0.0.0.0/0 (frontend)`,
    );
    expect(shown.stdout).not.toMatch(/WARNING/);

    const handle = await startMigration(temporal.client, w.taskQueue, plan);
    await waitForPhase(handle, 'awaiting-approval');
    const rules = await ingressOf(s.direct, plan.region, s.source.securityGroupId);
    expect(rules).toEqual([`tcp/${s.world.ports.backend}/0.0.0.0/0`, `tcp/${s.world.ports.frontend}/0.0.0.0/0`].sort());
    for (const port of [22, s.world.ports.openvoice, s.world.ports.voicevox])
      expect(rules.some((r) => r.startsWith(`tcp/${port}/`))).toBe(false);
    await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
    const report = await handle.result();
    expect(report.warnings.join('\n')).not.toMatch(/SSH/);
  });

  test('SSH to the world only with allowSshFromAnywhere, and loudly: plan WARNING and a report warning', async () => {
    const s = await startScenario({ maxAttempts: 3 });
    open.push(s);
    const w = await startWorker({ clients: s.clients });
    open.push({ close: () => w.stop() });
    const data = { ...testPlan(s.source, s.world.ports) } as Record<string, unknown>;
    const file = join(dir, 'ssh.json');
    // Without the flag, the plan is refused before anything starts.
    await writeFile(
      file,
      JSON.stringify({ ...data, ingress: { publicCidrs: ['0.0.0.0/0'], adminCidrs: ['0.0.0.0/0'] } }),
    );
    const refused = await runCli(['start', '--plan', file]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/ingress\.adminCidrs\[0\].*allowSshFromAnywhere: true/);

    await writeFile(
      file,
      JSON.stringify({
        ...data,
        ingress: { publicCidrs: ['0.0.0.0/0'], adminCidrs: ['0.0.0.0/0', '10.1.0.0/16'], allowSshFromAnywhere: true },
      }),
    );
    const shown = await runCli(['plan', file]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/WARNING: SSH \(port 22\) WILL BE OPEN TO THE WHOLE INTERNET/);
    expect(shown.stdout).toMatch(/Rules that face the internet: 3\n(.*\n){2} {5}- tcp 22 from 0\.0\.0\.0\/0 \(SSH\)/);
    // The private-network admin rule is listed but not as facing the internet.
    expect(shown.stdout).toMatch(/tcp 22 +from 10\.1\.0\.0\/16 +SSH +private network/);

    const started = await runCli(['start', '--plan', file, '--task-queue', w.taskQueue]);
    expect(started.code).toBe(0);
    const handle = temporal.client.workflow.getHandle(migrationWorkflowId(String(data.name)));
    await waitForPhase(handle, 'awaiting-approval');
    const rules = await ingressOf(s.direct, s.source.region, s.source.securityGroupId);
    expect(rules).toEqual(expect.arrayContaining(['tcp/22/0.0.0.0/0', 'tcp/22/10.1.0.0/16']));
    await handle.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
    const report = await handle.result();
    expect(report.warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^SSH \(port 22\) is open to the whole internet \(0\.0\.0\.0\/0\)/),
      ]),
    );
    expect(report.securityGroup?.rules).toEqual(
      expect.arrayContaining([expect.objectContaining({ fromPort: 22, cidr: '0.0.0.0/0' })]),
    );
  });
});
