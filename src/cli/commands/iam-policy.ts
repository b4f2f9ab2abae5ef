import type { Command } from 'commander';
import { eventsSetupPolicy, iamPolicy, type PolicyDocument } from '../../aws/permissions';
import { loadPlanFile } from '../../plan/load';
import type { Plan } from '../../plan/schema';
import type { CliContext } from '../context';
import { EXIT } from '../errors';
import { EVENT_RULES, eventsNames } from './events';

/**
 * The policy of `migration events setup|remove`: with a plan, narrowed to its region, its queue
 * and dead-letter queue (and the account its queue URL names); the three rules always by name.
 */
export function setupPolicyOf(plan?: Pick<Plan, 'region' | 'spot'>): PolicyDocument {
  if (!plan) return eventsSetupPolicy({ ruleNames: EVENT_RULES.map((r) => r.name) });
  const names = eventsNames(plan);
  return eventsSetupPolicy({
    ruleNames: names.ruleNames,
    region: names.region,
    queueNames: [names.queueName, names.dlqName],
    ...(names.urlAccount ? { account: names.urlAccount } : {}),
  });
}

/**
 * `migration iam-policy [--plan FILE] [--setup]`: the worker's least-privilege IAM policy, as
 * JSON; with --setup, the policy of `migration events setup|remove` instead.
 */
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
    .option(
      '--setup',
      "print instead the policy of `migration events setup|remove` (the Spot event queues and rules; not the worker's)",
    )
    .action(async (opts: { plan?: string; setup?: boolean }) => {
      const plan = opts.plan ? await loadPlanFile(opts.plan) : undefined;
      const policy = opts.setup ? setupPolicyOf(plan) : iamPolicy(plan);
      ctx.out(`${JSON.stringify(policy, null, 2)}\n`);
      done(EXIT.ok);
    });
}
