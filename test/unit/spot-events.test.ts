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

  const event = (detailType: string, detail: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ 'detail-type': detailType, source: 'aws.ec2', detail, ...extra });

  it('reads a rebalance recommendation', () => {
    expect(
      parseSpotEvent(
        event(
          'EC2 Instance Rebalance Recommendation',
          { 'instance-id': 'i-0b662ef9931388ba0' },
          { time: '2026-12-03T11:58:00Z' },
        ),
      ),
    ).toEqual({
      ok: true,
      instanceId: 'i-0b662ef9931388ba0',
      kind: 'rebalance',
      detailType: 'EC2 Instance Rebalance Recommendation',
      time: '2026-12-03T11:58:00Z',
    });
  });

  it.each(['stopping', 'stopped', 'shutting-down', 'terminated'])('reads a state change to %s as stopped', (state) => {
    expect(
      parseSpotEvent(event('EC2 Instance State-change Notification', { 'instance-id': 'i-0b662ef9931388ba0', state })),
    ).toEqual({
      ok: true,
      instanceId: 'i-0b662ef9931388ba0',
      kind: 'stopped',
      detailType: 'EC2 Instance State-change Notification',
      time: undefined,
    });
  });

  it('ignores a state change to a live state, or without a state', () => {
    const change = (detail: Record<string, unknown>) =>
      parseSpotEvent(
        event('EC2 Instance State-change Notification', { 'instance-id': 'i-0b662ef9931388ba0', ...detail }),
      );
    expect(change({ state: 'running' })).toEqual({ ok: false, reason: 'state change to running needs no action' });
    expect(change({ state: 'pending' })).toEqual({ ok: false, reason: 'state change to pending needs no action' });
    expect(change({})).toEqual({ ok: false, reason: 'state change to undefined needs no action' });
  });

  it('leaves the time out when it is not a string', () => {
    const parsed = parseSpotEvent(
      event('EC2 Spot Instance Interruption Warning', { 'instance-id': 'i-0b662ef9931388ba0' }, { time: 1764763200 }),
    );
    expect(parsed).toEqual(expect.objectContaining({ ok: true, time: undefined }));
  });

  it('says why it ignores an event of another kind', () => {
    expect(parseSpotEvent(event('EC2 AMI State Change', { 'instance-id': 'i-0b662ef9931388ba0' }))).toEqual({
      ok: false,
      reason: 'unhandled detail-type EC2 AMI State Change',
    });
  });

  it('says why it ignores an event without a valid instance id', () => {
    const warningType = 'EC2 Spot Instance Interruption Warning';
    const reason = `${warningType}: no valid detail.instance-id`;
    expect(parseSpotEvent(event(warningType, {}))).toEqual({ ok: false, reason });
    expect(parseSpotEvent(event(warningType, { 'instance-id': 'i-xyz' }))).toEqual({ ok: false, reason });
    expect(parseSpotEvent(event(warningType, { 'instance-id': 'i-0B662EF9931388BA0' }))).toEqual({ ok: false, reason });
    expect(parseSpotEvent(event(warningType, { 'instance-id': 42 }))).toEqual({ ok: false, reason });
    expect(parseSpotEvent(JSON.stringify({ 'detail-type': warningType }))).toEqual({ ok: false, reason });
  });

  it('says why it ignores a body that is no event at all', () => {
    expect(parseSpotEvent('')).toEqual({ ok: false, reason: 'not JSON' });
    expect(parseSpotEvent('{"detail-type":')).toEqual({ ok: false, reason: 'not JSON' });
    for (const body of ['null', '42', '"text"', 'true'])
      expect({ body, parsed: parseSpotEvent(body) }).toEqual({
        body,
        parsed: { ok: false, reason: 'not an EventBridge event object' },
      });
    expect(
      parseSpotEvent(JSON.stringify({ 'detail-type': 7, detail: { 'instance-id': 'i-0b662ef9931388ba0' } })),
    ).toEqual({ ok: false, reason: 'no detail-type' });
  });

  it('says why it ignores an SNS notification whose Message is JSON but no object', () => {
    for (const message of ['null', '42', '"text"'])
      expect(parseSpotEvent(JSON.stringify({ Type: 'Notification', Message: message }))).toEqual({
        ok: false,
        reason: 'an SNS notification whose Message is not an EventBridge event object',
      });
  });

  it('reads an envelope that is not an SNS notification as the event itself', () => {
    expect(parseSpotEvent(JSON.stringify({ Type: 'SubscriptionConfirmation', Message: warning }))).toEqual({
      ok: false,
      reason: 'no detail-type',
    });
    expect(parseSpotEvent(JSON.stringify({ Type: 'Notification', Message: JSON.parse(warning) }))).toEqual({
      ok: false,
      reason: 'no detail-type',
    });
  });
});
