import { Option, type Command } from 'commander';
import { NOTICE_KINDS, guardianStatusQuery, interruptionSignal, type NoticeKind } from '../../shared/spot';
import type { CliContext } from '../context';
import { EXIT } from '../errors';
import { resolveId } from '../ids';

export function registerInterrupt(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('interrupt')
    .description(
      'tell the Spot guardian its instance is being interrupted: it replaces it now (a rehearsal, or a notice from another tool)',
    )
    .argument('<id>', 'guardian workflow id (spot-guardian-<name>) or plan name')
    .addOption(new Option('--kind <kind>', 'what kind of notice').choices([...NOTICE_KINDS]).default('manual'))
    .option('--instance <id>', 'the instance (default: the one the guardian guards now)')
    .action(async (id: string, opts: { kind: NoticeKind; instance?: string }) => {
      const handle = (await ctx.client()).workflow.getHandle(resolveId(id, 'guardian'));
      const instanceId = opts.instance ?? (await handle.query(guardianStatusQuery)).instanceId;
      await handle.signal(interruptionSignal, {
        instanceId,
        kind: opts.kind,
        source: 'cli',
        at: new Date().toISOString(),
      });
      ctx.out(
        `sent ${opts.kind} for ${instanceId} to ${handle.workflowId}; follow it with: migration status ${handle.workflowId}\n`,
      );
      done(EXIT.ok);
    });
}
