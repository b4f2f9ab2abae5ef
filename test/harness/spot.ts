/** Spot helpers for tests: the EventBridge → SQS queue, events in EventBridge's shape, guardians. */
import type { AwsProxy } from './aws-proxy';
import { randomBytes } from 'node:crypto';
import { CreateQueueCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { AwsClients } from '../../src/aws/clients';
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
