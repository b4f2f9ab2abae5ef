/**
 * `migration events setup|remove` against moto behind the strict world, each test in an account
 * of its own: what setup makes (the queue, its dead-letter queue and policy, three account-scoped
 * rules with the queue as target, all tagged), that a second setup and a dry run change nothing,
 * that an EC2 event on the default bus reaches the queue, and what remove deletes or refuses.
 *
 * IAM: the proxy authorises every call against the actions `iam-policy --setup` grants, each on
 * any resource: the test world models no resource ARNs for EventBridge or for SQS calls by queue
 * name, so the narrowing to the plan's queues and rules is checked in unit `iam-evaluator`.
 */
import {
  DescribeRuleCommand,
  ListTagsForResourceCommand,
  ListTargetsByRuleCommand,
  PutEventsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueueTagsCommand,
  ReceiveMessageCommand,
} from '@aws-sdk/client-sqs';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { parseSpotEvent } from '../../src/activities/spot';
import type { AwsClients } from '../../src/aws/clients';
import { eventsSetupActions, type PolicyDocument } from '../../src/aws/permissions';
import {
  DLQ_RETENTION_SECONDS,
  EVENT_RULES,
  MANAGED_TAG_KEY,
  MANAGED_TAG_VALUE,
  MAX_RECEIVE_COUNT,
  QUEUE_RETENTION_SECONDS,
  TARGET_ID,
  defaultQueueName,
} from '../../src/cli/commands/events';
import { AwsProxy } from '../harness/aws-proxy';
import { REPO_ROOT, runCli, setEnv } from '../harness/cli';
import { motoEndpoint } from '../harness/env';
import { withoutAction } from '../harness/iam';

// A region no other file uses: the rules and the default queue are per region (and account).
const REGION = 'me-south-1';
const QUEUE = defaultQueueName(REGION);
const DLQ = `${QUEUE}-dlq`;
const RULES = EVENT_RULES.map((r) => r.name);
const TAGS = { [MANAGED_TAG_KEY]: MANAGED_TAG_VALUE };
/** The calls that only look. */
const READS = new Set([
  'DescribeEventBus',
  'GetQueueUrl',
  'ListQueueTags',
  'GetQueueAttributes',
  'DescribeRule',
  'ListTagsForResource',
  'ListTargetsByRule',
]);

/** Exactly the actions of `iam-policy --setup`, on any resource. */
const SETUP_ACTIONS: PolicyDocument = {
  Version: '2012-10-17',
  Statement: [{ Sid: 'EventsSetup', Effect: 'Allow', Action: eventsSetupActions(), Resource: '*' }],
};

let dir: string;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'migration-events-'));
});
afterEach(async () => {
  while (open.length) await open.pop()?.close();
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Account {
  proxy: AwsProxy;
  /** The side door: not logged, not authorised. */
  direct: AwsClients;
  /** The example plan in REGION (a queue URL of the plan's own, if given), as a file. */
  planFile(interruptionQueueUrl?: string | null): Promise<string>;
}

/** An AWS account of its own for one test, which the CLI reaches through the SDK's default chain. */
async function account(): Promise<Account> {
  const proxy = await AwsProxy.start({ target: motoEndpoint(), policies: [SETUP_ACTIONS] });
  const restoreEnv = setEnv({
    AWS_ENDPOINT_URL: proxy.endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_SESSION_TOKEN: undefined,
    AWS_REGION: 'us-east-1',
    AWS_PROFILE: undefined,
    AWS_ENDPOINT_URL_SQS: undefined,
    AWS_ENDPOINT_URL_EVENTBRIDGE: undefined,
  });
  open.push({
    close: async () => {
      restoreEnv();
      await proxy.close();
    },
  });
  return {
    proxy,
    direct: proxy.clients({ bypass: true, maxAttempts: 3 }),
    planFile: async (interruptionQueueUrl = null) => {
      const example = parse(await readFile(join(REPO_ROOT, 'examples', 'video-message-app.yaml'), 'utf8'));
      const name = `events-${randomBytes(3).toString('hex')}`;
      const file = join(dir, `${name}.yaml`);
      await writeFile(
        file,
        stringify({ ...example, name, region: REGION, spot: { ...example.spot, interruptionQueueUrl } }),
      );
      return file;
    },
  };
}

/** The URL of a queue, or undefined when there is none (through the side door). */
async function queueUrl(direct: AwsClients, name: string): Promise<string | undefined> {
  try {
    return (await direct.sqs(REGION).send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
  } catch (err) {
    if (/QueueDoesNotExist|NonExistentQueue/.test((err as Error).name)) return undefined;
    throw err;
  }
}

async function ruleExists(direct: AwsClients, name: string): Promise<boolean> {
  try {
    await direct.eventBridge(REGION).send(new DescribeRuleCommand({ Name: name }));
    return true;
  } catch (err) {
    if ((err as Error).name === 'ResourceNotFoundException') return false;
    throw err;
  }
}

/** The calls through the main door that change something. */
const writes = (proxy: AwsProxy) =>
  proxy
    .calls()
    .filter((c) => !READS.has(c.action))
    .map((c) => `${c.service}:${c.action}`);

const printedUrl = (stdout: string) => /interruptionQueueUrl: (\S+)/.exec(stdout)?.[1];

test('setup makes the queue, its dead-letter queue and policy, and three account-scoped rules with the queue as target; a second setup changes nothing', async () => {
  const a = await account();
  const plan = await a.planFile();
  const first = await runCli(['events', 'setup', '--plan', plan]);
  expect(first).toMatchObject({ code: 0, stderr: '' });
  expect(first.stdout).toContain(`account ${a.proxy.accountId}`);
  expect(first.stdout.match(/^ {2}created /gm)).toHaveLength(2 + 2 * RULES.length);
  expect(first.connected).toBe(false);

  // The queues.
  const url = await queueUrl(a.direct, QUEUE);
  const dlqUrl = await queueUrl(a.direct, DLQ);
  expect(url).toBeDefined();
  expect(dlqUrl).toBeDefined();
  expect(printedUrl(first.stdout)).toBe(url);
  const sqs = a.direct.sqs(REGION);
  const arn = (name: string) => `arn:aws:sqs:${REGION}:${a.proxy.accountId}:${name}`;
  const ruleArn = (name: string) => `arn:aws:events:${REGION}:${a.proxy.accountId}:rule/${name}`;
  const attrs = (
    await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: ['MessageRetentionPeriod', 'RedrivePolicy', 'Policy', 'QueueArn'],
      }),
    )
  ).Attributes!;
  expect(attrs.QueueArn).toBe(arn(QUEUE));
  expect(attrs.MessageRetentionPeriod).toBe(String(QUEUE_RETENTION_SECONDS));
  const redrive = JSON.parse(attrs.RedrivePolicy!) as { deadLetterTargetArn: string; maxReceiveCount: unknown };
  expect({ ...redrive, maxReceiveCount: Number(redrive.maxReceiveCount) }).toEqual({
    deadLetterTargetArn: arn(DLQ),
    maxReceiveCount: MAX_RECEIVE_COUNT,
  });
  const policy = JSON.parse(attrs.Policy!) as { Statement: Record<string, unknown>[] };
  expect(policy.Statement).toEqual([
    {
      Sid: 'EventBridgeSpotEvents',
      Effect: 'Allow',
      Principal: { Service: 'events.amazonaws.com' },
      Action: 'sqs:SendMessage',
      Resource: arn(QUEUE),
      Condition: { ArnEquals: { 'aws:SourceArn': RULES.map(ruleArn) } },
    },
  ]);
  const dlqAttrs = (
    await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['MessageRetentionPeriod'] }))
  ).Attributes!;
  expect(dlqAttrs.MessageRetentionPeriod).toBe(String(DLQ_RETENTION_SECONDS));
  for (const u of [url, dlqUrl]) expect((await sqs.send(new ListQueueTagsCommand({ QueueUrl: u }))).Tags).toEqual(TAGS);

  // The rules: EC2's events of this account, on the default bus, to the queue as they are.
  const events = a.direct.eventBridge(REGION);
  for (const spec of EVENT_RULES) {
    const rule = await events.send(new DescribeRuleCommand({ Name: spec.name }));
    expect(rule).toMatchObject({ Arn: ruleArn(spec.name), State: 'ENABLED', EventBusName: 'default' });
    expect(JSON.parse(rule.EventPattern!)).toEqual({
      source: ['aws.ec2'],
      'detail-type': [spec.detailType],
      account: [a.proxy.accountId],
      ...(spec.kind === 'state-change'
        ? { detail: { state: ['stopping', 'stopped', 'shutting-down', 'terminated'] } }
        : {}),
    });
    const targets = (await events.send(new ListTargetsByRuleCommand({ Rule: spec.name }))).Targets;
    expect(targets).toEqual([{ Id: TARGET_ID, Arn: arn(QUEUE) }]);
    const tags = (await events.send(new ListTagsForResourceCommand({ ResourceARN: rule.Arn }))).Tags;
    expect(tags).toEqual([{ Key: MANAGED_TAG_KEY, Value: MANAGED_TAG_VALUE }]);
  }

  // Again: everything is in place, nothing is written.
  a.proxy.clearLog();
  const second = await runCli(['events', 'setup', '--plan', plan]);
  expect(second).toMatchObject({ code: 0, stderr: '' });
  expect(second.stdout).toContain('nothing to change');
  expect(second.stdout.match(/^ {2}in place /gm)).toHaveLength(2 + 2 * RULES.length);
  expect(printedUrl(second.stdout)).toBe(url);
  expect(writes(a.proxy)).toEqual([]);
  expect(a.proxy.calls().length).toBeGreaterThan(0);
});

test('--dry-run on a fresh account says what it would make and makes nothing', async () => {
  const a = await account();
  const dry = await runCli(['events', 'setup', '--plan', await a.planFile(), '--dry-run']);
  expect(dry).toMatchObject({ code: 0, stderr: '' });
  expect(dry.stdout.match(/^ {2}would create /gm)).toHaveLength(2 + 2 * RULES.length);
  expect(dry.stdout).toContain('dry run: nothing was changed');
  // The URL the queue will have, on AWS.
  expect(printedUrl(dry.stdout)).toBe(`https://sqs.${REGION}.amazonaws.com/${a.proxy.accountId}/${QUEUE}`);
  expect(writes(a.proxy)).toEqual([]);
  expect(await queueUrl(a.direct, QUEUE)).toBeUndefined();
  expect(await queueUrl(a.direct, DLQ)).toBeUndefined();
  for (const name of RULES) expect(await ruleExists(a.direct, name)).toBe(false);
});

test('an EC2 event on the default bus reaches the queue through the rules, in the shape the router reads', async () => {
  const a = await account();
  expect(await runCli(['events', 'setup', '--plan', await a.planFile()])).toMatchObject({ code: 0 });
  const url = (await queueUrl(a.direct, QUEUE))!;

  // EC2 puts these events itself; AWS refuses an `aws.` source from PutEvents, moto does not.
  // The side door stands in for EC2 (moto matches the rules' patterns and sends to SQS targets;
  // it does not evaluate the queue policy, which unit `events-setup` checks).
  const ec2 = (detailType: string, detail: Record<string, unknown>, source = 'aws.ec2') => ({
    Source: source,
    DetailType: detailType,
    Detail: JSON.stringify(detail),
    Resources: [`arn:aws:ec2:${REGION}:${a.proxy.accountId}:instance/${String(detail['instance-id'])}`],
  });
  const put = await a.direct.eventBridge(REGION).send(
    new PutEventsCommand({
      Entries: [
        ec2('EC2 Spot Instance Interruption Warning', {
          'instance-id': 'i-0aaaaaaaaaaaaaaa1',
          'instance-action': 'terminate',
        }),
        ec2('EC2 Instance State-change Notification', { 'instance-id': 'i-0aaaaaaaaaaaaaaa2', state: 'running' }),
        ec2('EC2 Instance State-change Notification', { 'instance-id': 'i-0aaaaaaaaaaaaaaa3', state: 'stopping' }),
        ec2('EC2 Instance Rebalance Recommendation', { 'instance-id': 'i-0aaaaaaaaaaaaaaa4' }),
        ec2('EC2 Spot Instance Interruption Warning', { 'instance-id': 'i-0aaaaaaaaaaaaaaa5' }, 'my.app'),
      ],
    }),
  );
  expect(put.FailedEntryCount ?? 0).toBe(0);

  const bodies: string[] = [];
  for (let i = 0; i < 5; i++) {
    const got = await a.direct
      .sqs(REGION)
      .send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    bodies.push(...(got.Messages ?? []).map((m) => m.Body ?? ''));
    if (bodies.length >= 3) break;
  }
  const parsed = bodies.map((b) => parseSpotEvent(b));
  expect(parsed.map((p) => (p.ok ? `${p.kind} ${p.instanceId}` : p.reason)).sort((x, y) => x.localeCompare(y))).toEqual(
    ['interruption i-0aaaaaaaaaaaaaaa1', 'rebalance i-0aaaaaaaaaaaaaaa4', 'stopped i-0aaaaaaaaaaaaaaa3'],
  );
  // The running instance and the custom source stayed out.
  const more = await a.direct
    .sqs(REGION)
    .send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
  expect(more.Messages ?? []).toEqual([]);
});

test('remove deletes the targets, rules and both queues (a dry run first deletes nothing); again, it finds nothing', async () => {
  const a = await account();
  const plan = await a.planFile();
  expect(await runCli(['events', 'setup', '--plan', plan])).toMatchObject({ code: 0 });

  a.proxy.clearLog();
  const dry = await runCli(['events', 'remove', '--plan', plan, '--dry-run']);
  expect(dry).toMatchObject({ code: 0, stderr: '' });
  expect(dry.stdout.match(/^ {2}would delete /gm)).toHaveLength(2 + 2 * RULES.length);
  expect(writes(a.proxy)).toEqual([]);
  expect(await queueUrl(a.direct, QUEUE)).toBeDefined();

  const removed = await runCli(['events', 'remove', '--plan', plan]);
  expect(removed).toMatchObject({ code: 0, stderr: '' });
  expect(removed.stdout.match(/^ {2}deleted /gm)).toHaveLength(2 + 2 * RULES.length);
  expect(writes(a.proxy).sort()).toEqual(
    [
      ...RULES.flatMap(() => ['events:RemoveTargets', 'events:DeleteRule']),
      'sqs:DeleteQueue',
      'sqs:DeleteQueue',
    ].sort(),
  );
  expect(await queueUrl(a.direct, QUEUE)).toBeUndefined();
  expect(await queueUrl(a.direct, DLQ)).toBeUndefined();
  for (const name of RULES) expect(await ruleExists(a.direct, name)).toBe(false);

  const again = await runCli(['events', 'remove', '--plan', plan]);
  expect(again).toMatchObject({ code: 0 });
  expect(again.stdout).toContain('nothing to remove');
});

test('remove and setup refuse a queue of the plan that they did not make, exit 2 and change nothing', async () => {
  const a = await account();
  const name = `spot-events-${randomBytes(3).toString('hex')}`;
  await a.direct.sqs(REGION).send(new CreateQueueCommand({ QueueName: name }));
  const plan = await a.planFile(`https://sqs.${REGION}.amazonaws.com/${a.proxy.accountId}/${name}`);

  const remove = await runCli(['events', 'remove', '--plan', plan]);
  expect(remove.code).toBe(2);
  expect(remove.stderr).toMatch(
    new RegExp(`refused: queue ${name} exists without the tag ${MANAGED_TAG_KEY}=${MANAGED_TAG_VALUE}`),
  );
  expect(remove.stderr).toContain('Nothing changed.');

  const setup = await runCli(['events', 'setup', '--plan', plan]);
  expect(setup.code).toBe(2);
  expect(setup.stderr).toContain(`queue ${name} exists without the tag`);
  expect(writes(a.proxy)).toEqual([]);
  expect(await queueUrl(a.direct, name)).toBeDefined();
  expect(await queueUrl(a.direct, `${name}-dlq`)).toBeUndefined();
  for (const rule of RULES) expect(await ruleExists(a.direct, rule)).toBe(false);
});

test('bad input exits 2 before any AWS call', async () => {
  const a = await account();
  const fifo = await a.planFile(`https://sqs.${REGION}.amazonaws.com/${a.proxy.accountId}/spot-events.fifo`);
  for (const args of [
    ['events', 'setup', '--plan', join(dir, 'no-such-plan.yaml')],
    ['events', 'setup', '--plan', fifo],
    ['events', 'remove', '--plan', fifo, '--dry-run'],
    ['events', 'setup', '--plan', await a.planFile(), '--force'],
    ['events', 'setup'],
  ]) {
    const r = await runCli(args);
    expect({ args, code: r.code }).toEqual({ args, code: 2 });
  }
  expect(a.proxy.calls()).toEqual([]);
});

test('an AWS error names the call, the resource and the AWS code, and exits 1', async () => {
  const a = await account();
  a.proxy.setPolicies([withoutAction(SETUP_ACTIONS, 'events:PutRule')]);
  const r = await runCli(['events', 'setup', '--plan', await a.planFile()]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/events:PutRule on rule ec2-gpu-migration-interruption failed: AccessDeniedException/);
  expect(r.stderr).toContain('iam-policy --setup');
  // What came before the failure is done and said; setup again picks up from there.
  expect(r.stdout).toMatch(new RegExp(`created +queue ${QUEUE} `));
  a.proxy.setPolicies([SETUP_ACTIONS]);
  const again = await runCli(['events', 'setup', '--plan', await a.planFile()]);
  expect(again).toMatchObject({ code: 0 });
  expect(again.stdout).toMatch(new RegExp(`in place +queue ${QUEUE}\\n`));
  expect(again.stdout).toMatch(/created +rule ec2-gpu-migration-interruption/);
});
