/**
 * Least privilege and secrets: a worker whose AWS credentials come from its environment runs a
 * migration that rolls back after stop-old fails, a Spot migration from an SSM image parameter,
 * and a Spot recovery from a queued interruption warning. Then:
 * - every AWS action the proxy logged is in `migration iam-policy`, and the policy holds nothing
 *   else (except what real AWS authorises without a logged call, listed below with the reason);
 * - no credential is anywhere in what Temporal recorded: every event of every history, the
 *   results, the failure, the status queries.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { iamActionOf, iamPolicy, policyActions, workerActions } from '../../src/aws/permissions';
import { createAwsClients } from '../../src/aws/clients';
import { guardianWorkflowId, routerWorkflowId } from '../../src/shared/constants';
import { decideUpdate, statusQuery } from '../../src/shared/migration';
import { guardianStatusQuery } from '../../src/shared/spot';
import { runCli } from '../harness/cli';
import { connectClient, type ConnectedClient } from '../harness/env';
import {
  addressHolder,
  aliveInstancesOfPlan,
  ingressOf,
  instance,
  startMigration,
  waitForPhase,
} from '../harness/migration';
import { pollUntil } from '../harness/net';
import { failureOf } from '../harness/outcome';
import { historiesOf, textsOf } from '../harness/recorded';
import { startScenario, type Scenario } from '../harness/scenario';
import { AMI_PARAMETER, testPlan } from '../harness/seed';
import { createQueue, endSpotWorkflows, putMessage, routerStatus, spotEvent, waitForGuardian } from '../harness/spot';
import { startWorker, type TestWorker } from '../harness/worker';

// Its own region: the region's Spot event router is this file's alone.
const REGION = 'eu-west-1';

/**
 * Actions of the policy this test does not see called, each with the reason. Everything else in
 * the policy must have been called in this test.
 */
const REQUIRED_UNLOGGED: Record<string, string> = {
  // RunInstances with IamInstanceProfile: AWS checks iam:PassRole on the profile's role as part
  // of the RunInstances call. moto keeps no IAM for it (and the test plans set no profile).
  'iam:PassRole': 'RunInstances with an instance profile passes its role to EC2',
  // Only a remote step retried after its worker died looks its command up; the guardian crash
  // test in guardian-scale.test.ts sees that call.
  'ssm:ListCommands': 'a remote step retried after a worker crash finds the command it sent',
  // EC2 itself makes the Spot service-linked role on the account's first Spot launch; the
  // worker never calls IAM.
  'iam:CreateServiceLinkedRole': 'the first Spot launch of an account makes AWSServiceRoleForEC2Spot',
  // (ec2:DeregisterImage and ec2:DeleteSnapshot are logged: the rollback after the approval
  // discards the golden image made while the person decided.)
};

/** Credentials of the shape AWS issues, random for this run (moto accepts any). */
const ACCESS_KEY = `AKIA${randomBytes(10).toString('hex').toUpperCase().slice(0, 16)}`;
const SECRET_KEY = randomBytes(30).toString('base64').slice(0, 40);
const SESSION_TOKEN = `IQoJb3JpZ2luX2VjE${randomBytes(96).toString('base64')}`;

const CREDENTIAL_PATTERNS: [string, RegExp][] = [
  ['access key id (AKIA…/ASIA…)', /\b(AKIA|ASIA)[0-9A-Z]{16}\b/],
  // 40 characters of base64 with upper and lower case letters and a digit (identifiers in the
  // history such as workflowExecutionSignaledEventAttributes have no digit).
  [
    '40-character secret',
    /(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/,
  ],
  ['"aws_secret"', /aws_secret/i],
  ['secret access key', /secretAccessKey|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|sessionToken/i],
  ['bearer token', /\bbearer\s+[A-Za-z0-9._~+/-]+=*/i],
  ['AWS signature', /Signature=|X-Amz-Credential|x-amz-security-token/i],
];

let temporal: ConnectedClient;
let s: Scenario;
let w: TestWorker;
let restoreEnv: () => void;
const guardians: string[] = [];

beforeAll(async () => {
  temporal = await connectClient();
  const before = {
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN: process.env.AWS_SESSION_TOKEN,
  };
  restoreEnv = () => {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: SECRET_KEY,
    AWS_SESSION_TOKEN: SESSION_TOKEN,
  });
  // One unplanned rule on the group, revoked by the plan (and restored by the rollback).
  s = await startScenario({ maxAttempts: 3, seed: { region: REGION, ingressPorts: [9443] } });
  // The worker's clients as production makes them: credentials from the SDK's default chain
  // (this process's environment), SDK retries 3.
  w = await startWorker({ clients: createAwsClients({ endpoint: s.proxy.endpoint, maxAttempts: 3 }) });
});

afterAll(async () => {
  await endSpotWorkflows(temporal.client, REGION, guardians).catch(() => undefined);
  await w?.stop();
  await s?.close();
  restoreEnv?.();
  await temporal?.close();
});

test('the AWS actions of a migration, a rollback and a Spot recovery are exactly the IAM policy; no credential reaches Temporal', async () => {
  const recorded: unknown[] = [];

  // 1. A migration whose stop-old is refused: the rollback starts the old instance again, moves
  //    the EIP back, revokes and restores rules, terminates the new instance.
  const rolledBack = testPlan(s.source, s.world.ports, {
    ingress: { revokeUnplanned: true },
    checks: { attempts: 3, interval: '1s' },
  });
  const refused = s.proxy.fail({
    action: 'StopInstances',
    code: 'UnauthorizedOperation',
    status: 403,
    when: (p) => p.DryRun !== 'true',
  });
  const first = await startMigration(temporal.client, w.taskQueue, rolledBack);
  await waitForPhase(first, 'awaiting-approval');
  // The golden image is made while the person decides; approved before it exists, the rollback
  // would only cancel its making, and nothing would be deregistered.
  await pollUntil(
    'the golden image made',
    async () => ((await first.query(statusQuery)).golden?.state === 'made' ? true : undefined),
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  recorded.push(await first.query(statusQuery));
  await first.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const failed = await failureOf(first);
  refused.remove();
  expect(failed.failure.type).toBe('UnauthorizedOperation');
  expect(failed.report.outcome).toBe('rolled back');
  // Started again, the golden image discarded, the Elastic IP back, the ingress undone, terminated.
  expect(failed.report.compensations.map((c) => c.state)).toEqual(['done', 'done', 'done', 'done', 'done']);
  expect(await addressHolder(s.direct, rolledBack)).toBe(s.source.instanceId);
  expect(await aliveInstancesOfPlan(s.direct, rolledBack)).toHaveLength(0);
  recorded.push(failed.report, failed.failure, await first.query(statusQuery));

  // 2. A Spot migration whose image comes from an SSM parameter, and a recovery on the queue.
  const queueUrl = await createQueue(s.direct, REGION);
  const spot = testPlan(s.source, s.world.ports, {
    target: { market: 'spot', imageId: undefined, imageParameter: AMI_PARAMETER },
    spot: { interruptionQueueUrl: queueUrl, pollInterval: '1s' },
    checks: { attempts: 3, interval: '1s' },
  });
  guardians.push(guardianWorkflowId(spot.name));
  const second = await startMigration(temporal.client, w.taskQueue, spot);
  await waitForPhase(second, 'awaiting-approval');
  await second.executeUpdate(decideUpdate, { args: [{ decision: 'approve', by: 'ops' }] });
  const report = await second.result();
  expect(report.outcome).toBe('completed');
  recorded.push(report, await second.query(statusQuery));
  // Security defaults: no rule for SSH or the private services; the unplanned rule the first run
  // revoked is back (its rollback restored it) and this plan leaves it alone, with a warning.
  const rules = await ingressOf(s.direct, REGION, s.source.securityGroupId);
  expect(rules).toEqual(
    [`tcp/${s.world.ports.backend}/0.0.0.0/0`, `tcp/${s.world.ports.frontend}/0.0.0.0/0`, 'tcp/9443/0.0.0.0/0'].sort(),
  );
  expect(report.warnings.join('\n')).toMatch(/also allows tcp\/9443 from 0\.0\.0\.0\/0/);

  const guardian = temporal.client.workflow.getHandle(guardianWorkflowId(spot.name));
  const guarding = await waitForGuardian(
    guardian,
    'guarding',
    (g) => g.state === 'guarding' && g.instanceId === report.after.instanceId,
  );
  await pollUntil(
    'router sees the instance',
    async () => ((await routerStatus(temporal.client, REGION)).guarded >= 1 ? true : undefined),
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  await putMessage(s.direct, REGION, queueUrl, spotEvent('interruption', guarding.instanceId, REGION));
  const recovered = await waitForGuardian(
    guardian,
    'one replacement',
    (g) => g.replacements === 1 && g.state === 'guarding',
  );
  await pollUntil(
    'message deleted',
    async () =>
      (await routerStatus(temporal.client, REGION)).stats.messagesRouted >= 1 &&
      s.proxy.count('DeleteMessageBatch') >= 1
        ? true
        : undefined,
    {
      timeoutMs: 30_000,
      intervalMs: 100,
    },
  );
  expect((await instance(s.direct, REGION, guarding.instanceId)).State?.Name).toBe('terminated');
  expect(await addressHolder(s.direct, spot)).toBe(recovered.instanceId);
  recorded.push(recovered, await guardian.query(guardianStatusQuery), await routerStatus(temporal.client, REGION));

  // --- least privilege -----------------------------------------------------------------------
  const logged = [...new Set(s.proxy.calls().map((c) => iamActionOf(c.service, c.action)))].sort();
  const allowed = policyActions(iamPolicy());
  expect(allowed).toEqual(workerActions());
  const notAllowed = logged.filter((a) => !allowed.includes(a));
  expect(notAllowed).toEqual([]);
  const neverUsed = allowed.filter((a) => !logged.includes(a));
  expect(neverUsed).toEqual(Object.keys(REQUIRED_UNLOGGED).sort());
  // DryRun calls (answered 412 DryRunOperation) were among them: preflight proves permissions with them.
  for (const action of ['RunInstances', 'StopInstances', 'AssociateAddress'])
    expect(s.proxy.calls({ action }).some((c) => c.status === 412)).toBe(true);
  // Narrowed to a plan, the policy keeps the same actions.
  expect(policyActions(iamPolicy(spot))).toEqual(allowed);

  // The CLI prints the same policy, with and without a plan.
  const all = await runCli(['iam-policy']);
  expect(all.code).toBe(0);
  expect(all.connected).toBe(false);
  expect(JSON.parse(all.stdout)).toEqual(iamPolicy());
  const dir = await mkdtemp(join(tmpdir(), 'iam-policy-'));
  try {
    const file = join(dir, 'plan.json');
    await writeFile(file, JSON.stringify(spot));
    const narrowed = await runCli(['iam-policy', '--plan', file]);
    expect(narrowed.code).toBe(0);
    const policy = JSON.parse(narrowed.stdout) as ReturnType<typeof iamPolicy>;
    expect(policyActions(policy)).toEqual(allowed);
    const terminate = policy.Statement.find((st) => st.Action.includes('ec2:TerminateInstances'));
    expect(terminate?.Condition).toEqual({ StringEquals: { 'aws:ResourceTag/ec2-gpu-migration:plan': spot.name } });
    expect(policy.Statement.find((st) => st.Action.includes('sqs:ReceiveMessage'))?.Resource).toMatch(
      /^arn:aws:sqs:eu-west-1:\d{12}:spot-events-/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  // --- no secret in Temporal ---------------------------------------------------------------------
  const ids = [first.workflowId, second.workflowId, guardianWorkflowId(spot.name), routerWorkflowId(REGION)];
  let events = 0;
  for (const id of ids) {
    const runs = await historiesOf(temporal.client, id);
    expect(runs.length).toBeGreaterThan(0);
    for (const run of runs) {
      events += run.history.events?.length ?? 0;
      recorded.push(run.history);
    }
  }
  expect(events).toBeGreaterThan(100);
  const text = textsOf(recorded).join('\n');
  // The scan reads decoded payloads: the plan name and instance ids are there in plain text.
  expect(text).toContain(spot.name);
  expect(text).toContain(recovered.instanceId);
  for (const value of [ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, SESSION_TOKEN.slice(0, 40)])
    expect(text.includes(value)).toBe(false);
  const found = CREDENTIAL_PATTERNS.filter(([, re]) => re.test(text)).map(
    ([name, re]) => `${name}: ${re.exec(text)?.[0]}`,
  );
  expect(found).toEqual([]);
  // The failure as the client sees it carries no credential either.
  const err = await first.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect(JSON.stringify(textsOf(err))).not.toContain(ACCESS_KEY);
});
