import { ApplicationFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import { Option, type Command } from 'commander';
import { renderPhaseTable, renderReportMarkdown, type MigrationReport } from '../../shared/report';
import type { CliContext } from '../context';
import { EXIT } from '../errors';
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

export function registerReport(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('report')
    .description('print the migration report (Markdown or JSON)')
    .argument('<id>', 'workflow id or plan name')
    .addOption(new Option('--format <format>', 'md or json').choices(['md', 'json']).default('md'))
    .action(async (id: string, opts: { format: 'md' | 'json' }) => {
      const workflowId = resolveId(id);
      const client = await ctx.client();
      const report = await fetchReport(client, workflowId);
      if (!report) {
        const status = await queryStatus(client, workflowId);
        ctx.out(
          opts.format === 'json'
            ? `${JSON.stringify({ running: true, status }, null, 2)}\n`
            : `# ${workflowId} is still running (${status.phase})\n\n${renderPhaseTable(status.phases)}\n`,
        );
        return done(EXIT.ok);
      }
      ctx.out(opts.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : renderReportMarkdown(report));
      done(report.outcome === 'completed' || report.outcome === 'approval timed out' ? EXIT.ok : EXIT.failed);
    });
}
