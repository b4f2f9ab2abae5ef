import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Command } from 'commander';
import { loadPlanFile } from '../../plan/load';
import { TASK_QUEUE, migrationWorkflowId } from '../../shared/constants';
import type { MigrationInput } from '../../shared/migration';
import type { migrateToGpu } from '../../workflows';
import type { CliContext } from '../context';
import { webUiLink } from '../context';
import { EXIT } from '../errors';
import { followMigration } from '../follow';

export function registerStart(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('start')
    .description('start the migration a plan describes (workflow id migrate-<plan name>)')
    .requiredOption('--plan <file>', 'the plan, YAML or JSON')
    .option('--follow', 'follow the phases live until the migration ends')
    .option('--keep-failed', 'keep the new instance after a rollback, for debugging')
    .option('--task-queue <name>', "the workers' task queue", TASK_QUEUE)
    .action(async (opts: { plan: string; follow?: boolean; keepFailed?: boolean; taskQueue: string }) => {
      const plan = await loadPlanFile(opts.plan);
      const client = await ctx.client();
      const workflowId = migrationWorkflowId(plan.name);
      const input: MigrationInput = { plan, keepFailed: Boolean(opts.keepFailed) };
      let handle;
      try {
        handle = await client.workflow.start<typeof migrateToGpu>('migrateToGpu', {
          taskQueue: opts.taskQueue,
          workflowId,
          args: [input],
        });
        ctx.out(`started ${workflowId}\n`);
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        handle = client.workflow.getHandle(workflowId);
        ctx.out(`${workflowId} is already running; not starting another${opts.follow ? ', following that run' : ''}\n`);
      }
      ctx.out(`Web UI: ${webUiLink(client.options.namespace, workflowId)}\n`);
      ctx.out(
        `approve: migration approve ${workflowId} --by NAME   reject: migration reject ${workflowId} --by NAME --reason TEXT\n`,
      );
      if (!opts.follow) return done(EXIT.ok);
      await followMigration(handle, { tty: ctx.isTTY, write: ctx.out });
      const final = await handle.describe();
      ctx.out(`${workflowId}: ${final.status.name.toLowerCase()}\n`);
      done(final.status.name === 'COMPLETED' ? EXIT.ok : EXIT.failed);
    });
}
