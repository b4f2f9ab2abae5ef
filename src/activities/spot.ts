import { CreateTagsCommand, type EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import { TAG_GUARDED } from '../shared/constants';
import { INSTANCE_ID, type GuardedInstance, type ParsedEvent, type QueueMessage } from '../shared/spot';
import { describeInstances } from '../aws/ec2';
import { withHeartbeat } from './util';
import { isDead } from '../shared/instance-states';

/**
 * Reads one EventBridge event (as the rule delivers it to SQS) about an EC2 instance:
 * Spot interruption warnings, rebalance recommendations, and state changes towards stopped.
 * Anything else is `ok: false` with the reason; the router logs and deletes those.
 */
export function parseSpotEvent(body: string): ParsedEvent {
  let event: unknown;
  try {
    event = JSON.parse(body);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (!event || typeof event !== 'object') return { ok: false, reason: 'not an EventBridge event object' };
  // Through an SNS topic (EventBridge → SNS → SQS) the event is the envelope's Message.
  const envelope = event as { Type?: unknown; Message?: unknown };
  if (envelope.Type === 'Notification' && typeof envelope.Message === 'string') {
    try {
      event = JSON.parse(envelope.Message);
    } catch {
      return { ok: false, reason: 'an SNS notification whose Message is not JSON' };
    }
    if (!event || typeof event !== 'object')
      return { ok: false, reason: 'an SNS notification whose Message is not an EventBridge event object' };
  }
  const e = event as { 'detail-type'?: unknown; source?: unknown; detail?: Record<string, unknown>; time?: unknown };
  const detailType = typeof e['detail-type'] === 'string' ? e['detail-type'] : undefined;
  const instanceId = typeof e.detail?.['instance-id'] === 'string' ? (e.detail['instance-id'] as string) : undefined;
  if (!detailType) return { ok: false, reason: 'no detail-type' };
  if (!instanceId || !INSTANCE_ID.test(instanceId))
    return { ok: false, reason: `${detailType}: no valid detail.instance-id` };
  const time = typeof e.time === 'string' ? e.time : undefined;
  switch (detailType) {
    case 'EC2 Spot Instance Interruption Warning':
      return { ok: true, instanceId, kind: 'interruption', detailType, time };
    case 'EC2 Instance Rebalance Recommendation':
      return { ok: true, instanceId, kind: 'rebalance', detailType, time };
    case 'EC2 Instance State-change Notification': {
      const state = e.detail?.state;
      if (typeof state === 'string' && isDead(state))
        return { ok: true, instanceId, kind: 'stopped', detailType, time };
      return { ok: false, reason: `state change to ${String(state)} needs no action` };
    }
    default:
      return { ok: false, reason: `unhandled detail-type ${detailType}` };
  }
}

/**
 * Up to `max` messages (default 100) of the queue, parsed; they stay invisible for 120 s, until
 * deleted. With `waitSeconds` (SQS long polling, at most 20) the first read waits until a message
 * arrives or the time is up; the reads that follow only drain what is already there. `signal`
 * aborts a read in flight.
 */
export async function readSpotEvents(
  sqs: SQSClient,
  queueUrl: string,
  options: { max?: number; waitSeconds?: number; signal?: AbortSignal },
): Promise<QueueMessage[]> {
  const out: QueueMessage[] = [];
  const max = options.max ?? 100;
  let wait = Math.max(0, Math.min(20, Math.floor(options.waitSeconds ?? 0)));
  while (out.length < max) {
    const command = new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: Math.min(10, max - out.length),
      WaitTimeSeconds: wait,
      VisibilityTimeout: 120,
    });
    const res = await aws(`read ${queueUrl}`, () =>
      sqs.send(command, wait > 0 && options.signal ? { abortSignal: options.signal } : {}),
    );
    wait = 0;
    const messages = res.Messages ?? [];
    for (const m of messages)
      out.push({
        messageId: m.MessageId ?? '',
        receiptHandle: m.ReceiptHandle ?? '',
        event: parseSpotEvent(m.Body ?? ''),
      });
    if (messages.length === 0) break;
  }
  return out;
}

export function guardedOf(i: Instance): GuardedInstance {
  return {
    instanceId: i.InstanceId ?? '',
    guardianId: i.Tags?.find((t) => t.Key === TAG_GUARDED)?.Value ?? '',
    state: i.State?.Name ?? 'unknown',
    stateReason: i.StateReason?.Code,
  };
}

/** Every guarded instance of the region, in one (paginated) DescribeInstances. */
export async function listGuarded(ec2: EC2Client): Promise<GuardedInstance[]> {
  const found = await describeInstances(ec2, 'list guarded instances', {
    Filters: [{ Name: 'tag-key', Values: [TAG_GUARDED] }],
  });
  return found.map(guardedOf);
}

/**
 * These instances as DescribeInstances by id sees them (not a filtered listing, which is
 * eventually consistent and may leave a live instance out): one that does not exist is gone.
 * `onCall` counts the calls.
 */
export async function confirmById(
  ec2: EC2Client,
  instanceIds: string[],
  onCall: () => void = () => undefined,
): Promise<GuardedInstance[]> {
  const found = await Promise.all(
    instanceIds.map(async (id) => {
      onCall();
      try {
        return await describeInstances(ec2, `confirm ${id}`, { InstanceIds: [id] });
      } catch (err) {
        if (err instanceof ApplicationFailure && err.type === 'InvalidInstanceID.NotFound') return [];
        throw err;
      }
    }),
  );
  return found.flat().map(guardedOf);
}

export function createSpotActivities(clients: AwsClients) {
  /** Marks an instance as guarded by `guardianId`; the router finds guarded instances by this tag. */
  async function markGuarded(input: { region: string; instanceId: string; guardianId: string }): Promise<void> {
    await aws(`tag ${input.instanceId} as guarded`, () =>
      clients.ec2(input.region).send(
        new CreateTagsCommand({
          Resources: [input.instanceId],
          Tags: [{ Key: TAG_GUARDED, Value: input.guardianId }],
        }),
      ),
    );
  }

  /** Every guarded instance of the region, in one (paginated) DescribeInstances. */
  async function scanGuarded(input: { region: string }): Promise<GuardedInstance[]> {
    return listGuarded(clients.ec2(input.region));
  }

  /**
   * The guarded ones among these instances, in one DescribeInstances by id: how the router learns
   * the owner of an instance launched since its last scan without listing every guarded instance.
   */
  async function lookupGuarded(input: { region: string; instanceIds: string[] }): Promise<GuardedInstance[]> {
    const found = await describeInstances(clients.ec2(input.region), `look up ${input.instanceIds.join(', ')}`, {
      Filters: [
        { Name: 'instance-id', Values: input.instanceIds },
        { Name: 'tag-key', Values: [TAG_GUARDED] },
      ],
    });
    return found.map(guardedOf);
  }

  /** These instances as DescribeInstances by id sees them (see `confirmById`). */
  async function confirmInstances(input: { region: string; instanceIds: string[] }): Promise<GuardedInstance[]> {
    return confirmById(clients.ec2(input.region), input.instanceIds);
  }

  /**
   * Up to `max` messages of the queue, parsed; they stay invisible until deleted or timed out.
   * With `waitSeconds` (SQS long polling, at most 20) the first read waits until a message
   * arrives or the time is up, so a message is picked up the moment it is sent. A waiting read
   * heartbeats every second (so a worker that died in the middle of one is noticed at once) and
   * ends when the activity is cancelled.
   */
  async function receiveSpotEvents(input: {
    region: string;
    queueUrl: string;
    max?: number;
    waitSeconds?: number;
  }): Promise<QueueMessage[]> {
    const read = () =>
      readSpotEvents(clients.sqs(input.region), input.queueUrl, {
        max: input.max,
        waitSeconds: input.waitSeconds,
        signal: Context.current().cancellationSignal,
      });
    return (input.waitSeconds ?? 0) > 0 ? withHeartbeat(read, undefined, 1_000) : read();
  }

  async function deleteSpotEvents(input: {
    region: string;
    queueUrl: string;
    receiptHandles: string[];
  }): Promise<{ deleted: number; failed: string[] }> {
    let deleted = 0;
    const failed: string[] = [];
    for (let i = 0; i < input.receiptHandles.length; i += 10) {
      const batch = input.receiptHandles.slice(i, i + 10);
      const res = await aws(`delete ${batch.length} message(s) from ${input.queueUrl}`, () =>
        clients.sqs(input.region).send(
          new DeleteMessageBatchCommand({
            QueueUrl: input.queueUrl,
            Entries: batch.map((ReceiptHandle, n) => ({ Id: String(n), ReceiptHandle })),
          }),
        ),
      );
      deleted += res.Successful?.length ?? 0;
      for (const f of res.Failed ?? []) failed.push(`${f.Id}: ${f.Code} ${f.Message ?? ''}`);
    }
    return { deleted, failed };
  }

  return { markGuarded, scanGuarded, lookupGuarded, confirmInstances, receiveSpotEvents, deleteSpotEvents };
}
