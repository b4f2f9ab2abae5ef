import type { Command } from 'commander';
import { onDemandTable } from '../../activities/pricing';
import { describePlan } from '../../plan/describe';
import { loadPlanFile } from '../../plan/load';
import type { CliContext } from '../context';
import { EXIT } from '../errors';

export function registerPlan(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('plan')
    .description('validate a plan and print what a migration would do, touching nothing')
    .argument('<file>', 'the plan, YAML or JSON')
    .option('--json', 'print the validated plan with its defaults as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const plan = await loadPlanFile(file);
      ctx.out(opts.json ? `${JSON.stringify(plan, null, 2)}\n` : `${describePlan(plan, onDemandTable)}\n`);
      done(EXIT.ok);
    });
}
