/**
 * Reading Spot events from the queue: as EventBridge delivers them to SQS, and wrapped in the
 * envelope of an SNS topic between the two (EventBridge → SNS → SQS).
 */
import { parseSpotEvent } from '../../src/activities/spot';

const warning = JSON.stringify({
  version: '0',
  id: '1e5527d7-bb36-4607-3370-4164db56a40e',
  'detail-type': 'EC2 Spot Instance Interruption Warning',
  source: 'aws.ec2',
  account: '123456789012',
  time: '2026-12-03T12:00:00Z',
  region: 'us-east-1',
  resources: ['arn:aws:ec2:us-east-1a:instance/i-0b662ef9931388ba0'],
  detail: { 'instance-id': 'i-0b662ef9931388ba0', 'instance-action': 'terminate' },
});

describe('parseSpotEvent', () => {
  it('reads the raw EventBridge event', () => {
    expect(parseSpotEvent(warning)).toEqual({
      ok: true,
      instanceId: 'i-0b662ef9931388ba0',
      kind: 'interruption',
      detailType: 'EC2 Spot Instance Interruption Warning',
      time: '2026-12-03T12:00:00Z',
    });
  });

  it('unwraps an SNS notification', () => {
    const sns = JSON.stringify({
      Type: 'Notification',
      MessageId: 'a',
      TopicArn: 'arn:aws:sns:us-east-1:123456789012:spot',
      Message: warning,
      Timestamp: '2026-12-03T12:00:01Z',
    });
    expect(parseSpotEvent(sns)).toMatchObject({ ok: true, instanceId: 'i-0b662ef9931388ba0', kind: 'interruption' });
  });

  it('says why it ignores an SNS notification that holds no event', () => {
    expect(parseSpotEvent(JSON.stringify({ Type: 'Notification', Message: 'hello' }))).toEqual({
      ok: false,
      reason: 'an SNS notification whose Message is not JSON',
    });
    expect(parseSpotEvent(JSON.stringify({ Type: 'Notification', Message: '{}' }))).toEqual({
      ok: false,
      reason: 'no detail-type',
    });
  });
});
