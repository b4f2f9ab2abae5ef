import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { eventsSetupActions, iamPolicy } from '../../src/aws/permissions';
import { removeEvents, setupEvents, type EventsClients } from '../../src/cli/commands/events';
import { setupPolicyOf } from '../../src/cli/commands/iam-policy';
import type { Plan } from '../../src/plan/schema';
import { authorizations, firstDenied, withoutAction, type Authorization } from '../harness/iam';

const ACCOUNT = '111122223333';
const plan = {
  name: 'vma',
  region: 'eu-west-1',
  target: {},
  spot: { interruptionQueueUrl: `https://sqs.eu-west-1.amazonaws.com/${ACCOUNT}/spot-events` },
} as unknown as Plan;
const facts = (tags: Record<string, Record<string, string>> = {}, spotRoleExists = true) => ({
  accountId: ACCOUNT,
  spotRoleExists,
  tagsOf: async (id: string) => tags[id] ?? {},
});
const ask = async (
  service: string,
  action: string,
  params: Record<string, unknown>,
  f = facts(),
  region = 'eu-west-1',
) => firstDenied([iamPolicy(plan)], await authorizations({ service, action, region, params }, f));

describe('the IAM evaluator of the test world', () => {
  it('holds RunInstances to the plan region, and its tags on create to ec2:CreateTags with ec2:CreateAction', async () => {
    const launch = { 'TagSpecification.1.ResourceType': 'instance', 'TagSpecification.2.ResourceType': 'volume' };
    expect(await ask('ec2', 'RunInstances', launch)).toBeUndefined();
    expect(await ask('ec2', 'RunInstances', launch, facts(), 'us-east-1')).toMatchObject({
      action: 'ec2:RunInstances',
    });
    const asks = await authorizations(
      { service: 'ec2', action: 'RunInstances', region: 'eu-west-1', params: launch },
      facts(),
    );
    expect(firstDenied([withoutAction(iamPolicy(plan), 'ec2:CreateTags')], asks)).toMatchObject({
      action: 'ec2:CreateTags',
      context: { 'ec2:CreateAction': 'RunInstances' },
    });
  });

  it('asks for iam:PassRole with an instance profile, and for the Spot role only while the account has none', async () => {
    const spot = { 'InstanceMarketOptions.MarketType': 'spot', 'IamInstanceProfile.Name': 'app' };
    const asks = await authorizations(
      { service: 'ec2', action: 'RunInstances', region: 'eu-west-1', params: spot },
      facts({}, false),
    );
    expect(asks.map((a) => a.action)).toEqual(['ec2:RunInstances', 'iam:PassRole', 'iam:CreateServiceLinkedRole']);
    expect(firstDenied([withoutAction(iamPolicy(plan), 'iam:CreateServiceLinkedRole')], asks)?.action).toBe(
      'iam:CreateServiceLinkedRole',
    );
    expect(
      (
        await authorizations(
          { service: 'ec2', action: 'RunInstances', region: 'eu-west-1', params: spot },
          facts({}, true),
        )
      ).map((a) => a.action),
    ).not.toContain('iam:CreateServiceLinkedRole');
  });

  it('lets the plan terminate and tag only instances tagged with its name (a condition on a missing key does not match)', async () => {
    const tags = { 'i-ours': { 'ec2-gpu-migration:plan': 'vma' }, 'i-other': { 'ec2-gpu-migration:plan': 'another' } };
    expect(await ask('ec2', 'TerminateInstances', { 'InstanceId.1': 'i-ours' }, facts(tags))).toBeUndefined();
    expect(
      await ask('ec2', 'TerminateInstances', { 'InstanceId.1': 'i-ours', 'InstanceId.2': 'i-other' }, facts(tags)),
    ).toMatchObject({ resource: `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-other` });
    expect(await ask('ec2', 'TerminateInstances', { 'InstanceId.1': 'i-untagged' }, facts(tags))).toBeDefined();
    expect(await ask('ec2', 'CreateTags', { 'ResourceId.1': 'i-other' }, facts(tags))).toBeDefined();
    expect(await ask('ec2', 'CreateTags', { 'ResourceId.1': 'i-ours' }, facts(tags))).toBeUndefined();
  });

  it('holds SQS to the plan queue, SSM Run Command to AWS-RunShellScript, and batch calls to their single action', async () => {
    expect(await ask('sqs', 'ReceiveMessage', { QueueUrl: plan.spot.interruptionQueueUrl })).toBeUndefined();
    expect(await ask('sqs', 'DeleteMessageBatch', { QueueUrl: plan.spot.interruptionQueueUrl })).toBeUndefined();
    expect(
      await ask('sqs', 'ReceiveMessage', { QueueUrl: `https://sqs.eu-west-1.amazonaws.com/${ACCOUNT}/other` }),
    ).toBeDefined();
    expect(await ask('sqs', 'SendMessage', { QueueUrl: plan.spot.interruptionQueueUrl })).toBeDefined();
    expect(
      await ask('ssm', 'SendCommand', { DocumentName: 'AWS-RunShellScript', InstanceIds: ['i-1'] }),
    ).toBeUndefined();
    expect(
      await ask('ssm', 'SendCommand', { DocumentName: 'AWS-RunPowerShellScript', InstanceIds: ['i-1'] }),
    ).toMatchObject({ resource: 'arn:aws:ssm:eu-west-1::document/AWS-RunPowerShellScript' });
  });
});

// ---------------------------------------------------------------------------------------------
// `migration events setup|remove` and `iam-policy --setup`

interface Call {
  service: 'sqs' | 'events';
  action: string;
  input: Record<string, unknown>;
}

/** SQS and EventBridge of one account and region, in memory: enough for `events setup|remove`, every call recorded. */
class FakeAccount {
  readonly calls: Call[] = [];
  readonly queues = new Map<string, { attributes: Record<string, string>; tags: Record<string, string> }>();
  readonly rules = new Map<
    string,
    { pattern?: string; state?: string; description?: string; tags: Record<string, string>; targets: object[] }
  >();

  constructor(
    readonly account: string,
    readonly region: string,
  ) {}

  clients(): EventsClients {
    const send = (service: Call['service']) => async (command: object) => {
      const action = command.constructor.name.replace(/Command$/, '');
      const input = (command as { input: Record<string, unknown> }).input;
      this.calls.push({ service, action, input });
      return this.answer(action, input);
    };
    return {
      sqs: () => ({ send: send('sqs') }) as unknown as SQSClient,
      eventBridge: () => ({ send: send('events') }) as unknown as EventBridgeClient,
    };
  }

  private answer(action: string, p: Record<string, unknown>): unknown {
    const fail = (code: string) => Promise.reject(Object.assign(new Error(`${code} (fake)`), { name: code }));
    const queueName = String(
      p.QueueName ??
        String(p.QueueUrl ?? '')
          .split('/')
          .pop(),
    );
    const queue = this.queues.get(queueName);
    const ruleName = String(
      p.Name ??
        p.Rule ??
        String(p.ResourceARN ?? '')
          .split('/')
          .pop(),
    );
    const rule = this.rules.get(ruleName);
    const url = `https://sqs.${this.region}.amazonaws.com/${this.account}/${queueName}`;
    switch (action) {
      case 'DescribeEventBus':
        return { Name: 'default', Arn: `arn:aws:events:${this.region}:${this.account}:event-bus/default` };
      case 'GetQueueUrl':
        return queue ? { QueueUrl: url } : fail('QueueDoesNotExist');
      case 'ListQueueTags':
        return { Tags: queue?.tags };
      case 'GetQueueAttributes':
        return { Attributes: queue?.attributes };
      case 'CreateQueue':
        this.queues.set(queueName, {
          attributes: { ...(p.Attributes as Record<string, string>) },
          tags: { ...(p.tags as Record<string, string>) },
        });
        return { QueueUrl: url };
      case 'SetQueueAttributes':
        Object.assign(queue!.attributes, p.Attributes);
        return {};
      case 'DeleteQueue':
        this.queues.delete(queueName);
        return {};
      case 'DescribeRule':
        return rule
          ? {
              Name: ruleName,
              Arn: `arn:aws:events:${this.region}:${this.account}:rule/${ruleName}`,
              EventPattern: rule.pattern,
              State: rule.state,
              Description: rule.description,
            }
          : fail('ResourceNotFoundException');
      case 'ListTagsForResource':
        return { Tags: Object.entries(rule?.tags ?? {}).map(([Key, Value]) => ({ Key, Value })) };
      case 'ListTargetsByRule':
        return { Targets: rule?.targets };
      case 'PutRule': {
        const tags =
          rule?.tags ?? Object.fromEntries((p.Tags as { Key: string; Value: string }[]).map((t) => [t.Key, t.Value]));
        this.rules.set(ruleName, {
          pattern: p.EventPattern as string,
          state: p.State as string,
          description: p.Description as string,
          tags,
          targets: rule?.targets ?? [],
        });
        return {};
      }
      case 'PutTargets':
        rule!.targets = [...(p.Targets as object[])];
        return { FailedEntryCount: 0 };
      case 'RemoveTargets':
        rule!.targets = [];
        return { FailedEntryCount: 0 };
      case 'DeleteRule':
        if (rule!.targets.length > 0) return fail('ValidationException');
        this.rules.delete(ruleName);
        return {};
      default:
        throw new Error(`the fake account does not serve ${action}`);
    }
  }
}

/**
 * What IAM asks of one call (Service Authorization Reference): every SQS call is on its queue,
 * every EventBridge call on its rule but DescribeEventBus (on the bus); tags given on creation
 * also ask for sqs:TagQueue or events:TagResource. SQS calls by URL go through the test world's
 * own model (`authorizations`).
 */
async function asksOf(call: Call, region: string): Promise<Authorization[]> {
  const base = { 'aws:RequestedRegion': region };
  const p = call.input;
  if (call.service === 'sqs') {
    if (p.QueueUrl) return authorizations({ service: 'sqs', action: call.action, region, params: p }, facts());
    const resource = `arn:aws:sqs:${region}:${ACCOUNT}:${String(p.QueueName)}`;
    const asks = [{ action: `sqs:${call.action}`, resource, context: base }];
    if (call.action === 'CreateQueue' && p.tags) asks.push({ action: 'sqs:TagQueue', resource, context: base });
    return asks;
  }
  if (call.action === 'DescribeEventBus')
    return [
      {
        action: 'events:DescribeEventBus',
        resource: `arn:aws:events:${region}:${ACCOUNT}:event-bus/default`,
        context: base,
      },
    ];
  const name = String(
    p.Name ??
      p.Rule ??
      String(p.ResourceARN ?? '')
        .split('/')
        .pop(),
  );
  const resource = `arn:aws:events:${region}:${ACCOUNT}:rule/${name}`;
  const asks = [{ action: `events:${call.action}`, resource, context: base }];
  if (call.action === 'PutRule' && p.Tags) asks.push({ action: 'events:TagResource', resource, context: base });
  return asks;
}

describe('the policy of `migration events setup|remove` (iam-policy --setup)', () => {
  it("allows every call setup and remove make on the plan's queues and rules, and grants no action they do not use", async () => {
    const aws = new FakeAccount(ACCOUNT, plan.region);
    const quiet = () => undefined;
    await setupEvents(aws.clients(), plan, { dryRun: true }, quiet);
    await setupEvents(aws.clients(), plan, {}, quiet);
    // Someone changed things by hand: setup puts them back.
    aws.rules.get('ec2-gpu-migration-rebalance')!.state = 'DISABLED';
    aws.queues.get('spot-events')!.attributes.MessageRetentionPeriod = '60';
    await setupEvents(aws.clients(), plan, {}, quiet);
    await removeEvents(aws.clients(), plan, { dryRun: true }, quiet);
    await removeEvents(aws.clients(), plan, {}, quiet);
    expect(aws.queues.size + aws.rules.size).toBe(0);

    const policy = setupPolicyOf(plan);
    const asked = new Set<string>();
    for (const call of aws.calls) {
      const asks = await asksOf(call, plan.region);
      for (const a of asks) asked.add(a.action);
      expect({ call: `${call.service}:${call.action}`, denied: firstDenied([policy], asks) }).toEqual({
        call: `${call.service}:${call.action}`,
        denied: undefined,
      });
    }
    expect([...asked].sort()).toEqual(eventsSetupActions());
    // Without a plan: the same calls, on any queue and in any region.
    for (const call of aws.calls)
      expect(firstDenied([setupPolicyOf()], await asksOf(call, plan.region))).toBeUndefined();
  });

  it("allows nothing on another queue, another rule or in another region, and nothing the worker's policy needs", async () => {
    const policy = setupPolicyOf(plan);
    const other = { service: 'sqs' as const, action: 'DeleteQueue', input: { QueueName: 'someone-elses' } };
    expect(firstDenied([policy], await asksOf(other, plan.region))).toMatchObject({ action: 'sqs:DeleteQueue' });
    const rule = { service: 'events' as const, action: 'DeleteRule', input: { Name: 'another-rule' } };
    expect(firstDenied([policy], await asksOf(rule, plan.region))).toMatchObject({ action: 'events:DeleteRule' });
    const elsewhere = { service: 'events' as const, action: 'PutRule', input: { Name: 'ec2-gpu-migration-rebalance' } };
    expect(firstDenied([policy], await asksOf(elsewhere, 'us-east-1'))).toBeDefined();
    expect(await ask('sqs', 'ReceiveMessage', { QueueUrl: plan.spot.interruptionQueueUrl })).toBeUndefined();
    expect(
      firstDenied(
        [policy],
        await authorizations(
          {
            service: 'sqs',
            action: 'ReceiveMessage',
            region: plan.region,
            params: { QueueUrl: plan.spot.interruptionQueueUrl },
          },
          facts(),
        ),
      ),
    ).toBeDefined();
  });
});
