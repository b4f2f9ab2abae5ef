/** Spot helpers for tests: the EventBridge → SQS queue, events in EventBridge's shape, guardians. */
import type { AwsProxy } from './aws-proxy';
import { randomBytes } from 'node:crypto';
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { CreateQueueCommand, GetQueueUrlCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { AwsClients } from '../../src/aws/clients';
import { defaultQueueName, setupEvents } from '../../src/cli/commands/events';
import { routerWorkflowId } from '../../src/shared/constants';
import { guardianStatusQuery, routerStatusQuery, type GuardianStatus, type RouterStatus } from '../../src/shared/spot';
import { pollUntil } from './net';

export async function createQueue(clients: AwsClients, region: string): Promise<string> {
  const out = await clients
    .sqs(region)
    .send(new CreateQueueCommand({ QueueName: `spot-events-${randomBytes(4).toString('hex')}` }));
  if (!out.QueueUrl) throw new Error('CreateQueue returned no URL');
  return out.QueueUrl;
}

/**
 * The queue and rules `migration events setup` makes for a region (the default queue name), as
 * an operator would run it before a Spot plan; returns the queue's URL.
 */
export async function setUpEvents(clients: AwsClients, region: string): Promise<string> {
  const out: string[] = [];
  await setupEvents(
    clients,
    { name: 'events', region, spot: { interruptionQueueUrl: null } } as Parameters<typeof setupEvents>[1],
    {},
    (line) => out.push(line),
  );
  const got = await clients.sqs(region).send(new GetQueueUrlCommand({ QueueName: defaultQueueName(region) }));
  if (!got.QueueUrl) throw new Error(`events setup made no queue:\n${out.join('')}`);
  return got.QueueUrl;
}

/**
 * An EC2 event put on the account's default bus, as EC2 itself puts it (AWS refuses the `aws.`
 * source from PutEvents; moto takes it): the rules decide whether it reaches the queue.
 */
export async function putEc2Event(
  clients: AwsClients,
  region: string,
  kind: keyof typeof DETAIL_TYPES,
  instanceId: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const detail: Record<string, unknown> = { 'instance-id': instanceId, ...extra };
  if (kind === 'interruption') detail['instance-action'] = 'terminate';
  const put = await clients.eventBridge(region).send(
    new PutEventsCommand({
      Entries: [{ Source: 'aws.ec2', DetailType: DETAIL_TYPES[kind], Detail: JSON.stringify(detail) }],
    }),
  );
  if (put.FailedEntryCount) throw new Error(`PutEvents refused the event: ${JSON.stringify(put.Entries)}`);
}

const DETAIL_TYPES = {
  interruption: 'EC2 Spot Instance Interruption Warning',
  rebalance: 'EC2 Instance Rebalance Recommendation',
  'state-change': 'EC2 Instance State-change Notification',
} as const;

/** An event as the EventBridge rule puts it on the queue. */
export function spotEvent(
  kind: keyof typeof DETAIL_TYPES,
  instanceId: string,
  region: string,
  extra: Record<string, unknown> = {},
): string {
  const detail: Record<string, unknown> = { 'instance-id': instanceId, ...extra };
  if (kind === 'interruption') detail['instance-action'] = 'terminate';
  return JSON.stringify({
    version: '0',
    id: randomBytes(16).toString('hex'),
    'detail-type': DETAIL_TYPES[kind],
    source: 'aws.ec2',
    account: '123456789012',
    time: new Date().toISOString(),
    region,
    resources: [`arn:aws:ec2:${region}:123456789012:instance/${instanceId}`],
    detail,
  });
}

export async function putMessage(clients: AwsClients, region: string, queueUrl: string, body: string): Promise<void> {
  await clients.sqs(region).send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
}

export async function waitForGuardian(
  handle: WorkflowHandle,
  what: string,
  ok: (s: GuardianStatus) => boolean,
  timeoutMs = 60_000,
): Promise<GuardianStatus> {
  return pollUntil(
    `${handle.workflowId}: ${what}`,
    async () => {
      const s = await handle.query(guardianStatusQuery);
      return ok(s) ? s : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

export async function routerStatus(client: Client, region: string): Promise<RouterStatus> {
  return client.workflow.getHandle(routerWorkflowId(region)).query(routerStatusQuery);
}

/** Ends guardians and the region's router, so they do not outlive the test that made them. */
export async function endSpotWorkflows(client: Client, region: string, guardianIds: string[]): Promise<void> {
  for (const id of [...guardianIds, routerWorkflowId(region)]) {
    try {
      await client.workflow.getHandle(id).terminate('test finished');
    } catch {
      // not running
    }
  }
}

/** Counts the router's scans (DescribeInstances listing every guarded instance) through the proxy. */
export function countScans(proxy: AwsProxy): { readonly count: number } {
  const counter = { count: 0 };
  proxy.onAfter('DescribeInstances', (e) => {
    if (Object.entries(e.request.params).some(([k, v]) => /^Filter\.\d+\.Name$/.test(k) && v === 'tag-key'))
      counter.count++;
  });
  return counter;
}
