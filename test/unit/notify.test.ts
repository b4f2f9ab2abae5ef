// What a notification says for each event, the two body formats, and how the worker reads its
// receivers: secrets are never echoed whole.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createNotifyActivities, notificationBody, notificationText, redact } from '../../src/activities/notify';
import { startReceiver } from '../harness/receiver';
import { ConfigError, readConfig } from '../../src/config';
import { NOTIFY_KINDS, type NotifyEvent } from '../../src/shared/notify';
import type { GuardEvent } from '../../src/shared/spot';

const base = { workflowId: 'migrate-app', planName: 'app', region: 'ap-northeast-1', at: '2026-12-07T10:00:00.000Z' };
const round: GuardEvent = {
  kind: 'interruption',
  oldInstanceId: 'i-old',
  newInstanceId: 'i-new',
  instanceType: 'g4dn.xlarge',
  market: 'spot',
  availabilityZone: 'ap-northeast-1c',
  noticeAt: '2026-12-07T10:00:00.000Z',
  launchedAt: '2026-12-07T10:00:02.000Z',
  runningAt: '2026-12-07T10:00:20.000Z',
  healthyAt: '2026-12-07T10:01:30.000Z',
  eipMovedAt: '2026-12-07T10:01:31.500Z',
  outcome: 'replaced',
  recoveryMs: 91_500,
};

/** One of every kind, with what its text must say. */
const cases: [NotifyEvent, string[]][] = [
  [
    {
      ...base,
      kind: 'awaiting-approval',
      newInstanceId: 'i-new',
      oldInstanceId: 'i-old',
      deadline: '2026-12-14T10:00:00.000Z',
      approvers: ['alice'],
    },
    [
      'waits for approval',
      'i-new',
      'i-old',
      'Decide by 2026-12-14T10:00:00.000Z',
      'approvers: alice',
      'migration approve migrate-app --by NAME',
      'migration reject migrate-app',
    ],
  ],
  [{ ...base, kind: 'approved', by: 'alice', comment: 'ok', via: 'signal' }, ['approved by alice: ok (signal)']],
  [{ ...base, kind: 'rejected', by: 'bob', comment: 'p95', via: 'update' }, ['rejected by bob: p95']],
  [
    { ...base, kind: 'signal-refused', name: 'aprove', reason: 'no signal "aprove" here' },
    ['`aprove` was not acted on', 'Nothing was decided'],
  ],
  [
    { ...base, kind: 'completed', outcome: 'completed', instanceId: 'i-new', warnings: ['w1'] },
    ['migration completed; the service runs on i-new', 'Warnings: w1', 'migration report migrate-app'],
  ],
  [
    { ...base, kind: 'rolled-back', error: 'voice test too slow', phase: 'voice-test' },
    ['failed and was rolled back (in voice-test): voice test too slow'],
  ],
  [{ ...base, kind: 'failed', error: 'undo failed' }, ['migration failed: undo failed']],
  [{ ...base, kind: 'cancelled', error: 'cancelled' }, ['migration cancelled']],
  [
    { ...base, kind: 'undo-failing', step: 'move the Elastic IP back', error: 'throttled', since: base.at, tries: 5 },
    ['undo step keeps failing', 'move the Elastic IP back: throttled', '5 tries'],
  ],
  [
    { ...base, kind: 'spot-notice', instanceId: 'i-old', noticeKind: 'rebalance', source: 'queue' },
    ['Spot rebalance notice for i-old (from the queue)'],
  ],
  [
    { ...base, kind: 'replaced', round },
    [
      'i-old replaced by i-new (g4dn.xlarge, spot, ap-northeast-1c)',
      'serving again after 91.5 s',
      'Timeline: notice +0.0 s → launched +2.0 s → running +20.0 s → healthy +90.0 s → Elastic IP moved +91.5 s',
    ],
  ],
  [
    { ...base, kind: 'replacement-failed', round: { ...round, outcome: 'failed', error: 'no capacity' } },
    ['replacing i-old failed: no capacity'],
  ],
  [
    { ...base, kind: 'on-demand-fallback', instanceId: 'i-od', instanceType: 'g4dn.xlarge' },
    ['no Spot capacity', 'on-demand i-od (g4dn.xlarge)'],
  ],
  [{ ...base, kind: 'back-to-spot', instanceId: 'i-spot' }, ['back on Spot: the service runs on i-spot']],
  [
    { ...base, kind: 'router-unhealthy', error: 'the router cannot read the interruption queue q' },
    ['Spot notices may not arrive: the router cannot read'],
  ],
];

test('every kind of event has a case here', () => {
  expect(cases.map(([e]) => e.kind).sort()).toEqual([...NOTIFY_KINDS].sort());
});

test.each(cases)('%# %p says what happened', (event, says) => {
  const text = notificationText(event, 'https://ui/namespaces/ns/workflows/migrate-app');
  expect(text.startsWith('*app* (ap-northeast-1)')).toBe(true);
  for (const s of says) expect(text).toContain(s);
  expect(text).toContain('Web UI: https://ui/namespaces/ns/workflows/migrate-app');
  expect(notificationText(event)).not.toContain('Web UI');
});

test('the notify activity delivers every kind to a Slack and a JSON receiver over HTTP, with what each must say', async () => {
  const receiver = await startReceiver();
  try {
    const { notify } = createNotifyActivities({
      targets: [
        { url: `${receiver.url}/slack`, format: 'slack' },
        { url: `${receiver.url}/json`, format: 'json' },
      ],
      uiBase: 'http://ui.example:8233',
    });
    for (const [event, says] of cases) {
      const result = await new MockActivityEnvironment().run(notify, event);
      expect(result).toEqual({ sent: 2 });
      const [slack, json] = receiver.received.slice(-2);
      expect(slack.path).toBe('/slack');
      expect(Object.keys(slack.body)).toEqual(['text']);
      for (const text of says) expect(slack.body.text).toContain(text);
      expect(json.path).toBe('/json');
      expect(json.contentType).toContain('application/json');
      expect(json.body).toMatchObject({ event: event.kind, workflowId: event.workflowId, text: slack.body.text });
      expect(json.body.webUi).toBe('http://ui.example:8233/namespaces/default/workflows/migrate-app');
    }
    expect(receiver.received).toHaveLength(cases.length * 2);
  } finally {
    await receiver.close();
  }
});

test('a Slack receiver gets {"text"}; a JSON one the event, its kind, its text and the link', () => {
  const [event] = cases[0];
  expect(notificationBody(event, { url: 'https://hooks.slack.com/x', format: 'slack' }, 'https://ui')).toEqual({
    text: notificationText(event, 'https://ui'),
  });
  expect(notificationBody(event, { url: 'https://x', format: 'json' }, 'https://ui')).toEqual({
    ...event,
    event: 'awaiting-approval',
    text: notificationText(event, 'https://ui'),
    webUi: 'https://ui',
  });
});

describe('receivers', () => {
  it('reads MIGRATION_NOTIFY_URLS: Slack by its host or by slack+, JSON otherwise', () => {
    expect(
      readConfig({
        MIGRATION_NOTIFY_URLS:
          'https://hooks.slack.com/services/T/B/secret, json+https://ops.example/hook  slack+https://chat.example/hooks/abc',
      }).notifyTargets,
    ).toEqual([
      { url: 'https://hooks.slack.com/services/T/B/secret', format: 'slack' },
      { url: 'https://ops.example/hook', format: 'json' },
      { url: 'https://chat.example/hooks/abc', format: 'slack' },
    ]);
    expect(readConfig({ MIGRATION_NOTIFY_URLS: 'http://10.0.0.5:9000/in' }).notifyTargets).toEqual([
      { url: 'http://10.0.0.5:9000/in', format: 'json' },
    ]);
  });

  it('reads MIGRATION_NOTIFY_FILE: one per line, # comments', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'notify-')), 'urls');
    writeFileSync(file, '# ops\nhttps://hooks.slack.com/services/a\n\n  json+https://ops.example/b # backup\n');
    expect(readConfig({ MIGRATION_NOTIFY_FILE: file }).notifyTargets).toEqual([
      { url: 'https://hooks.slack.com/services/a', format: 'slack' },
      { url: 'https://ops.example/b', format: 'json' },
    ]);
    expect(() => readConfig({ MIGRATION_NOTIFY_FILE: join(file, 'nope') })).toThrow(
      /MIGRATION_NOTIFY_FILE=.*a readable file/,
    );
  });

  it('refuses what is not an http(s) URL, naming the variable, without echoing the secret', () => {
    let err: unknown;
    try {
      readConfig({ MIGRATION_NOTIFY_URLS: 'https://ok.example/a ftp://files.example/secret-path' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe('MIGRATION_NOTIFY_URLS');
    expect((err as Error).message).toContain('http(s):// URLs, optionally prefixed slack+ or json+');
    expect((err as Error).message).not.toContain('secret-path');
    expect(redact('https://hooks.slack.com/services/T/B/secret')).toBe('https://hooks.slack.com/…');
  });
});
