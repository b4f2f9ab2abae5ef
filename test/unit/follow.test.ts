/**
 * What `migration start --follow` and `migration status` print of a relaunch: when a new Spot
 * instance is lost before the migration stands, and again once the next one runs.
 */
import { plainChanges, renderLive } from '../../src/cli/follow';
import { PHASES, type MigrationStatus, type Relaunch } from '../../src/shared/migration';

const base = (over: Partial<MigrationStatus> = {}): MigrationStatus => ({
  workflowId: 'migrate-demo',
  planName: 'demo',
  region: 'us-east-1',
  phase: 'build',
  phases: PHASES.map((p) => ({ name: p.name, title: p.title, state: 'pending', attempts: 0, figures: {} })),
  oldInstanceId: 'i-old',
  newInstanceId: 'i-first',
  ignoredMessages: [],
  compensations: [],
  ...over,
});

const lost: Relaunch = {
  instanceId: 'i-first',
  pool: 'g4dn.xlarge@us-east-1a',
  kind: 'interruption',
  source: 'queue',
  noticeAt: '2026-12-06T10:00:00.000Z',
  during: 'awaiting-approval',
  elasticIpBackAt: '2026-12-06T10:00:01.000Z',
  goldenDiscarded: ['ami-1'],
};

test('a relaunch is told when it starts and again with the instance in its place; nothing is repeated', () => {
  const before = base();
  const started = base({ phase: 'relaunching', relaunches: [lost] });
  const first = plainChanges(before, started).filter((l) => l.includes('relaunch '));
  expect(first).toHaveLength(1);
  expect(first[0]).toContain(
    '`i-first` (g4dn.xlarge@us-east-1a): interruption notice from the queue at 2026-12-06T10:00:00.000Z, during awaiting-approval; the Elastic IP went back to the old instance at 2026-12-06T10:00:01.000Z and approval was asked again; its golden image ami-1 discarded',
  );
  expect(plainChanges(started, started).filter((l) => l.includes('relaunch '))).toEqual([]);
  const replaced = base({
    phase: 'launch',
    newInstanceId: 'i-second',
    relaunches: [{ ...lost, replacedBy: 'i-second' }],
  });
  const second = plainChanges(started, replaced).filter((l) => l.includes('relaunch '));
  expect(second).toHaveLength(1);
  expect(second[0]).toContain('relaunched as `i-second`');
  expect(plainChanges(replaced, replaced).filter((l) => l.includes('relaunch '))).toEqual([]);
});

test('the live view lists each relaunch and the golden image', () => {
  const view = renderLive(
    base({
      phase: 'awaiting-approval',
      newInstanceId: 'i-second',
      relaunches: [{ ...lost, replacedBy: 'i-second' }],
      golden: { instanceId: 'i-second', state: 'made', imageId: 'ami-2' },
    }),
  );
  expect(view).toContain('  golden image of i-second: made ami-2');
  expect(view).toMatch(/\n {2}relaunch: `i-first` \(g4dn\.xlarge@us-east-1a\): .*relaunched as `i-second`/);
});

test('plain output tells each phase change once: no status line repeats the phase that just started', () => {
  const at = (phase: MigrationStatus['phase'], states: Record<string, 'running' | 'succeeded'>) =>
    base({
      phase,
      phases: PHASES.map((p) => ({
        name: p.name,
        title: p.title,
        state: states[p.name] ?? 'pending',
        attempts: states[p.name] ? 1 : 0,
        figures: {},
      })),
    });
  const steps = [
    at('preflight', { preflight: 'running' }),
    at('launch', { preflight: 'succeeded', launch: 'running' }),
    at('awaiting-approval', { preflight: 'succeeded', launch: 'succeeded' }),
  ];
  const lines = steps.flatMap((s, i) => plainChanges(steps[i - 1], s).map((l) => l.slice(9)));
  expect(lines).toEqual([
    'preflight running attempts=1',
    'preflight succeeded attempts=1',
    'launch running attempts=1',
    'launch succeeded attempts=1',
    'status awaiting-approval',
  ]);
});

test('a run that ended in an error says why, in the live view and once in plain output', () => {
  const error = {
    type: 'Rejected',
    message: 'rejected by carol: the quota request is still open\nmore',
    phase: undefined,
  };
  const ended = base({ phase: 'rolled-back', error });
  expect(renderLive(ended)).toContain('\n  error: rejected by carol: the quota request is still open');
  expect(renderLive(ended)).not.toContain('more');
  const rolling = base({ phase: 'rolling-back', error: { ...error, phase: 'stop-old' } });
  expect(plainChanges(base(), rolling).map((l) => l.slice(9))).toEqual([
    'status rolling-back error in stop-old: rejected by carol: the quota request is still open',
  ]);
  // Told once: the next status change does not repeat it.
  expect(plainChanges(rolling, { ...rolling, phase: 'rolled-back' }).map((l) => l.slice(9))).toEqual([
    'status rolled-back',
  ]);
});
