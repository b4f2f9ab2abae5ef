/**
 * `migration events setup|remove`: the rules' event patterns, the queue's policy and redrive
 * policy, and what setup and remove decide to do for what is there (pure). Calls to AWS itself
 * are in integration `events-setup.test.ts`; the IAM policy of those calls in unit `iam-evaluator`.
 */
import { Command, CommanderError } from 'commander';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { parseSpotEvent } from '../../src/activities/spot';
import { EXIT, handleError, UsageError } from '../../src/cli/errors';
import {
  DLQ_RETENTION_SECONDS,
  EVENT_RULES,
  MANAGED_TAG_KEY,
  MANAGED_TAG_VALUE,
  MAX_RECEIVE_COUNT,
  QUEUE_RETENTION_SECONDS,
  TARGET_ID,
  eventPattern,
  eventsNames,
  planRemove,
  planSetup,
  queueArnOf,
  queueAttributes,
  queuePolicy,
  registerEvents,
  ruleArnOf,
  ruleDescription,
  sameJson,
  whereOfBus,
  type EventsClients,
  type EventsNames,
  type Observed,
  type ObservedQueue,
  type ObservedRule,
} from '../../src/cli/commands/events';
import { INSTANCE_STATES } from '../../src/shared/instance-states';
import type { Plan } from '../../src/plan/schema';

const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
const where = { partition: 'aws', region: REGION, account: ACCOUNT };
const plan = (interruptionQueueUrl: string | null = null) =>
  ({ name: 'vma', region: REGION, spot: { interruptionQueueUrl } }) as unknown as Plan;
const TAGS = { [MANAGED_TAG_KEY]: MANAGED_TAG_VALUE };

/** EventBridge's matching for the patterns used here: every key's value is among the listed ones. */
function matches(pattern: Record<string, unknown>, event: Record<string, unknown>): boolean {
  return Object.entries(pattern).every(([key, want]) =>
    Array.isArray(want)
      ? want.includes(event[key])
      : typeof event[key] === 'object' &&
        event[key] !== null &&
        matches(want as Record<string, unknown>, event[key] as Record<string, unknown>),
  );
}

const ec2Event = (
  detailType: string,
  detail: Record<string, unknown>,
  account = ACCOUNT,
): Record<string, unknown> & { 'detail-type': string; detail: Record<string, unknown> } => ({
  version: '0',
  id: 'e1',
  'detail-type': detailType,
  source: 'aws.ec2',
  account,
  time: '2026-12-03T12:00:00Z',
  region: REGION,
  resources: [],
  detail: { 'instance-id': 'i-0b662ef9931388ba0', ...detail },
});

describe('the names', () => {
  it("uses the region's default queue, or the last part of spot.interruptionQueueUrl and its account", () => {
    expect(eventsNames(plan())).toEqual({
      region: REGION,
      queueName: 'ec2-gpu-migration-spot-eu-west-1',
      dlqName: 'ec2-gpu-migration-spot-eu-west-1-dlq',
      ruleNames: ['ec2-gpu-migration-interruption', 'ec2-gpu-migration-rebalance', 'ec2-gpu-migration-state-change'],
    });
    expect(eventsNames(plan(`https://sqs.eu-west-1.amazonaws.com/${ACCOUNT}/spot-events`))).toMatchObject({
      queueName: 'spot-events',
      dlqName: 'spot-events-dlq',
      urlAccount: ACCOUNT,
    });
  });

  it('refuses, as bad input, a FIFO queue and a name too long for its dead-letter queue', () => {
    expect(() => eventsNames(plan(`https://sqs.eu-west-1.amazonaws.com/${ACCOUNT}/spot.fifo`))).toThrow(UsageError);
    expect(() => eventsNames(plan(`https://sqs.eu-west-1.amazonaws.com/${ACCOUNT}/${'q'.repeat(77)}`))).toThrow(
      /at most 76 characters/,
    );
    expect(() => eventsNames(plan(`https://sqs.eu-west-1.amazonaws.com/${ACCOUNT}/a%20b`))).toThrow(/queue name/);
  });

  it("reads partition, region and account from the default bus's ARN", () => {
    expect(whereOfBus(`arn:aws-cn:events:cn-north-1:${ACCOUNT}:event-bus/default`)).toEqual({
      partition: 'aws-cn',
      region: 'cn-north-1',
      account: ACCOUNT,
    });
    expect(whereOfBus('arn:aws:events:eu-west-1::event-bus/default')).toBeUndefined();
  });
});

describe('the event patterns', () => {
  const rule = (kind: string) => EVENT_RULES.find((r) => r.kind === kind)!;

  it("match EC2's events of this account only, one detail-type each", () => {
    for (const r of EVENT_RULES) {
      const pattern = eventPattern(r, ACCOUNT);
      expect(pattern).toMatchObject({ source: ['aws.ec2'], 'detail-type': [r.detailType], account: [ACCOUNT] });
      expect(r.name).toBe(`ec2-gpu-migration-${r.kind}`);
    }
    expect(eventPattern(rule('state-change'), ACCOUNT)).toEqual({
      source: ['aws.ec2'],
      'detail-type': ['EC2 Instance State-change Notification'],
      account: [ACCOUNT],
      detail: { state: ['stopping', 'stopped', 'shutting-down', 'terminated'] },
    });
  });

  it('let through exactly the events the router acts on', () => {
    const samples = [
      ec2Event('EC2 Spot Instance Interruption Warning', { 'instance-action': 'terminate' }),
      ec2Event('EC2 Instance Rebalance Recommendation', {}),
      ...INSTANCE_STATES.map((state) => ec2Event('EC2 Instance State-change Notification', { state })),
    ];
    for (const event of samples) {
      const matched = EVENT_RULES.filter((r) => matches(eventPattern(r, ACCOUNT), event));
      expect({ event: event['detail-type'], state: event.detail.state, matched: matched.length }).toEqual({
        event: event['detail-type'],
        state: event.detail.state,
        matched: parseSpotEvent(JSON.stringify(event)).ok ? 1 : 0,
      });
    }
    // Another account's events (a shared bus), or another source, go nowhere.
    const other = ec2Event('EC2 Spot Instance Interruption Warning', {}, '999999999999');
    expect(EVENT_RULES.some((r) => matches(eventPattern(r, ACCOUNT), other))).toBe(false);
    const custom = { ...ec2Event('EC2 Spot Instance Interruption Warning', {}), source: 'my.app' };
    expect(EVENT_RULES.some((r) => matches(eventPattern(r, ACCOUNT), custom))).toBe(false);
  });
});

describe('the queue', () => {
  it('lets events.amazonaws.com send to it for exactly the three rules', () => {
    const ruleNames = EVENT_RULES.map((r) => r.name);
    expect(queuePolicy(where, 'spot-events', ruleNames)).toEqual({
      Version: '2012-10-17',
      Id: `arn:aws:sqs:eu-west-1:${ACCOUNT}:spot-events/ec2-gpu-migration-events`,
      Statement: [
        {
          Sid: 'EventBridgeSpotEvents',
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: 'sqs:SendMessage',
          Resource: `arn:aws:sqs:eu-west-1:${ACCOUNT}:spot-events`,
          Condition: {
            ArnEquals: {
              'aws:SourceArn': [
                `arn:aws:events:eu-west-1:${ACCOUNT}:rule/ec2-gpu-migration-interruption`,
                `arn:aws:events:eu-west-1:${ACCOUNT}:rule/ec2-gpu-migration-rebalance`,
                `arn:aws:events:eu-west-1:${ACCOUNT}:rule/ec2-gpu-migration-state-change`,
              ],
            },
          },
        },
      ],
    });
    expect(JSON.stringify(queuePolicy(where, 'spot-events', ruleNames))).not.toContain('*');
  });

  it('keeps messages a day and moves one received too often to the dead-letter queue, kept 14 days', () => {
    const names = eventsNames(plan());
    const attrs = queueAttributes(where, names);
    expect(attrs[names.dlqName]).toEqual({ MessageRetentionPeriod: String(14 * 86_400) });
    expect(attrs[names.queueName].MessageRetentionPeriod).toBe(String(86_400));
    expect(JSON.parse(attrs[names.queueName].RedrivePolicy)).toEqual({
      deadLetterTargetArn: `arn:aws:sqs:eu-west-1:${ACCOUNT}:ec2-gpu-migration-spot-eu-west-1-dlq`,
      maxReceiveCount: MAX_RECEIVE_COUNT,
    });
    expect(JSON.parse(attrs[names.queueName].Policy)).toEqual(
      queuePolicy(where, names.queueName, names.ruleNames) as unknown,
    );
    expect([QUEUE_RETENTION_SECONDS, DLQ_RETENTION_SECONDS]).toEqual([86_400, 1_209_600]);
  });

  it('compares JSON by meaning: key order, list order, one-member lists, numbers as strings', () => {
    expect(sameJson({ a: [1, 2], b: { c: 'x' } }, { b: { c: ['x'] }, a: ['2', '1'] })).toBe(true);
    expect(sameJson({ a: ['x', 'y'] }, { a: ['x'] })).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// What setup and remove decide

function inPlace(names: EventsNames, changes: { pattern?: unknown; policy?: string; untagged?: string } = {}) {
  const queues: Record<string, ObservedQueue> = {};
  const attrs = queueAttributes(where, names);
  for (const name of [names.dlqName, names.queueName]) {
    const attributes = { ...attrs[name] };
    // As SQS may answer: the policy respelled, maxReceiveCount as a string.
    if (attributes.Policy) attributes.Policy = changes.policy ?? JSON.stringify(JSON.parse(attributes.Policy), null, 1);
    if (attributes.RedrivePolicy) {
      const r = JSON.parse(attributes.RedrivePolicy) as Record<string, unknown>;
      attributes.RedrivePolicy = JSON.stringify({ maxReceiveCount: String(r.maxReceiveCount), ...r });
    }
    queues[name] = {
      name,
      url: `https://sqs.eu-west-1.amazonaws.com/${ACCOUNT}/${name}`,
      tags: changes.untagged === name ? {} : { ...TAGS },
      attributes,
    };
  }
  const rules: Record<string, ObservedRule> = {};
  for (const spec of EVENT_RULES) {
    rules[spec.name] = {
      name: spec.name,
      arn: ruleArnOf(where, spec.name),
      tags: changes.untagged === spec.name ? {} : { ...TAGS },
      eventPattern: JSON.stringify(
        spec.kind === 'state-change' && changes.pattern ? changes.pattern : eventPattern(spec, ACCOUNT),
      ),
      state: 'ENABLED',
      description: ruleDescription(spec),
      targets: [{ Id: TARGET_ID, Arn: queueArnOf(where, names.queueName) }],
    };
  }
  return { where, queues, rules } satisfies Observed;
}

const fresh = (names: EventsNames): Observed => ({
  where,
  queues: { [names.dlqName]: undefined, [names.queueName]: undefined },
  rules: Object.fromEntries(names.ruleNames.map((n) => [n, undefined])),
});

const summary = (d: { items: { verb: string; subject: string; detail?: string }[] }) =>
  d.items.map((i) => `${i.verb} ${i.subject}`);

describe('setup decides', () => {
  const names = eventsNames(plan());

  it('on a fresh account: the dead-letter queue, the queue, then each rule and its target', () => {
    const d = planSetup(names, fresh(names));
    expect(d.refusals).toEqual([]);
    expect(summary(d)).toEqual([
      'create queue ec2-gpu-migration-spot-eu-west-1-dlq',
      'create queue ec2-gpu-migration-spot-eu-west-1',
      'create rule ec2-gpu-migration-interruption',
      `create target ${TARGET_ID} of rule ec2-gpu-migration-interruption`,
      'create rule ec2-gpu-migration-rebalance',
      `create target ${TARGET_ID} of rule ec2-gpu-migration-rebalance`,
      'create rule ec2-gpu-migration-state-change',
      `create target ${TARGET_ID} of rule ec2-gpu-migration-state-change`,
    ]);
    expect(d.items.every((i) => i.run)).toBe(true);
  });

  it('nothing when everything is there as it should be, however AWS spells it', () => {
    const d = planSetup(names, inPlace(names));
    expect(d.refusals).toEqual([]);
    expect(d.items.map((i) => i.verb)).toEqual(Array(8).fill('in place'));
  });

  it('to update a rule whose pattern differs, a queue whose policy differs, a disabled rule, a target elsewhere', () => {
    const seen = inPlace(names, {
      pattern: { source: ['aws.ec2'] },
      policy: '{"Version":"2012-10-17","Statement":[]}',
    });
    seen.rules['ec2-gpu-migration-rebalance']!.state = 'DISABLED';
    seen.rules['ec2-gpu-migration-interruption']!.targets = [{ Id: TARGET_ID, Arn: queueArnOf(where, 'other') }];
    const d = planSetup(names, seen);
    expect(d.items.filter((i) => i.verb === 'change').map((i) => `${i.subject}: ${i.detail}`)).toEqual([
      'queue ec2-gpu-migration-spot-eu-west-1: queue policy',
      `target ${TARGET_ID} of rule ec2-gpu-migration-interruption: to queue ec2-gpu-migration-spot-eu-west-1, no longer to ${queueArnOf(where, 'other')}: one queue per region gets the rules' events`,
      'rule ec2-gpu-migration-rebalance: state DISABLED → ENABLED',
      'rule ec2-gpu-migration-state-change: event pattern',
    ]);
  });

  it('to refuse a queue or rule of the same name it did not make, and a queue URL of another account', () => {
    expect(planSetup(names, inPlace(names, { untagged: names.queueName })).refusals).toEqual([
      expect.stringMatching(
        /^queue ec2-gpu-migration-spot-eu-west-1 exists without the tag ec2-gpu-migration:managed=events/,
      ),
    ]);
    expect(planSetup(names, inPlace(names, { untagged: 'ec2-gpu-migration-rebalance' })).refusals).toEqual([
      expect.stringMatching(/^rule ec2-gpu-migration-rebalance exists without the tag/),
    ]);
    const elsewhere = eventsNames(plan('https://sqs.eu-west-1.amazonaws.com/999999999999/spot-events'));
    expect(planSetup(elsewhere, fresh(elsewhere)).refusals).toEqual([
      expect.stringMatching(/names account 999999999999, but these credentials are of account 111122223333/),
    ]);
  });
});

describe('remove decides', () => {
  const names = eventsNames(plan());

  it('to delete targets before their rule, and the queue before its dead-letter queue', () => {
    const d = planRemove(names, inPlace(names));
    expect(d.refusals).toEqual([]);
    expect(summary(d)).toEqual([
      `delete target ${TARGET_ID} of rule ec2-gpu-migration-interruption`,
      'delete rule ec2-gpu-migration-interruption',
      `delete target ${TARGET_ID} of rule ec2-gpu-migration-rebalance`,
      'delete rule ec2-gpu-migration-rebalance',
      `delete target ${TARGET_ID} of rule ec2-gpu-migration-state-change`,
      'delete rule ec2-gpu-migration-state-change',
      'delete queue ec2-gpu-migration-spot-eu-west-1',
      'delete queue ec2-gpu-migration-spot-eu-west-1-dlq',
    ]);
  });

  it('nothing when nothing is there, and to refuse anything untagged', () => {
    expect(planRemove(names, fresh(names)).items.map((i) => i.verb)).toEqual(Array(5).fill('absent'));
    expect(planRemove(names, inPlace(names, { untagged: names.dlqName })).refusals).toEqual([
      expect.stringMatching(/^queue ec2-gpu-migration-spot-eu-west-1-dlq exists without the tag .*remove leaves it/),
    ]);
  });
});

describe('the command', () => {
  /** Clients that fail the test on any use: bad input must exit before AWS is asked. */
  const noAws = (): EventsClients => {
    throw new Error('no AWS call was expected');
  };

  async function run(args: string[]): Promise<{ code: number; err: string }> {
    let code: number = EXIT.ok;
    let err = '';
    const program = new Command('migration')
      .exitOverride()
      .configureOutput({ writeOut: () => undefined, writeErr: (s) => (err += s) });
    const ctx = {
      out: () => undefined,
      err: (s: string) => (err += s),
      isTTY: false,
      client: () => Promise.reject(new Error('no Temporal')),
    };
    registerEvents(program, ctx, (c) => (code = c), noAws);
    try {
      await program.parseAsync(args, { from: 'user' });
    } catch (e) {
      // As main() does.
      code = e instanceof CommanderError ? (e.exitCode === 0 ? EXIT.ok : EXIT.badInput) : handleError(e, ctx.err);
    }
    return { code, err };
  }

  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'events-setup-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The example plan in this region, with this queue URL. */
  async function planFile(interruptionQueueUrl: string | null, extra: Record<string, unknown> = {}): Promise<string> {
    const example = parse(await readFile(join(__dirname, '..', '..', 'examples', 'video-message-app.yaml'), 'utf8'));
    const file = join(dir, `plan-${Math.random().toString(16).slice(2)}.yaml`);
    await writeFile(
      file,
      stringify({ ...example, region: REGION, spot: { ...example.spot, interruptionQueueUrl }, ...extra }),
    );
    return file;
  }

  it('exits 2 on bad input before any AWS call', async () => {
    expect(await run(['events', 'setup', '--plan', '/nonexistent/plan.yaml'])).toMatchObject({ code: 2 });
    expect(await run(['events', 'setup', '--plan', await planFile(null, { region: 'mars-1' })])).toMatchObject({
      code: 2,
      err: expect.stringContaining('region'),
    });
    const fifo = await planFile(`https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/spot-events.fifo`);
    expect(await run(['events', 'setup', '--plan', fifo, '--dry-run'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('FIFO'),
    });
    expect(await run(['events', 'remove', '--plan', fifo])).toMatchObject({ code: 2 });
    expect(await run(['events', 'remove', '--plan', 'x.yaml', '--bogus'])).toMatchObject({
      code: 2,
      err: expect.stringContaining("unknown option '--bogus'"),
    });
    expect(await run(['events', 'setup'])).toMatchObject({ code: 2, err: expect.stringContaining('--plan') });
    expect(await run(['events', 'teardown', '--plan', 'x.yaml'])).toMatchObject({ code: 2 });
  });
});
