import type { Command } from 'commander';
import { iamPolicy } from '../../aws/permissions';
import { loadPlanFile } from '../../plan/load';
import type { CliContext } from '../context';
import { EXIT } from '../errors';

/** `migration iam-policy [--plan FILE]`: the worker's least-privilege IAM policy, as JSON. */
export function registerIamPolicy(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('iam-policy')
    .description(
      "print the IAM policy of exactly the AWS actions the worker uses (attach it to the worker's role); touches nothing",
    )
    .option(
      '--plan <file>',
      "narrow resources to one plan: its region, SSM parameter, queue, and termination of the plan's own instances only",
    )
    .action(async (opts: { plan?: string }) => {
      const plan = opts.plan ? await loadPlanFile(opts.plan) : undefined;
      ctx.out(`${JSON.stringify(iamPolicy(plan), null, 2)}\n`);
      done(EXIT.ok);
    });
}
