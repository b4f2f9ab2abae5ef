/**
 * `migration events setup|remove --plan FILE [--dry-run]`: the AWS side of Spot notices, once per
 * region and account. EventBridge rules on the default bus match EC2's interruption warnings,
 * rebalance recommendations and state changes towards stopped, and send them to an SQS queue
 * (with a dead-letter queue) that the region's router reads (`spot.interruptionQueueUrl`).
 *
 * It works in three steps: look at what is there (reads only), decide what to do (pure:
 * `planSetup`, `planRemove`), then do it. Everything it makes carries the tag
 * `ec2-gpu-migration:managed=events`; it changes or deletes nothing without that tag. Talks to AWS
 * directly (the SDK's default chain), like `cleanup`.
 */
import {
  DeleteRuleCommand,
  DescribeEventBusCommand,
  DescribeRuleCommand,
  ListTagsForResourceCommand,
  ListTargetsByRuleCommand,
  PutRuleCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
  type EventBridgeClient,
  type Target,
} from '@aws-sdk/client-eventbridge';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueueTagsCommand,
  SetQueueAttributesCommand,
  type QueueAttributeName,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Command } from 'commander';
import { createAwsClients, type AwsClients } from '../../aws/clients';
import { loadPlanFile } from '../../plan/load';
import type { Plan } from '../../plan/schema';
import { DEAD_STATES, INSTANCE_STATES } from '../../shared/instance-states';
import type { CliContext } from '../context';
import { EXIT, RefusedError, UsageError } from '../errors';

// ---------------------------------------------------------------------------------------------
// What is made, and how it is named

/** The tag on every queue and rule `events setup` makes; `remove` and updates touch only these. */
export const MANAGED_TAG_KEY = 'ec2-gpu-migration:managed';
export const MANAGED_TAG_VALUE = 'events';
/** The id of the queue among each rule's targets. */
export const TARGET_ID = 'ec2-gpu-migration-queue';
/** A message received this often without being deleted moves to the dead-letter queue. */
export const MAX_RECEIVE_COUNT = 5;
/** A notice older than a day is of no use to anyone. */
export const QUEUE_RETENTION_SECONDS = 86_400;
/** Dead letters are kept for SQS's longest retention, 14 days, to be looked at. */
export const DLQ_RETENTION_SECONDS = 1_209_600;
/** SQS queue names: 1 to 80 letters, digits, hyphens and underscores. */
const QUEUE_NAME = /^[A-Za-z0-9_-]{1,80}$/;
const DLQ_SUFFIX = '-dlq';

export interface EventRuleSpec {
  kind: 'interruption' | 'rebalance' | 'state-change';
  /** The rule's name: the same in every region. */
  name: string;
  detailType: string;
  /** A `detail` filter, if the rule has one. */
  detail?: Record<string, string[]>;
}

/** State changes only towards stopped: every other state change of every instance would only cost the router a lookup. */
export const STOPPING_STATES: readonly string[] = INSTANCE_STATES.filter((s) => DEAD_STATES.includes(s));

/** The three rules, one per kind of notice the router acts on (parseSpotEvent). */
export const EVENT_RULES: readonly EventRuleSpec[] = [
  {
    kind: 'interruption',
    name: 'ec2-gpu-migration-interruption',
    detailType: 'EC2 Spot Instance Interruption Warning',
  },
  {
    kind: 'rebalance',
    name: 'ec2-gpu-migration-rebalance',
    detailType: 'EC2 Instance Rebalance Recommendation',
  },
  {
    kind: 'state-change',
    name: 'ec2-gpu-migration-state-change',
    detailType: 'EC2 Instance State-change Notification',
    detail: { state: [...STOPPING_STATES] },
  },
];

/** The names `setup` uses for a plan: they depend only on its region and `spot.interruptionQueueUrl`. */
export interface EventsNames {
  region: string;
  queueName: string;
  dlqName: string;
  ruleNames: string[];
  /** The account the plan's queue URL names, when it names one. */
  urlAccount?: string;
}

/** The default queue of a region, for plans that name none. */
export const defaultQueueName = (region: string): string => `ec2-gpu-migration-spot-${region}`;

/** The names for a plan; bad names are bad input (exit 2), found before any AWS call. */
export function eventsNames(plan: Pick<Plan, 'region' | 'spot'>): EventsNames {
  const url = plan.spot.interruptionQueueUrl;
  let queueName = defaultQueueName(plan.region);
  let urlAccount: string | undefined;
  if (url) {
    const path = new URL(url).pathname.split('/').filter(Boolean);
    queueName = decodeURIComponent(path[path.length - 1] ?? '');
    if (path.length >= 2 && /^\d{12}$/.test(path[path.length - 2])) urlAccount = path[path.length - 2];
    if (queueName.endsWith('.fifo'))
      throw new UsageError(
        `spot.interruptionQueueUrl names a FIFO queue (${queueName}); the Spot events need a standard queue (EventBridge would need a message group per target)`,
      );
    if (!QUEUE_NAME.test(queueName))
      throw new UsageError(
        `spot.interruptionQueueUrl: its last part '${queueName}' is not an SQS queue name (1 to 80 letters, digits, - and _)`,
      );
  }
  const dlqName = `${queueName}${DLQ_SUFFIX}`;
  if (dlqName.length > 80)
    throw new UsageError(
      `spot.interruptionQueueUrl: the queue name '${queueName}' is too long for its dead-letter queue '${dlqName}' (at most 76 characters)`,
    );
  return {
    region: plan.region,
    queueName,
    dlqName,
    ruleNames: EVENT_RULES.map((r) => r.name),
    ...(urlAccount ? { urlAccount } : {}),
  };
}

/** The partition, region and account resources are made in. */
export interface Where {
  partition: string;
  region: string;
  account: string;
}

export const queueArnOf = (w: Where, name: string): string => `arn:${w.partition}:sqs:${w.region}:${w.account}:${name}`;
export const ruleArnOf = (w: Where, name: string): string =>
  `arn:${w.partition}:events:${w.region}:${w.account}:rule/${name}`;
/** The URL SQS gives a queue (what GetQueueUrl answers on AWS). */
export const queueUrlOf = (w: Where, name: string): string =>
  `https://sqs.${w.region}.amazonaws.com${w.partition === 'aws-cn' ? '.cn' : ''}/${w.account}/${name}`;

/** Where the default event bus is: arn:<partition>:events:<region>:<account>:event-bus/default. */
export function whereOfBus(arn: string): Where | undefined {
  const m = /^arn:([^:]+):events:([^:]+):(\d{12}):event-bus\//.exec(arn);
  return m ? { partition: m[1], region: m[2], account: m[3] } : undefined;
}

/** A rule's event pattern: EC2's events of this account only. */
export function eventPattern(rule: EventRuleSpec, account: string): Record<string, unknown> {
  return {
    source: ['aws.ec2'],
    'detail-type': [rule.detailType],
    account: [account],
    ...(rule.detail ? { detail: rule.detail } : {}),
  };
}

export const ruleDescription = (rule: EventRuleSpec): string =>
  `ec2-gpu-migration: ${rule.detailType} events of this account, to the Spot event queue`;

export interface QueuePolicy {
  Version: '2012-10-17';
  Id: string;
  Statement: {
    Sid: string;
    Effect: 'Allow';
    Principal: { Service: string };
    Action: string;
    Resource: string;
    Condition: { ArnEquals: { 'aws:SourceArn': string[] } };
  }[];
}

/** The queue's policy: EventBridge may send to it, for exactly these rules. */
export function queuePolicy(w: Where, queueName: string, ruleNames: readonly string[]): QueuePolicy {
  const arn = queueArnOf(w, queueName);
  return {
    Version: '2012-10-17',
    Id: `${arn}/ec2-gpu-migration-events`,
    Statement: [
      {
        Sid: 'EventBridgeSpotEvents',
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: arn,
        Condition: { ArnEquals: { 'aws:SourceArn': ruleNames.map((n) => ruleArnOf(w, n)) } },
      },
    ],
  };
}

export function redrivePolicy(w: Where, dlqName: string): { deadLetterTargetArn: string; maxReceiveCount: number } {
  return { deadLetterTargetArn: queueArnOf(w, dlqName), maxReceiveCount: MAX_RECEIVE_COUNT };
}

/** The attributes each queue must have (the ones `setup` sets; others are left as they are). */
export function queueAttributes(w: Where, names: EventsNames): Record<string, Record<string, string>> {
  return {
    [names.dlqName]: { MessageRetentionPeriod: String(DLQ_RETENTION_SECONDS) },
    [names.queueName]: {
      MessageRetentionPeriod: String(QUEUE_RETENTION_SECONDS),
      RedrivePolicy: JSON.stringify(redrivePolicy(w, names.dlqName)),
      Policy: JSON.stringify(queuePolicy(w, names.queueName, names.ruleNames)),
    },
  };
}

/**
 * JSON compared by meaning, not spelling: key order, the order of list members, and a one-member
 * list against its member (IAM and EventBridge treat them alike) do not count; nor does a number
 * written as a string (SQS answers maxReceiveCount either way).
 */
export function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) {
    const items = v.map(canonical).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
    return items.length === 1 ? items[0] : items;
  }
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  if (typeof v === 'number') return String(v);
  return v;
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined || text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Whether an attribute's value is what setup wants; policies by meaning (SQS may add an Id or respell them). */
function sameAttribute(name: string, want: string, have: string | undefined): boolean {
  if (name === 'Policy') {
    const a = parseJson(want) as Partial<QueuePolicy> | undefined;
    const b = parseJson(have) as Partial<QueuePolicy> | undefined;
    return typeof b === 'object' && sameJson({ V: a?.Version, S: a?.Statement }, { V: b?.Version, S: b?.Statement });
  }
  if (name === 'RedrivePolicy') return sameJson(parseJson(want), parseJson(have));
  return want === have;
}

// ---------------------------------------------------------------------------------------------
// What is there

export interface ObservedQueue {
  name: string;
  url: string;
  tags: Record<string, string>;
  attributes: Record<string, string>;
}

export interface ObservedRule {
  name: string;
  arn: string;
  tags: Record<string, string>;
  eventPattern?: string;
  state?: string;
  description?: string;
  targets: Target[];
}

export interface Observed {
  where: Where;
  /** By name; undefined: there is none. */
  queues: Record<string, ObservedQueue | undefined>;
  rules: Record<string, ObservedRule | undefined>;
}

/** The clients `events` uses. */
export type EventsClients = Pick<AwsClients, 'sqs' | 'eventBridge'>;

/** An AWS call that failed: which call, on what, and AWS's code. */
export class AwsCallError extends Error {
  constructor(
    readonly action: string,
    readonly resource: string,
    readonly code: string,
    detail: string,
  ) {
    super(`${action} on ${resource} failed: ${code}: ${detail}${hintFor(code)}`);
    this.name = 'AwsCallError';
  }
}

function hintFor(code: string): string {
  if (/AccessDenied|UnauthorizedOperation|AuthorizationError/i.test(code))
    return '\n`migration iam-policy --setup --plan FILE` prints a policy that allows every call of `events setup` and `events remove`.';
  if (/QueueDeletedRecently/.test(code))
    return '\nSQS lets a queue name be used again only 60 seconds after the queue was deleted: run setup again in a minute.';
  return '';
}

function codeOf(err: unknown): string {
  const e = err as { name?: string; Code?: string; code?: string };
  return e.Code ?? (e.name && e.name !== 'Error' ? e.name : undefined) ?? e.code ?? 'Error';
}

/** Runs one AWS call; a failure names the call, the resource and AWS's code (credential problems pass as they are). */
async function call<T>(action: string, resource: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof Error && /credential/i.test(err.name)) throw err;
    throw new AwsCallError(action, resource, codeOf(err), err instanceof Error ? err.message : String(err));
  }
}

const QUEUE_MISSING = new Set(['QueueDoesNotExist', 'AWS.SimpleQueueService.NonExistentQueue']);

async function observeQueue(sqs: SQSClient, name: string): Promise<ObservedQueue | undefined> {
  let url: string | undefined;
  try {
    url = (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
  } catch (err) {
    if (QUEUE_MISSING.has(codeOf(err))) return undefined;
    return call('sqs:GetQueueUrl', `queue ${name}`, () => Promise.reject(err));
  }
  if (!url) return undefined;
  const found = url;
  const tags =
    (await call('sqs:ListQueueTags', `queue ${name}`, () => sqs.send(new ListQueueTagsCommand({ QueueUrl: found }))))
      .Tags ?? {};
  const attributes =
    (
      await call('sqs:GetQueueAttributes', `queue ${name}`, () =>
        sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: found,
            AttributeNames: ['MessageRetentionPeriod', 'RedrivePolicy', 'Policy'] satisfies QueueAttributeName[],
          }),
        ),
      )
    ).Attributes ?? {};
  return { name, url: found, tags, attributes };
}

async function observeRule(events: EventBridgeClient, name: string): Promise<ObservedRule | undefined> {
  let described;
  try {
    described = await events.send(new DescribeRuleCommand({ Name: name }));
  } catch (err) {
    if (codeOf(err) === 'ResourceNotFoundException') return undefined;
    return call('events:DescribeRule', `rule ${name}`, () => Promise.reject(err));
  }
  const arn = described.Arn ?? '';
  const tags = Object.fromEntries(
    (
      (
        await call('events:ListTagsForResource', `rule ${name}`, () =>
          events.send(new ListTagsForResourceCommand({ ResourceARN: arn })),
        )
      ).Tags ?? []
    ).map((t) => [t.Key ?? '', t.Value ?? '']),
  );
  const targets: Target[] = [];
  let next: string | undefined;
  do {
    const page = await call('events:ListTargetsByRule', `rule ${name}`, () =>
      events.send(new ListTargetsByRuleCommand({ Rule: name, ...(next ? { NextToken: next } : {}) })),
    );
    targets.push(...(page.Targets ?? []));
    next = page.NextToken;
  } while (next);
  return {
    name,
    arn,
    tags,
    ...(described.EventPattern !== undefined ? { eventPattern: described.EventPattern } : {}),
    ...(described.State !== undefined ? { state: described.State } : {}),
    ...(described.Description !== undefined ? { description: described.Description } : {}),
    targets,
  };
}

/** Reads what is there: the account (from the default event bus), both queues and the three rules. */
export async function observe(clients: EventsClients, names: EventsNames): Promise<Observed> {
  const sqs = clients.sqs(names.region);
  const events = clients.eventBridge(names.region);
  const bus = await call('events:DescribeEventBus', `event bus default in ${names.region}`, () =>
    events.send(new DescribeEventBusCommand({ Name: 'default' })),
  );
  const where = whereOfBus(bus.Arn ?? '');
  if (!where)
    throw new AwsCallError(
      'events:DescribeEventBus',
      `event bus default in ${names.region}`,
      'UnexpectedAnswer',
      `no account in its ARN '${bus.Arn ?? ''}'`,
    );
  const queues: Observed['queues'] = {};
  for (const name of [names.dlqName, names.queueName]) queues[name] = await observeQueue(sqs, name);
  const rules: Observed['rules'] = {};
  for (const name of names.ruleNames) rules[name] = await observeRule(events, name);
  return { where, queues, rules };
}

// ---------------------------------------------------------------------------------------------
// What to do

export type Verb = 'create' | 'change' | 'delete' | 'in place' | 'absent';

/** One line of the report; `run` does it (none for what stays as it is). */
export interface Item {
  verb: Verb;
  subject: string;
  detail?: string;
  run?: (clients: EventsClients, done: Outcome) => Promise<void>;
}

/** What the run found out while acting: the URL SQS gave the queue it made. */
export interface Outcome {
  queueUrl?: string;
}

export interface Decision {
  where: Where;
  items: Item[];
  /** Why nothing may be done; nothing is done when there is one. */
  refusals: string[];
}

const days = (seconds: number): string => `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}`;
const isManaged = (tags: Record<string, string>): boolean => tags[MANAGED_TAG_KEY] === MANAGED_TAG_VALUE;
const TAG_TEXT = `${MANAGED_TAG_KEY}=${MANAGED_TAG_VALUE}`;

function refuseForeignQueue(q: ObservedQueue, what: 'change' | 'delete'): string {
  return what === 'change'
    ? `queue ${q.name} exists without the tag ${TAG_TEXT}, so it was not made by \`migration events setup\` and setup leaves its attributes and policy alone. To let setup manage it, tag it (aws sqs tag-queue --queue-url ${q.url} --tags ${TAG_TEXT}); or name another queue in spot.interruptionQueueUrl.`
    : `queue ${q.name} exists without the tag ${TAG_TEXT}: it was not made by \`migration events setup\`, so remove leaves it (and everything else) alone. Delete it yourself if it is no longer used.`;
}

function refuseForeignRule(r: ObservedRule, what: 'change' | 'delete'): string {
  return what === 'change'
    ? `rule ${r.name} exists without the tag ${TAG_TEXT}, so it was not made by \`migration events setup\` and setup leaves it alone. To let setup manage it, tag it (aws events tag-resource --resource-arn ${r.arn} --tags Key=${MANAGED_TAG_KEY},Value=${MANAGED_TAG_VALUE}); or delete it.`
    : `rule ${r.name} exists without the tag ${TAG_TEXT}: it was not made by \`migration events setup\`, so remove leaves it (and everything else) alone.`;
}

const attributeLabel: Record<string, string> = {
  MessageRetentionPeriod: 'retention',
  RedrivePolicy: 'redrive policy',
  Policy: 'queue policy',
};

/** What `setup` does, given what is there. Pure. */
export function planSetup(names: EventsNames, seen: Observed): Decision {
  const w = seen.where;
  const refusals: string[] = [];
  const items: Item[] = [];
  if (names.urlAccount && names.urlAccount !== w.account)
    refusals.push(
      `spot.interruptionQueueUrl names account ${names.urlAccount}, but these credentials are of account ${w.account}: the queue and rules would be made in ${w.account}.`,
    );
  const wanted = queueAttributes(w, names);
  const queueArn = queueArnOf(w, names.queueName);
  const tags = { [MANAGED_TAG_KEY]: MANAGED_TAG_VALUE };
  const describeQueue = (name: string) =>
    name === names.dlqName
      ? `dead letters, kept ${days(DLQ_RETENTION_SECONDS)}`
      : `messages kept ${days(QUEUE_RETENTION_SECONDS)}, moved to ${names.dlqName} after ${MAX_RECEIVE_COUNT} receives; EventBridge may send to it for the ${names.ruleNames.length} rules`;

  for (const name of [names.dlqName, names.queueName]) {
    const q = seen.queues[name];
    const attributes = wanted[name];
    if (!q) {
      items.push({
        verb: 'create',
        subject: `queue ${name}`,
        detail: describeQueue(name),
        run: async (clients, done) => {
          const created = await call('sqs:CreateQueue', `queue ${name}`, () =>
            clients.sqs(names.region).send(new CreateQueueCommand({ QueueName: name, Attributes: attributes, tags })),
          );
          if (name === names.queueName) done.queueUrl = created.QueueUrl;
        },
      });
      continue;
    }
    if (!isManaged(q.tags)) {
      refusals.push(refuseForeignQueue(q, 'change'));
      continue;
    }
    const differing = Object.entries(attributes).filter(([k, v]) => !sameAttribute(k, v, q.attributes[k]));
    if (differing.length === 0) {
      items.push({ verb: 'in place', subject: `queue ${name}` });
      continue;
    }
    items.push({
      verb: 'change',
      subject: `queue ${name}`,
      detail: differing.map(([k]) => attributeLabel[k] ?? k).join(', '),
      run: async (clients) => {
        await call('sqs:SetQueueAttributes', `queue ${name}`, () =>
          clients
            .sqs(names.region)
            .send(new SetQueueAttributesCommand({ QueueUrl: q.url, Attributes: Object.fromEntries(differing) })),
        );
      },
    });
  }

  for (const spec of EVENT_RULES.filter((r) => names.ruleNames.includes(r.name))) {
    const r = seen.rules[spec.name];
    const pattern = eventPattern(spec, w.account);
    const description = ruleDescription(spec);
    const putRule = (withTags: boolean) => async (clients: EventsClients) => {
      await call('events:PutRule', `rule ${spec.name}`, () =>
        clients.eventBridge(names.region).send(
          new PutRuleCommand({
            Name: spec.name,
            EventPattern: JSON.stringify(pattern),
            State: 'ENABLED',
            Description: description,
            // Tags count only when the rule is made (PutRule ignores them on an update).
            ...(withTags ? { Tags: [{ Key: MANAGED_TAG_KEY, Value: MANAGED_TAG_VALUE }] } : {}),
          }),
        ),
      );
    };
    if (r && !isManaged(r.tags)) {
      refusals.push(refuseForeignRule(r, 'change'));
      continue;
    }
    if (!r) {
      items.push({ verb: 'create', subject: `rule ${spec.name}`, detail: spec.detailType, run: putRule(true) });
    } else {
      const differs: string[] = [];
      if (!sameJson(parseJson(r.eventPattern), pattern)) differs.push('event pattern');
      if (r.state !== 'ENABLED') differs.push(`state ${r.state ?? 'unknown'} → ENABLED`);
      if (r.description !== description) differs.push('description');
      items.push(
        differs.length === 0
          ? { verb: 'in place', subject: `rule ${spec.name}` }
          : { verb: 'change', subject: `rule ${spec.name}`, detail: differs.join(', '), run: putRule(false) },
      );
    }
    // The queue as target, delivering the event as it is (no input transformation), and without
    // a role: EventBridge sends to SQS under the queue policy (a role can make delivery fail).
    const target = r?.targets.find((t) => t.Id === TARGET_ID);
    const targetOk =
      target &&
      target.Arn === queueArn &&
      !target.Input &&
      !target.InputPath &&
      !target.InputTransformer &&
      !target.RoleArn;
    const subject = `target ${TARGET_ID} of rule ${spec.name}`;
    if (targetOk) {
      items.push({ verb: 'in place', subject });
      continue;
    }
    items.push({
      verb: target ? 'change' : 'create',
      subject,
      detail: !target
        ? `to queue ${names.queueName}`
        : target.Arn === queueArn
          ? `the event as it is, to queue ${names.queueName}`
          : `to queue ${names.queueName}, no longer to ${target.Arn ?? 'another target'}: one queue per region gets the rules' events`,
      run: async (clients) => {
        const res = await call('events:PutTargets', `rule ${spec.name}`, () =>
          clients
            .eventBridge(names.region)
            .send(new PutTargetsCommand({ Rule: spec.name, Targets: [{ Id: TARGET_ID, Arn: queueArn }] })),
        );
        const failed = res.FailedEntries?.[0];
        if ((res.FailedEntryCount ?? 0) > 0)
          throw new AwsCallError(
            'events:PutTargets',
            `rule ${spec.name}`,
            failed?.ErrorCode ?? 'FailedEntry',
            failed?.ErrorMessage ?? 'the target was not added',
          );
      },
    });
  }
  return { where: w, items, refusals };
}

/** What `remove` does, given what is there: targets, rules, then the queue and its dead-letter queue. Pure. */
export function planRemove(names: EventsNames, seen: Observed): Decision {
  const refusals: string[] = [];
  const items: Item[] = [];
  for (const name of names.ruleNames) {
    const r = seen.rules[name];
    if (!r) {
      items.push({ verb: 'absent', subject: `rule ${name}` });
      continue;
    }
    if (!isManaged(r.tags)) {
      refusals.push(refuseForeignRule(r, 'delete'));
      continue;
    }
    const ids = r.targets.map((t) => t.Id ?? '').filter(Boolean);
    if (ids.length > 0)
      items.push({
        verb: 'delete',
        subject: `${ids.length === 1 ? 'target' : 'targets'} ${ids.join(', ')} of rule ${name}`,
        run: async (clients) => {
          const res = await call('events:RemoveTargets', `rule ${name}`, () =>
            clients.eventBridge(names.region).send(new RemoveTargetsCommand({ Rule: name, Ids: ids })),
          );
          const failed = res.FailedEntries?.[0];
          if ((res.FailedEntryCount ?? 0) > 0)
            throw new AwsCallError(
              'events:RemoveTargets',
              `rule ${name}`,
              failed?.ErrorCode ?? 'FailedEntry',
              failed?.ErrorMessage ?? `target ${failed?.TargetId ?? ''} was not removed`,
            );
        },
      });
    items.push({
      verb: 'delete',
      subject: `rule ${name}`,
      run: async (clients) => {
        await call('events:DeleteRule', `rule ${name}`, () =>
          clients.eventBridge(names.region).send(new DeleteRuleCommand({ Name: name })),
        );
      },
    });
  }
  // The queue before its dead-letter queue, which it names.
  for (const name of [names.queueName, names.dlqName]) {
    const q = seen.queues[name];
    if (!q) {
      items.push({ verb: 'absent', subject: `queue ${name}` });
      continue;
    }
    if (!isManaged(q.tags)) {
      refusals.push(refuseForeignQueue(q, 'delete'));
      continue;
    }
    items.push({
      verb: 'delete',
      subject: `queue ${name}`,
      detail: name === names.queueName ? 'with its policy and any messages in it' : 'with any dead letters in it',
      run: async (clients) => {
        await call('sqs:DeleteQueue', `queue ${name}`, () =>
          clients.sqs(names.region).send(new DeleteQueueCommand({ QueueUrl: q.url })),
        );
      },
    });
  }
  return { where: seen.where, items, refusals };
}

// ---------------------------------------------------------------------------------------------
// The command

const DONE: Record<Verb, string> = {
  create: 'created',
  change: 'changed',
  delete: 'deleted',
  'in place': 'in place',
  absent: 'absent',
};
const WOULD: Record<Verb, string> = {
  create: 'would create',
  change: 'would change',
  delete: 'would delete',
  'in place': 'in place',
  absent: 'absent',
};

const line = (label: string, item: Item) =>
  `  ${label.padEnd(13)}${item.subject}${item.detail ? ` (${item.detail})` : ''}\n`;

/** Does (or, dry, only prints) what was decided; a line per item, printed once it is done. */
async function carryOut(
  decision: Decision,
  clients: EventsClients,
  dryRun: boolean,
  out: (s: string) => void,
): Promise<Outcome> {
  const refusals = decision.refusals;
  if (refusals.length === 1) throw new RefusedError(refusals[0]);
  if (refusals.length > 1) throw new RefusedError(`${refusals.length} reasons:\n  - ${refusals.join('\n  - ')}`);
  const done: Outcome = {};
  for (const item of decision.items) {
    if (!dryRun && item.run) await item.run(clients, done);
    out(line((dryRun ? WOULD : DONE)[item.verb], item));
  }
  return done;
}

/** Looks at what is there, decides with `decide`, says where, then carries it out (dry: only says). */
async function lookDecideDo(
  clients: EventsClients,
  plan: Pick<Plan, 'name' | 'region' | 'spot'>,
  opts: { dryRun?: boolean },
  out: (s: string) => void,
  decide: (names: EventsNames, seen: Observed) => Decision,
) {
  const names = eventsNames(plan);
  const seen = await observe(clients, names);
  const decision = decide(names, seen);
  const w = decision.where;
  out(`Spot events in ${w.region}, account ${w.account}, for plan ${plan.name}${opts.dryRun ? ' (dry run)' : ''}:\n`);
  const outcome = await carryOut(decision, clients, opts.dryRun ?? false, out);
  return { names, seen, decision, outcome };
}

/**
 * `events setup`: looks, decides, then makes or changes what is missing or different (dry: only
 * says so). Bad names are refused before any AWS call; a refusal changes nothing.
 */
export async function setupEvents(
  clients: EventsClients,
  plan: Pick<Plan, 'name' | 'region' | 'spot'>,
  opts: { dryRun?: boolean },
  out: (s: string) => void,
): Promise<void> {
  const { names, seen, decision, outcome } = await lookDecideDo(clients, plan, opts, out, planSetup);
  const w = decision.where;
  const changes = decision.items.filter((i) => i.verb !== 'in place').length;
  if (changes === 0) out('nothing to change: the queues, rules and targets are all in place\n');
  else if (opts.dryRun) out(`dry run: nothing was changed (${changes} to do)\n`);
  const url = outcome.queueUrl ?? seen.queues[names.queueName]?.url ?? queueUrlOf(w, names.queueName);
  out(
    plan.spot.interruptionQueueUrl
      ? "the plan's spot.interruptionQueueUrl names this queue:\n"
      : "put the queue into the plan, so the region's router reads it:\n",
  );
  out(`  interruptionQueueUrl: ${url}\n`);
}

/** `events remove`: deletes what setup made (only what carries its tag; dry: only says so). */
export async function removeEvents(
  clients: EventsClients,
  plan: Pick<Plan, 'name' | 'region' | 'spot'>,
  opts: { dryRun?: boolean },
  out: (s: string) => void,
): Promise<void> {
  const { decision } = await lookDecideDo(clients, plan, opts, out, planRemove);
  const deletions = decision.items.filter((i) => i.verb === 'delete').length;
  if (deletions === 0) out('nothing to remove: none of the queues and rules is there\n');
  else if (opts.dryRun) out(`dry run: nothing was changed (${deletions} to delete)\n`);
  else
    out(
      "the region's router gets no more notices from EventBridge; plans whose spot.interruptionQueueUrl names the deleted queue fail preflight until it is set to null or set up again\n",
    );
}

export function registerEvents(
  program: Command,
  ctx: CliContext,
  done: (code: number) => void,
  aws: () => EventsClients = () => createAwsClients(),
): void {
  const events = program
    .command('events')
    .description(
      "the AWS side of Spot notices, once per region: EventBridge rules and the SQS queue the region's router reads (spot.interruptionQueueUrl)",
    );
  events
    .command('setup')
    .description(
      'make (or bring up to date) the queue, its dead-letter queue and policy, and the three EventBridge rules of the plan region; print the queue URL',
    )
    .requiredOption('--plan <file>', 'the plan, YAML or JSON: its region and spot.interruptionQueueUrl')
    .option('--dry-run', 'print what would be made or changed, and change nothing')
    .action(async (opts: { plan: string; dryRun?: boolean }) => {
      const plan = await loadPlanFile(opts.plan);
      eventsNames(plan); // bad names are bad input: exit 2 before the clients are even made
      await setupEvents(aws(), plan, opts, ctx.out);
      done(EXIT.ok);
    });
  events
    .command('remove')
    .description(
      'delete what `events setup` made for the plan region (targets, rules, queue, dead-letter queue); only what carries its tag',
    )
    .requiredOption('--plan <file>', 'the plan, YAML or JSON: its region and spot.interruptionQueueUrl')
    .option('--dry-run', 'print what would be deleted, and change nothing')
    .action(async (opts: { plan: string; dryRun?: boolean }) => {
      const plan = await loadPlanFile(opts.plan);
      eventsNames(plan); // bad names are bad input: exit 2 before the clients are even made
      await removeEvents(aws(), plan, opts, ctx.out);
      done(EXIT.ok);
    });
}
