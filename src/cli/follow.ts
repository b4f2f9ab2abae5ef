import type { WorkflowHandle } from '@temporalio/client';
import { PHASES, statusQuery, type MigrationStatus, type PhaseRecord } from '../shared/migration';
import { formatFigure, relaunchLine } from '../shared/report';

function elapsed(p: PhaseRecord, now: number): string {
  const ms = p.durationMs ?? (p.startedAt ? now - Date.parse(p.startedAt) : undefined);
  return ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`;
}

function keyFigure(p: PhaseRecord): string {
  const first = Object.entries(p.figures)[0];
  return first ? `${first[0]}=${formatFigure(first[1])}` : '';
}

const MARK: Record<string, string> = {
  pending: ' ',
  running: '…',
  succeeded: '✔',
  failed: '✘',
  skipped: '-',
  compensated: '↺',
};

/** Why the run failed or was rejected, on one line. */
function errorLine(e: NonNullable<MigrationStatus['error']>): string {
  return `error${e.phase ? ` in ${e.phase}` : ''}: ${e.message.split('\n')[0].slice(0, 200)}`;
}

/** The live view on a terminal: one line a phase, redrawn in place. */
export function renderLive(s: MigrationStatus, now = Date.now()): string {
  const lines = [`${s.workflowId}: ${s.phase}${s.newInstanceId ? ` · new ${s.newInstanceId}` : ''}`];
  for (const p of s.phases) {
    lines.push(
      `  ${MARK[p.state] ?? '?'} ${p.title.padEnd(24)} ${p.state.padEnd(11)} ${p.attempts > 1 ? `attempt ${p.attempts} ` : ''}${elapsed(p, now).padStart(8)}  ${keyFigure(p)}${p.lastError ? `  ${p.lastError.split('\n')[0].slice(0, 100)}` : ''}`,
    );
  }
  if (s.phase === 'awaiting-approval')
    lines.push(
      `  waiting for approval: migration approve ${s.workflowId} --by NAME   (or "Send a Signal" → approve in the Web UI)`,
    );
  if (s.golden)
    lines.push(
      `  golden image of ${s.golden.instanceId}: ${s.golden.state}${s.golden.imageId ? ` ${s.golden.imageId}` : ''}`,
    );
  for (const l of s.relaunches ?? []) lines.push(`  relaunch: ${relaunchLine(l)}`);
  if (s.error) lines.push(`  ${errorLine(s.error)}`);
  for (const c of s.compensations) lines.push(`  rollback: ${c.name}: ${c.state}`);
  const f = s.undoFailing;
  if (f)
    lines.push(
      `  rollback: ${f.name}: FAILING since ${f.since} (${f.tries} tries): ${f.lastError.split('\n')[0].slice(0, 160)}; next try ${f.nextTryAt}`,
    );
  return lines.join('\n');
}

/** Plain lines for logs and pipes: one line each time a phase changes state. */
export function plainChanges(prev: MigrationStatus | undefined, s: MigrationStatus): string[] {
  const out: string[] = [];
  const t = new Date().toISOString().slice(11, 19);
  s.phases.forEach((p, i) => {
    const before = prev?.phases[i];
    if (before && before.state === p.state && before.attempts === p.attempts) return;
    if (!before && p.state === 'pending') return;
    out.push(
      `${t} ${p.name} ${p.state}${p.attempts ? ` attempts=${p.attempts}` : ''}${p.durationMs !== undefined ? ` time=${(p.durationMs / 1000).toFixed(1)}s` : ''}${keyFigure(p) ? ` ${keyFigure(p)}` : ''}${p.lastError && p.state === 'failed' ? ` error="${p.lastError.split('\n')[0].slice(0, 200)}"` : ''}`,
    );
  });
  // A phase's own line already says it began; the status is told when it is no phase.
  if (prev?.phase !== s.phase && !PHASES.some((p) => p.name === s.phase))
    out.push(`${t} status ${s.phase}${s.error && !prev?.error ? ` ${errorLine(s.error)}` : ''}`);
  // A relaunch is told when it starts, and again once its new instance runs.
  (s.relaunches ?? []).forEach((l, i) => {
    const before = prev?.relaunches?.[i];
    if (before?.replacedBy || (before && !l.replacedBy)) return;
    out.push(`${t} relaunch ${relaunchLine(l)}`);
  });
  s.compensations
    .slice(prev?.compensations.length ?? 0)
    .forEach((c) => out.push(`${t} rollback ${c.name}: ${c.state}`));
  return out;
}

/** Every phase in order with its final state: what a log or pipe ends with. */
export function phaseSummary(s: MigrationStatus): string[] {
  const width = Math.max(...s.phases.map((p) => p.name.length));
  return [
    `phases of ${s.workflowId} (${s.phase}):`,
    ...s.phases.map(
      (p, i) =>
        `  ${String(i).padStart(2)} ${p.name.padEnd(width)} ${p.state}${p.attempts ? ` attempts=${p.attempts}` : ''}${p.durationMs !== undefined ? ` time=${(p.durationMs / 1000).toFixed(1)}s` : ''}`,
    ),
  ];
}

export interface FollowOptions {
  intervalMs?: number;
  tty?: boolean;
  write?: (s: string) => void;
  /** What the reader has already seen: plain output starts with the changes since then. */
  since?: MigrationStatus;
}

/** Follows a migration until it closes; returns its last status. */
export async function followMigration(
  handle: WorkflowHandle,
  options: FollowOptions = {},
): Promise<MigrationStatus | undefined> {
  const write = options.write ?? ((s: string) => process.stdout.write(s));
  const tty = options.tty ?? Boolean(process.stdout.isTTY);
  const interval = options.intervalMs ?? 1000;
  let prev: MigrationStatus | undefined = options.since;
  let drawn = 0;
  const show = (s: MigrationStatus) => {
    if (tty) {
      const text = renderLive(s);
      write(`${drawn ? `\x1b[${drawn}F\x1b[J` : ''}${text}\n`);
      drawn = text.split('\n').length;
    } else {
      for (const line of plainChanges(prev, s)) write(`${line}\n`);
    }
    prev = s;
  };
  for (;;) {
    const running = (await handle.describe()).status.name === 'RUNNING';
    try {
      show(await handle.query(statusQuery));
    } catch {
      // No worker has picked the run up yet; the next round will tell.
    }
    if (!running) {
      // The live view already shows every phase; plain output ends with the whole list.
      if (!tty && prev) for (const line of phaseSummary(prev)) write(`${line}\n`);
      return prev;
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
