import { iamPolicy } from '../../src/aws/permissions';
import type { Plan } from '../../src/plan/schema';
import { authorizations, firstDenied, withoutAction } from '../harness/iam';

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
