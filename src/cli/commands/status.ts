import type { Command } from 'commander';
import type { CliContext } from '../context';
import { EXIT } from '../errors';
import { followMigration, renderLive } from '../follow';
import { resolveId } from '../ids';
import { queryStatus } from '../query';

export function registerStatus(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('status')
    .description('show the phases of a migration (--json for scripts, --watch to follow)')
    .argument('<id>', 'workflow id or plan name')
    .option('--json', 'print the status query\'s JSON')
    .option('--watch', 'follow it live until it ends')
    .action(async (id: string, opts: { json?: boolean; watch?: boolean }) => {
      const workflowId = resolveId(id);
      const client = await ctx.client();
      if (opts.watch) {
        await followMigration(client.workflow.getHandle(workflowId), { tty: ctx.isTTY, write: ctx.out });
        return done(EXIT.ok);
      }
      const status = await queryStatus(client, workflowId);
      ctx.out(opts.json ? `${JSON.stringify(status, null, 2)}\n` : `${renderLive(status)}\n`);
      done(EXIT.ok);
    });
}
