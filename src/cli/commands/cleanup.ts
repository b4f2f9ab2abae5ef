import { WorkflowNotFoundError } from '@temporalio/client';
import type { Command } from 'commander';
import { findLeftovers, removeLeftovers } from '../../activities/cleanup';
import { createAwsClients, type AwsClients } from '../../aws/clients';
import { DURATION_PATTERN, durationMs } from '../../plan/duration';
import { loadPlanFile } from '../../plan/load';
import type { CliContext } from '../context';
import { EXIT, UsageError } from '../errors';

/**
 * `migration cleanup --plan FILE [--apply] [--older-than 1h]`: lists what the tool made for the
 * plan that no longer serves (instances, images, snapshots, security-group rules), found by their
 * tags; removes it only with --apply. Talks to AWS directly (the SDK's default chain).
 */
export function registerCleanup(
  program: Command,
  ctx: CliContext,
  done: (code: number) => void,
  aws: () => AwsClients = () => createAwsClients(),
): void {
  program
    .command('cleanup')
    .description(
      'list what this tool made for a plan that no longer serves (instances, images, snapshots, rules); remove it with --apply',
    )
    .requiredOption('--plan <file>', 'the plan, YAML or JSON')
    .option('--apply', 'remove what is listed (default: only list it)')
    .option(
      '--older-than <duration>',
      'leave instances launched more recently alone: a migration or a Spot replacement may be using them',
      '1h',
    )
    .action(async (opts: { plan: string; apply?: boolean; olderThan: string }) => {
      if (!DURATION_PATTERN.test(opts.olderThan))
        throw new UsageError(`--older-than: expected a duration such as 30m, 1h or 2d, got '${opts.olderThan}'`);
      const plan = await loadPlanFile(opts.plan);
      const clients = aws();
      // A warm spare serves while its guardian runs: Temporal is asked; when it cannot be, the spare stays.
      const guardianRuns = async (guardianId: string): Promise<boolean | undefined> => {
        try {
          const client = await ctx.client();
          return (await client.workflow.getHandle(guardianId).describe()).status.name === 'RUNNING';
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) return false;
          ctx.err(
            `could not ask Temporal whether ${guardianId} runs, so its warm spare is kept: ${(err as Error).message}\n`,
          );
          return undefined;
        }
      };
      const leftovers = await findLeftovers(clients, plan, { olderThanMs: durationMs(opts.olderThan), guardianRuns });
      if (leftovers.length === 0) {
        ctx.out(`nothing left over for ${plan.name} in ${plan.region}\n`);
        return done(EXIT.ok);
      }
      ctx.out(
        `${opts.apply ? 'removing' : 'left over'} for ${plan.name} in ${plan.region} (never the source instance, the one behind the Elastic IP, or backup images):\n`,
      );
      for (const l of leftovers) ctx.out(`  ${l.kind.padEnd(8)} ${l.id}  ${l.why}\n`);
      if (!opts.apply) {
        ctx.out('nothing was changed; run again with --apply to remove these\n');
        return done(EXIT.ok);
      }
      await removeLeftovers(clients, plan, leftovers, (line) => ctx.out(`  ${line}\n`));
      done(EXIT.ok);
    });
}
