import {
  WorkflowExecutionAlreadyStartedError,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import type { Command } from 'commander';
import { loadPlanFile } from '../../plan/load';
import { TASK_QUEUE, migrationWorkflowId } from '../../shared/constants';
import type { MigrationInput } from '../../shared/migration';
import type { migrateToGpu } from '../../workflows';
import type { CliContext } from '../context';
import { webUiLink } from '../context';
import { EXIT, RefusedError, UsageError } from '../errors';
import { checkOutFile, fetchReport, formatOf, writeReport } from './report';
import { queryStatus } from '../query';
import { followMigration } from '../follow';
import { startMigrationRun } from '../start-run';

export function registerStart(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('start')
    .description('start the migration a plan describes (workflow id migrate-<plan name>)')
    .requiredOption('--plan <file>', 'the plan, YAML or JSON')
    .option('--follow', 'follow the phases live until the migration ends')
    .option(
      '--report-out <file>',
      'with --follow: write the report to this file at the end (.json: JSON, else Markdown)',
    )
    .option('--keep-failed', 'keep the new instance after a rollback, for debugging')
    .option('--task-queue <name>', "the workers' task queue", TASK_QUEUE)
    .action(
      async (opts: { plan: string; follow?: boolean; keepFailed?: boolean; taskQueue: string; reportOut?: string }) => {
        if (opts.reportOut && !opts.follow)
          throw new UsageError('--report-out needs --follow (or run: migration report ID --out FILE)');
        if (opts.reportOut) await checkOutFile(opts.reportOut, '--report-out');
        const plan = await loadPlanFile(opts.plan);
        const client = await ctx.client();
        const workflowId = migrationWorkflowId(plan.name);
        const input: MigrationInput = { plan, keepFailed: Boolean(opts.keepFailed) };
        let handle;
        try {
          const started = await startMigrationRun(client, input, {
            taskQueue: opts.taskQueue,
            // A new run only after a failed, rolled-back, rejected, cancelled, terminated or timed-out one.
            workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
          });
          handle = started.handle;
          ctx.out(`started ${workflowId}\n`);
          if (started.unindexed) ctx.err(`warning: ${started.unindexed}\n`);
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
          handle = client.workflow.getHandle<typeof migrateToGpu>(workflowId);
          const described = await handle.describe();
          if (described.status.name === 'COMPLETED') throw new RefusedError(await completedAlready(handle, described));
          if (described.status.name !== 'RUNNING') throw err;
          const phase = await queryStatus(client, workflowId).then(
            (st) => st.phase,
            (e: Error) => `unknown: ${e.message}`,
          );
          ctx.out(
            `${workflowId} is already running (since ${described.startTime.toISOString()}, phase: ${phase}); not starting another${opts.follow ? ', following that run' : ''}\n`,
          );
        }
        ctx.out(`Web UI: ${await webUiLink(client.options.namespace, workflowId)}\n`);
        ctx.out(
          `approve: migration approve ${workflowId} --by NAME   reject: migration reject ${workflowId} --by NAME --reason TEXT\n`,
        );
        if (!opts.follow) return done(EXIT.ok);
        await followMigration(handle, { tty: ctx.isTTY, write: ctx.out });
        const final = await handle.describe();
        ctx.out(`${workflowId}: ${final.status.name.toLowerCase()}\n`);
        if (opts.reportOut) {
          const report = await fetchReport(client, workflowId).catch(() => undefined);
          if (report) {
            await writeReport(report, opts.reportOut, formatOf(opts.reportOut));
            ctx.out(`report written to ${opts.reportOut}\n`);
          } else
            ctx.err(
              `no report to write to ${opts.reportOut}: the run ended ${final.status.name.toLowerCase()} without one\n`,
            );
        }
        done(final.status.name === 'COMPLETED' ? EXIT.ok : EXIT.failed);
      },
    );
}

/** Why a completed migration is not started again, and what to do instead. */
async function completedAlready(
  handle: WorkflowHandle<typeof migrateToGpu>,
  described: WorkflowExecutionDescription,
): Promise<string> {
  const report = await handle.result().catch(() => undefined);
  const serving = report?.after.instanceId;
  return [
    `${handle.workflowId} completed at ${described.closeTime?.toISOString() ?? 'an unknown time'}${report ? ` (${report.outcome})` : ''}: a completed migration is not started again.`,
    serving ? `The service runs on ${serving} behind the Elastic IP.` : undefined,
    `What it did: migration report ${handle.workflowId}.`,
    `To move the service again, ${report?.guardianWorkflowId ? `stop its guardian first (temporal workflow signal --workflow-id ${report.guardianWorkflowId} --name stop), then ` : ''}start a plan under another name whose source.instanceId is the instance that serves now${serving ? ` (${serving})` : ''}.`,
  ]
    .filter(Boolean)
    .join('\n');
}
