/**
 * The migration report: the data (the workflow's result) and its Markdown rendering.
 * Pure: the workflow builds it, the CLI renders it.
 */
import type { ApprovalRecord, Figure, MigrationStatus, PhaseRecord, Relaunch } from './migration';

export interface MachineFacts {
  instanceId?: string;
  instanceType?: string;
  market?: string;
  vcpus?: number;
  memoryMiB?: number;
  gpus?: string;
  publicIp?: string;
  availabilityZone?: string;
}

export interface RuleRow {
  protocol: string;
  fromPort: number;
  toPort: number;
  cidr: string;
  note: string;
}

export interface CostRow {
  label: string;
  instanceType: string;
  market: 'on-demand' | 'spot';
  perHour: Figure;
  perMonth: Figure;
}

export interface MigrationReport {
  planName: string;
  workflowId: string;
  region: string;
  /** `cancelled`: cancelled after the cut-over, when the migration already stood (nothing rolled back). */
  outcome: 'completed' | 'approval timed out' | 'rolled back' | 'failed' | 'cancelled';
  startedAt: string;
  endedAt: string;
  before: MachineFacts;
  after: MachineFacts;
  elasticIp?: string;
  phases: PhaseRecord[];
  latency?: Record<string, Figure>;
  latencyLimits?: Record<string, Figure>;
  synthesis?: { seconds: Figure; limit: Figure };
  gpu?: Record<string, Figure>;
  securityGroup?: { groupId: string; rules: RuleRow[] };
  cost: { rows: CostRow[]; priceTableDate: string; hoursPerMonth: number };
  approval?: ApprovalRecord;
  /** `deregistered`: older golden images of the plan removed with their snapshots (spot.keepGoldenImages). */
  images: { backup?: string; golden?: string; deregistered?: string[] };
  compensations: MigrationStatus['compensations'];
  warnings: string[];
  error?: MigrationStatus['error'];
  guardianWorkflowId?: string;
  /** New Spot instances lost before the migration stood, and their relaunches. */
  relaunches?: Relaunch[];
}

/** One relaunch, as the report says it. */
export function relaunchLine(l: Relaunch): string {
  const what = `\`${l.instanceId}\`${l.pool ? ` (${l.pool})` : ''}: ${l.kind} notice${l.source ? ` from the ${l.source}` : ''} at ${l.noticeAt}, during ${l.during}`;
  const back = l.elasticIpBackAt
    ? `; the Elastic IP went back to the old instance at ${l.elasticIpBackAt} and approval was asked again`
    : '';
  const golden = l.goldenDiscarded?.length ? `; its golden image ${l.goldenDiscarded.join(', ')} discarded` : '';
  const next = l.replacedBy ? `; relaunched as \`${l.replacedBy}\`` : '';
  return `${what}${back}${golden}${next}`;
}

export function formatFigure(f: Figure | undefined): string {
  if (!f || f.value === null || f.value === undefined)
    return f?.source === 'not reported by the instance' ? 'not reported by the instance' : '–';
  const value =
    typeof f.value === 'number'
      ? Number.isInteger(f.value)
        ? String(f.value)
        : f.value.toFixed(f.value < 0.01 ? 5 : 2)
      : f.value;
  return `${value}${f.unit ? ` ${f.unit}` : ''} (${f.source})`;
}

function table(header: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '–' : `${(ms / 1000).toFixed(1)} s`;
}

/** A compact phase table: the Web UI's current details and the report both use it. */
export function renderPhaseTable(phases: PhaseRecord[]): string {
  return table(
    ['#', 'phase', 'state', 'attempts', 'time', 'key figure', 'last error'],
    phases.map((p, i) => {
      const key = Object.entries(p.figures)[0];
      return [
        String(i),
        p.title,
        p.state,
        p.attempts ? String(p.attempts) : '–',
        seconds(p.durationMs),
        key ? `${key[0]}: ${formatFigure(key[1])}` : '',
        p.lastError ? p.lastError.slice(0, 160) : '',
      ];
    }),
  );
}

export function renderReportMarkdown(r: MigrationReport): string {
  const out: string[] = [];
  out.push(`# Migration report: ${r.planName}`);
  out.push('');
  out.push(`- Outcome: **${r.outcome}**`);
  out.push(`- Workflow: \`${r.workflowId}\` in ${r.region}`);
  out.push(`- From ${r.startedAt} to ${r.endedAt}`);
  if (r.elasticIp) out.push(`- Elastic IP: ${r.elasticIp}`);
  if (r.error) out.push(`- Error: ${r.error.type}${r.error.phase ? ` in ${r.error.phase}` : ''}: ${r.error.message}`);
  out.push('');
  out.push('## Before and after');
  out.push('');
  const row = (label: string, pick: (m: MachineFacts) => string | number | undefined) => [
    label,
    String(pick(r.before) ?? '–'),
    String(pick(r.after) ?? '–'),
  ];
  out.push(
    table(
      ['', 'before', 'after'],
      [
        row('instance', (m) => m.instanceId),
        row('type', (m) => m.instanceType),
        row('market', (m) => m.market),
        row('vCPU', (m) => m.vcpus),
        row('memory', (m) => (m.memoryMiB ? `${(m.memoryMiB / 1024).toFixed(0)} GiB` : undefined)),
        row('GPU', (m) => m.gpus || 'none'),
        row('availability zone', (m) => m.availabilityZone),
        row('public address', (m) => m.publicIp),
      ],
    ),
  );
  out.push('');
  out.push('Instance facts come from DescribeInstances and DescribeInstanceTypes.');
  out.push('');
  out.push('## Phases');
  out.push('');
  out.push(renderPhaseTable(r.phases));
  out.push('');
  out.push('## Measured performance');
  out.push('');
  if (r.synthesis)
    out.push(
      `- Speech synthesis (voice clone request): ${formatFigure(r.synthesis.seconds)}; limit ${formatFigure(r.synthesis.limit)}`,
    );
  if (r.latency) {
    out.push('');
    out.push(
      table(
        ['latency', 'value', 'limit'],
        Object.entries(r.latency).map(([k, f]) => [k, formatFigure(f), formatFigure(r.latencyLimits?.[k])]),
      ),
    );
  }
  if (!r.synthesis && !r.latency)
    out.push('Not measured (the run ended before the performance test, or the plan sets no checks).');
  out.push('');
  out.push('## GPU');
  out.push('');
  if (r.gpu)
    out.push(
      table(
        ['fact', 'value'],
        Object.entries(r.gpu).map(([k, f]) => [k, formatFigure(f)]),
      ),
    );
  else out.push('Not read (the run ended before environment setup).');
  out.push('');
  out.push('## Security group');
  out.push('');
  if (r.securityGroup) {
    out.push(`Ingress of \`${r.securityGroup.groupId}\` after the run:`);
    out.push('');
    out.push(
      table(
        ['protocol', 'ports', 'from', 'note'],
        r.securityGroup.rules.map((x) => [
          x.protocol,
          x.fromPort === x.toPort ? String(x.fromPort) : `${x.fromPort}-${x.toPort}`,
          x.cidr,
          x.note,
        ]),
      ),
    );
  } else out.push('Not changed.');
  out.push('');
  out.push('## Cost per month');
  out.push('');
  out.push(
    table(
      ['', 'type', 'market', 'per hour', `per month (${r.cost.hoursPerMonth} h)`],
      r.cost.rows.map((c) => [c.label, c.instanceType, c.market, formatFigure(c.perHour), formatFigure(c.perMonth)]),
    ),
  );
  out.push('');
  out.push(
    `On-demand prices come from the price table dated ${r.cost.priceTableDate}; Spot prices are the lowest current price from DescribeSpotPriceHistory.`,
  );
  out.push('');
  out.push('## Approval');
  out.push('');
  if (r.approval) {
    out.push(
      `- Decision: **${r.approval.decision}**${r.approval.by ? ` by ${r.approval.by}` : ''} at ${r.approval.at}${r.approval.via ? ` (${r.approval.via})` : ''}`,
    );
    if (r.approval.comment) out.push(`- Comment: ${r.approval.comment}`);
  } else out.push('No decision was asked for.');
  if (r.images.backup || r.images.golden) {
    out.push('');
    out.push('## Images');
    out.push('');
    if (r.images.backup) out.push(`- Backup of the old instance: \`${r.images.backup}\``);
    if (r.images.golden) out.push(`- Golden image of the new instance: \`${r.images.golden}\``);
    if (r.images.deregistered?.length)
      out.push(
        `- Older golden images deregistered with their snapshots: ${r.images.deregistered.map((id) => `\`${id}\``).join(', ')}`,
      );
  }
  if (r.relaunches?.length) {
    out.push('');
    out.push('## Relaunches');
    out.push('');
    out.push('New Spot instances lost before the migration stood, each replaced in another pool:');
    out.push('');
    for (const l of r.relaunches) out.push(`- ${relaunchLine(l)}`);
  }
  if (r.guardianWorkflowId) {
    out.push('');
    out.push(`Spot guardian: \`${r.guardianWorkflowId}\` watches the new instance.`);
  }
  if (r.compensations.length > 0) {
    out.push('');
    out.push('## Rollback');
    out.push('');
    for (const c of r.compensations) out.push(`- ${c.name}: ${c.state}${c.detail ? ` (${c.detail})` : ''}`);
  }
  if (r.warnings.length > 0) {
    out.push('');
    out.push('## Warnings');
    out.push('');
    for (const w of r.warnings) out.push(`- ${w}`);
  }
  out.push('');
  return out.join('\n');
}
