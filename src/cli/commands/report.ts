import { rename, stat, writeFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { ApplicationFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import { Option, type Command } from 'commander';
import { renderPhaseTable, renderReportMarkdown, type MigrationReport } from '../../shared/report';
import type { CliContext } from '../context';
import { EXIT, UsageError } from '../errors';
import { resolveId } from '../ids';
import { queryStatus } from '../query';

/** The report of a closed migration: its result, or the report its failure carries. */
export async function fetchReport(client: Client, workflowId: string): Promise<MigrationReport | undefined> {
  const handle = client.workflow.getHandle(workflowId);
  const desc = await handle.describe();
  if (desc.status.name === 'RUNNING') return undefined;
  try {
    return (await handle.result()) as MigrationReport;
  } catch (err) {
    const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.details?.[0]) return cause.details[0] as MigrationReport;
    throw err;
  }
}

/** The format a report file is written in: `--format` when given, else from its extension. */
export function formatOf(file: string, format?: 'md' | 'json'): 'md' | 'json' {
  return format ?? (extname(file).toLowerCase() === '.json' ? 'json' : 'md');
}

/** Fails early (exit 2, before Temporal is asked) when the report's file cannot be written there. */
export async function checkOutFile(file: string, flag: string): Promise<void> {
  const dir = dirname(resolve(file));
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new UsageError(`${flag} ${file}: the folder ${dir} does not exist`);
  const existing = await stat(file).catch(() => undefined);
  if (existing?.isDirectory()) throw new UsageError(`${flag} ${file}: is a folder, expected a file name`);
}

/** Writes the report whole or not at all (a temporary file renamed over it). */
export async function writeReport(report: MigrationReport, file: string, format: 'md' | 'json'): Promise<void> {
  const body = format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : renderReportMarkdown(report);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, body);
  await rename(tmp, file);
}

export function registerReport(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('report')
    .description('print the migration report (Markdown or JSON)')
    .argument('<id>', 'workflow id or plan name')
    .addOption(
      new Option('--format <format>', 'md or json (default md; with --out, from its extension)').choices([
        'md',
        'json',
      ]),
    )
    .option('--out <file>', 'write the report to this file instead (kept outside Temporal, after its retention)')
    .action(async (id: string, opts: { format?: 'md' | 'json'; out?: string }) => {
      const workflowId = resolveId(id);
      if (opts.out) await checkOutFile(opts.out, '--out');
      const client = await ctx.client();
      const report = await fetchReport(client, workflowId);
      if (report && opts.out) {
        const format = formatOf(opts.out, opts.format);
        await writeReport(report, opts.out, format);
        ctx.out(`${workflowId}: report (${format}, outcome ${report.outcome}) written to ${opts.out}\n`);
        return done(report.outcome === 'completed' || report.outcome === 'approval timed out' ? EXIT.ok : EXIT.failed);
      }
      if (!report && opts.out) {
        const status = await queryStatus(client, workflowId);
        ctx.err(`${workflowId} is still running (${status.phase}): no report to write to ${opts.out} yet\n`);
        return done(EXIT.failed);
      }
      if (!report) {
        const status = await queryStatus(client, workflowId);
        ctx.out(
          (opts.format ?? 'md') === 'json'
            ? `${JSON.stringify({ running: true, status }, null, 2)}\n`
            : `# ${workflowId} is still running (${status.phase})\n\n${renderPhaseTable(status.phases)}\n`,
        );
        return done(EXIT.ok);
      }
      ctx.out(opts.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : renderReportMarkdown(report));
      done(report.outcome === 'completed' || report.outcome === 'approval timed out' ? EXIT.ok : EXIT.failed);
    });
}
