import { WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import { decideUpdate, type Decision } from '../../shared/migration';
import type { CliContext } from '../context';
import { EXIT, RefusedError, UsageError } from '../errors';
import { resolveId } from '../ids';

async function send(ctx: CliContext, id: string, decision: Decision): Promise<number> {
  // Everything that can be checked here is checked before connecting.
  const workflowId = resolveId(id);
  if (!decision.by.trim()) throw new UsageError('--by: expected the name of the person deciding');
  const handle = (await ctx.client()).workflow.getHandle(workflowId);
  let record;
  try {
    record = await handle.executeUpdate(decideUpdate, { args: [decision] });
  } catch (err) {
    // A closed run answers an update with "not found"; say what it really is.
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    const described = await handle.describe().catch(() => undefined);
    if (!described) throw err;
    throw new RefusedError(
      `${workflowId} has already ended (${described.status.name.toLowerCase()}); no decision is awaited`,
    );
  }
  ctx.out(`${record.decision} by ${record.by} at ${record.at}\n`);
  return EXIT.ok;
}

export function registerDecide(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('approve')
    .description('approve the cut-over: the old instance is imaged and stopped')
    .argument('<id>', 'workflow id or plan name')
    .requiredOption('--by <name>', 'who approves')
    .option('--comment <text>', 'a comment for the report')
    .action(async (id: string, opts: { by: string; comment?: string }) => {
      done(
        await send(ctx, id, { decision: 'approve', by: opts.by, ...(opts.comment ? { comment: opts.comment } : {}) }),
      );
    });
  program
    .command('reject')
    .description('reject the cut-over: everything is rolled back, the old instance keeps serving')
    .argument('<id>', 'workflow id or plan name')
    .requiredOption('--by <name>', 'who rejects')
    .requiredOption('--reason <text>', 'why')
    .action(async (id: string, opts: { by: string; reason: string }) => {
      if (!opts.reason.trim()) throw new UsageError('--reason: expected why the migration is rejected');
      done(await send(ctx, id, { decision: 'reject', by: opts.by, reason: opts.reason }));
    });
}
