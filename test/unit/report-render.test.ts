/**
 * renderReportMarkdown: the Markdown of a completed and of a failed migration report (headings,
 * table rows, figures with their sources, escaping), and formatFigure, which writes each figure.
 */
import type { PhaseRecord } from '../../src/shared/migration';
import { formatFigure, renderReportMarkdown, type MigrationReport } from '../../src/shared/report';

const phase = (p: Partial<PhaseRecord> & Pick<PhaseRecord, 'name' | 'title'>): PhaseRecord => ({
  state: 'pending',
  attempts: 0,
  figures: {},
  ...p,
});

const completed: MigrationReport = {
  planName: 'video-message-app',
  workflowId: 'migrate-video-message-app',
  region: 'ap-northeast-1',
  outcome: 'completed',
  startedAt: '2026-03-01T10:00:00.000Z',
  endedAt: '2026-03-01T10:42:00.000Z',
  before: {
    instanceId: 'i-0123456789abcdef0',
    instanceType: 't3.large',
    market: 'on-demand',
    vcpus: 2,
    memoryMiB: 8192,
    publicIp: '203.0.113.10',
    availabilityZone: 'ap-northeast-1a',
  },
  after: {
    instanceId: 'i-0fedcba9876543210',
    instanceType: 'g4dn.xlarge',
    market: 'spot',
    vcpus: 4,
    memoryMiB: 16384,
    gpus: '1 x NVIDIA T4 (16 GiB)',
    publicIp: '203.0.113.10',
    availabilityZone: 'ap-northeast-1c',
  },
  elasticIp: '203.0.113.10',
  phases: [
    phase({ name: 'preflight', title: 'Preflight', state: 'succeeded', attempts: 1, durationMs: 2_340 }),
    phase({
      name: 'launch',
      title: 'Launch GPU instance',
      state: 'succeeded',
      attempts: 2,
      durationMs: 95_400,
      figures: {
        instanceType: { value: 'g4dn.xlarge', source: 'measured' },
        market: { value: 'spot', source: 'measured' },
      },
    }),
    phase({ name: 'voice-test', title: 'Voice clone test', state: 'skipped' }),
  ],
  latency: {
    averageMs: { value: 12.3456, unit: 'ms', source: 'measured' },
    p95Ms: { value: 20, unit: 'ms', source: 'measured' },
  },
  latencyLimits: { averageMs: { value: 50, unit: 'ms', source: 'configured' } },
  synthesis: {
    seconds: { value: 1.234, unit: 's', source: 'measured' },
    limit: { value: 2, unit: 's', source: 'configured' },
  },
  gpu: {
    name: { value: 'Tesla T4', source: 'measured' },
    memory: { value: 15360, unit: 'MiB', source: 'measured' },
    cuda: { value: null, source: 'not reported by the instance' },
  },
  securityGroup: {
    groupId: 'sg-0123456789abcdef0',
    rules: [
      { protocol: 'tcp', fromPort: 55433, toPort: 55433, cidr: '0.0.0.0/0', note: 'backend' },
      { protocol: 'tcp', fromPort: 8000, toPort: 8010, cidr: '10.0.0.0/8', note: 'added | kept' },
    ],
  },
  cost: {
    rows: [
      {
        label: 'before',
        instanceType: 't3.large',
        market: 'on-demand',
        perHour: { value: 0.1088, unit: 'USD', source: 'price table' },
        perMonth: { value: 79.424, unit: 'USD', source: 'price table' },
      },
      {
        label: 'after',
        instanceType: 'g4dn.xlarge',
        market: 'spot',
        perHour: { value: 0.2254, unit: 'USD', source: 'measured' },
        perMonth: { value: 164.542, unit: 'USD', source: 'measured' },
      },
    ],
    priceTableDate: '2026-01-15',
    hoursPerMonth: 730,
  },
  approval: { decision: 'approved', by: 'alice', comment: 'ship it', at: '2026-03-01T10:40:00.000Z', via: 'update' },
  images: {
    backup: 'ami-0aaaaaaaaaaaaaaaa',
    golden: 'ami-0bbbbbbbbbbbbbbbb',
    deregistered: ['ami-01111111111111111', 'ami-02222222222222222'],
  },
  compensations: [],
  warnings: [],
  guardianWorkflowId: 'spot-guardian-video-message-app',
};

const failed: MigrationReport = {
  planName: 'video-message-app',
  workflowId: 'migrate-video-message-app',
  region: 'ap-northeast-1',
  outcome: 'failed',
  startedAt: '2026-03-01T10:00:00.000Z',
  endedAt: '2026-03-01T10:05:00.000Z',
  before: {
    instanceId: 'i-0123456789abcdef0',
    instanceType: 't3.large',
    market: 'on-demand',
    vcpus: 2,
    memoryMiB: 8192,
  },
  after: {},
  phases: [
    phase({ name: 'preflight', title: 'Preflight', state: 'succeeded', attempts: 1, durationMs: 1_000 }),
    phase({
      name: 'launch',
      title: 'Launch GPU instance',
      state: 'failed',
      attempts: 3,
      durationMs: 61_000,
      lastError: 'no capacity: g4dn.xlarge/spot | g5.xlarge/spot\nInsufficientInstanceCapacity',
    }),
  ],
  cost: { rows: [], priceTableDate: '2026-01-15', hoursPerMonth: 730 },
  images: {},
  compensations: [
    { name: 'terminate the new instance', state: 'done', detail: 'nothing was launched' },
    { name: 'undo the security-group changes', state: 'skipped' },
  ],
  warnings: ['no Spot capacity in ap-northeast-1'],
  error: { type: 'NoCapacity', message: 'no capacity for any choice', phase: 'launch' },
};

const headings = (md: string) => md.split('\n').filter((l) => l.startsWith('#'));
/** Cells of a table line, with escaped pipes kept inside their cell. */
const cells = (line: string) => line.split(/(?<!\\)\|/).slice(1, -1);

describe('renderReportMarkdown of a completed migration', () => {
  const md = renderReportMarkdown(completed);
  const lines = md.split('\n');

  it('has every section in order, and no rollback or warnings section when there are none', () => {
    expect(headings(md)).toEqual([
      '# Migration report: video-message-app',
      '## Before and after',
      '## Phases',
      '## Measured performance',
      '## GPU',
      '## Security group',
      '## Cost per month',
      '## Approval',
      '## Images',
    ]);
    expect(md.endsWith('\n')).toBe(true);
  });

  it('opens with the outcome, workflow, times and Elastic IP, and no error', () => {
    expect(lines.slice(0, 6)).toEqual([
      '# Migration report: video-message-app',
      '',
      '- Outcome: **completed**',
      '- Workflow: `migrate-video-message-app` in ap-northeast-1',
      '- From 2026-03-01T10:00:00.000Z to 2026-03-01T10:42:00.000Z',
      '- Elastic IP: 203.0.113.10',
    ]);
    expect(md).not.toContain('- Error:');
  });

  it('compares the machines row by row', () => {
    const start = lines.indexOf('|  | before | after |');
    expect(lines.slice(start, start + 10)).toEqual([
      '|  | before | after |',
      '|---|---|---|',
      '| instance | i-0123456789abcdef0 | i-0fedcba9876543210 |',
      '| type | t3.large | g4dn.xlarge |',
      '| market | on-demand | spot |',
      '| vCPU | 2 | 4 |',
      '| memory | 8 GiB | 16 GiB |',
      '| GPU | none | 1 x NVIDIA T4 (16 GiB) |',
      '| availability zone | ap-northeast-1a | ap-northeast-1c |',
      '| public address | 203.0.113.10 | 203.0.113.10 |',
    ]);
  });

  it('lists the phases with attempts, time in seconds and the first figure', () => {
    const start = lines.indexOf('| # | phase | state | attempts | time | key figure | last error |');
    expect(start).toBeGreaterThan(lines.indexOf('## Phases'));
    expect(lines.slice(start + 1, start + 5)).toEqual([
      '|---|---|---|---|---|---|---|',
      '| 0 | Preflight | succeeded | 1 | 2.3 s |  |  |',
      '| 1 | Launch GPU instance | succeeded | 2 | 95.4 s | instanceType: g4dn.xlarge (measured) |  |',
      '| 2 | Voice clone test | skipped | – | – |  |  |',
    ]);
  });

  it('gives each measured figure with its unit and source, and its limit', () => {
    expect(lines).toContain('- Speech synthesis (voice clone request): 1.23 s (measured); limit 2 s (configured)');
    expect(lines).toContain('| latency | value | limit |');
    expect(lines).toContain('| averageMs | 12.35 ms (measured) | 50 ms (configured) |');
    expect(lines).toContain('| p95Ms | 20 ms (measured) | – |');
    expect(md).not.toContain('Not measured');
  });

  it('says which GPU facts the instance did not report', () => {
    expect(lines).toContain('| name | Tesla T4 (measured) |');
    expect(lines).toContain('| memory | 15360 MiB (measured) |');
    expect(lines).toContain('| cuda | not reported by the instance |');
    expect(md).not.toContain('Not read');
  });

  it('lists the ingress rules, a range of ports as from-to, a pipe in a note escaped', () => {
    expect(lines).toContain('Ingress of `sg-0123456789abcdef0` after the run:');
    expect(lines).toContain('| tcp | 55433 | 0.0.0.0/0 | backend |');
    expect(lines).toContain('| tcp | 8000-8010 | 10.0.0.0/8 | added \\| kept |');
  });

  it('prices both machines with where each price comes from', () => {
    expect(lines).toContain('|  | type | market | per hour | per month (730 h) |');
    expect(lines).toContain('| before | t3.large | on-demand | 0.11 USD (price table) | 79.42 USD (price table) |');
    expect(lines).toContain('| after | g4dn.xlarge | spot | 0.23 USD (measured) | 164.54 USD (measured) |');
    expect(md).toContain('price table dated 2026-01-15');
  });

  it('names the decision, the images and the guardian', () => {
    expect(lines).toContain('- Decision: **approved** by alice at 2026-03-01T10:40:00.000Z (update)');
    expect(lines).toContain('- Comment: ship it');
    expect(lines).toContain('- Backup of the old instance: `ami-0aaaaaaaaaaaaaaaa`');
    expect(lines).toContain('- Golden image of the new instance: `ami-0bbbbbbbbbbbbbbbb`');
    expect(lines).toContain(
      '- Older golden images deregistered with their snapshots: `ami-01111111111111111`, `ami-02222222222222222`',
    );
    expect(lines).toContain('Spot guardian: `spot-guardian-video-message-app` watches the new instance.');
  });

  it('writes tables that Markdown renders: a blank line before each, and as many cells in each row as in its header', () => {
    let tables = 0;
    lines.forEach((line, i) => {
      if (!line.startsWith('|') || lines[i - 1].startsWith('|')) return;
      tables++;
      expect({ line, before: lines[i - 1] }).toEqual({ line, before: '' });
      expect(lines[i + 1]).toMatch(/^\|(---\|)+$/);
      const width = cells(line).length;
      for (let j = i + 1; j < lines.length && lines[j].startsWith('|'); j++)
        expect({ row: lines[j], cells: cells(lines[j]).length }).toEqual({ row: lines[j], cells: width });
    });
    expect(tables).toBe(6);
  });
});

describe('renderReportMarkdown of a failed migration', () => {
  const md = renderReportMarkdown(failed);
  const lines = md.split('\n');

  it('has the rollback and warnings sections, and no images section', () => {
    expect(headings(md)).toEqual([
      '# Migration report: video-message-app',
      '## Before and after',
      '## Phases',
      '## Measured performance',
      '## GPU',
      '## Security group',
      '## Cost per month',
      '## Approval',
      '## Rollback',
      '## Warnings',
    ]);
  });

  it('names the error and the phase it happened in, and no Elastic IP', () => {
    expect(lines).toContain('- Outcome: **failed**');
    expect(lines).toContain('- Error: NoCapacity in launch: no capacity for any choice');
    expect(md).not.toContain('- Elastic IP:');
    const noPhase = renderReportMarkdown({ ...failed, error: { type: 'PreflightFailed', message: 'no such subnet' } });
    expect(noPhase.split('\n')).toContain('- Error: PreflightFailed: no such subnet');
  });

  it('shows a dash for what the new instance never had', () => {
    expect(lines).toContain('| instance | i-0123456789abcdef0 | – |');
    expect(lines).toContain('| type | t3.large | – |');
    expect(lines).toContain('| vCPU | 2 | – |');
    expect(lines).toContain('| memory | 8 GiB | – |');
    expect(lines).toContain('| public address | – | – |');
  });

  it('keeps the last error on its table row: pipes escaped, line breaks as spaces', () => {
    expect(lines).toContain(
      '| 1 | Launch GPU instance | failed | 3 | 61.0 s |  | no capacity: g4dn.xlarge/spot \\| g5.xlarge/spot InsufficientInstanceCapacity |',
    );
  });

  it('cuts a long last error to 160 characters', () => {
    const long = renderReportMarkdown({
      ...failed,
      phases: [phase({ name: 'setup', title: 'Environment setup', state: 'failed', lastError: 'e'.repeat(300) })],
    });
    expect(long.split('\n')).toContain(`| 0 | Environment setup | failed | – | – |  | ${'e'.repeat(160)} |`);
  });

  it('says what was not measured, read, changed or asked', () => {
    expect(lines).toContain('Not measured (the run ended before the performance test, or the plan sets no checks).');
    expect(lines).toContain('Not read (the run ended before environment setup).');
    expect(lines).toContain('Not changed.');
    expect(lines).toContain('No decision was asked for.');
    expect(md).not.toContain('Spot guardian:');
  });

  it('keeps the cost table header when there are no prices', () => {
    const start = lines.indexOf('|  | type | market | per hour | per month (730 h) |');
    expect(lines.slice(start + 1, start + 3)).toEqual(['|---|---|---|---|---|', '']);
  });

  it('lists each undo step with its state and detail, and each warning', () => {
    const rollback = lines.indexOf('## Rollback');
    expect(lines.slice(rollback, rollback + 4)).toEqual([
      '## Rollback',
      '',
      '- terminate the new instance: done (nothing was launched)',
      '- undo the security-group changes: skipped',
    ]);
    const warnings = lines.indexOf('## Warnings');
    expect(lines.slice(warnings, warnings + 3)).toEqual(['## Warnings', '', '- no Spot capacity in ap-northeast-1']);
  });

  it('writes a timed-out approval without a person or channel', () => {
    const t = renderReportMarkdown({
      ...failed,
      outcome: 'approval timed out',
      approval: { decision: 'timed-out', at: '2026-03-08T10:00:00.000Z' },
    });
    expect(t.split('\n')).toContain('- Decision: **timed-out** at 2026-03-08T10:00:00.000Z');
    expect(t).toContain('- Outcome: **approval timed out**');
    expect(t).not.toContain('- Comment:');
  });
});

describe('formatFigure', () => {
  it.each([
    [{ value: 42, unit: 'ms', source: 'measured' } as const, '42 ms (measured)'],
    [{ value: 0, unit: 'ms', source: 'measured' } as const, '0 ms (measured)'],
    [{ value: 1.5, unit: 's', source: 'measured' } as const, '1.50 s (measured)'],
    [{ value: 0.2254, unit: 'USD', source: 'price table' } as const, '0.23 USD (price table)'],
    [{ value: 0.0042, unit: 'USD', source: 'measured' } as const, '0.00420 USD (measured)'],
    [{ value: 'Tesla T4', source: 'measured' } as const, 'Tesla T4 (measured)'],
    [{ value: 2, source: 'configured' } as const, '2 (configured)'],
    [{ value: null, source: 'not reported by the instance' } as const, 'not reported by the instance'],
    [{ value: null, unit: 'ms', source: 'measured' } as const, '–'],
  ])('%j → %s', (figure, text) => {
    expect(formatFigure(figure)).toBe(text);
  });

  it('writes a dash for a missing figure', () => {
    expect(formatFigure(undefined)).toBe('–');
  });
});

test('a report with relaunches has a Relaunches section, one line each, before the guardian', () => {
  const md = renderReportMarkdown({
    ...completed,
    guardianWorkflowId: 'spot-guardian-demo',
    relaunches: [
      {
        instanceId: 'i-0aaa',
        pool: 'g4dn.xlarge@us-east-1a',
        kind: 'interruption',
        source: 'queue',
        noticeAt: '2026-12-06T10:00:00.000Z',
        during: 'build',
        replacedBy: 'i-0bbb',
      },
      {
        instanceId: 'i-0bbb',
        kind: 'stopped',
        source: 'poll',
        noticeAt: '2026-12-06T10:20:00.000Z',
        during: 'awaiting-approval',
        elasticIpBackAt: '2026-12-06T10:20:01.000Z',
        goldenDiscarded: ['ami-0ccc'],
        replacedBy: 'i-0ddd',
      },
    ],
  });
  const section = md.slice(md.indexOf('## Relaunches'), md.indexOf('Spot guardian:'));
  expect(section.split('\n').filter((l) => l.startsWith('- '))).toEqual([
    '- `i-0aaa` (g4dn.xlarge@us-east-1a): interruption notice from the queue at 2026-12-06T10:00:00.000Z, during build; relaunched as `i-0bbb`',
    '- `i-0bbb`: stopped notice from the poll at 2026-12-06T10:20:00.000Z, during awaiting-approval; the Elastic IP went back to the old instance at 2026-12-06T10:20:01.000Z and approval was asked again; its golden image ami-0ccc discarded; relaunched as `i-0ddd`',
  ]);
  expect(renderReportMarkdown(completed)).not.toContain('## Relaunches');
});
