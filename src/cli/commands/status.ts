import type { Command } from 'commander';
import type { CliContext } from '../context';
import { EXIT } from '../errors';
import { followMigration, renderLive } from '../follow';
import { resolveId } from '../ids';
import { queryStatus, queryWorkflow } from '../query';
import { describeLedger, ledgerAt } from '../../shared/ledger';
import { guardianStatusQuery, routerStatusQuery, type GuardianStatus } from '../../shared/spot';

function renderGuardian(g: GuardianStatus): string {
  const lines = [
    `${g.workflowId}: ${g.state} ${g.instanceId}${g.market ? ` (${g.market})` : ''} in ${g.region}, ${g.replacements} replacement(s), run ${g.run}`,
  ];
  if (g.nextSpotTryAt) lines.push(`  on on-demand: tries Spot again at ${g.nextSpotTryAt}`);
  if (g.standby === 'warm') {
    const s = g.spare;
    lines.push(
      s
        ? `  warm spare: ${s.instanceId} ${s.instanceType}${s.availabilityZone ? `@${s.availabilityZone}` : ''} ${s.market}, checked ${s.checkedAt}`
        : '  warm spare: none ready yet',
    );
    const last = g.spareEvents?.at(-1);
    if (last && last.what !== 'checked' && last.what !== 'ready')
      lines.push(
        `    last: ${last.what}${last.instanceId ? ` ${last.instanceId}` : ''} at ${last.at}${last.error ? ` (${last.error})` : ''}`,
      );
  }
  // Counted up to now: the guardian's own clock stands at its last task.
  const ledger = g.ledgerBook ? ledgerAt(g.ledgerBook, Date.now()) : g.ledger;
  if (ledger) lines.push(`  ledger: ${describeLedger(ledger)}`);
  if (g.queue && !g.queue.ok)
    lines.push(
      `  the interruption queue ${g.queue.queueUrl} cannot be read since ${g.queue.since ?? '?'}: ${g.queue.error ?? 'unknown error'}`,
    );
  if (g.router && !g.router.ok)
    lines.push(`  the router could not be started at ${g.router.at}: ${g.router.error ?? ''}`);
  for (const e of g.events.slice(-10)) {
    lines.push(
      `  ${e.noticeAt} ${e.kind}${e.source ? ` (${e.source})` : ''}: ${e.oldInstanceId} → ${e.newInstanceId ?? '–'}${e.instanceType ? ` ${e.instanceType}${e.availabilityZone ? `@${e.availabilityZone}` : ''} ${e.market ?? ''}`.trimEnd() : ''} ${e.outcome}${e.viaSpare ? ' (the spare)' : ''}${e.recoveryMs !== undefined ? ` in ${(e.recoveryMs / 1000).toFixed(1)} s` : ''}${e.error ? ` (${e.error})` : ''}`,
    );
    if (e.pools?.skipped.length) lines.push(`    skipped: ${e.pools.skipped.join(', ')}`);
  }
  return lines.join('\n');
}

export function registerStatus(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('status')
    .description('show the phases of a migration (--json for scripts, --watch to follow)')
    .argument('<id>', 'workflow id or plan name')
    .option('--json', "print the status query's JSON")
    .option('--watch', 'follow it live until it ends')
    .action(async (id: string, opts: { json?: boolean; watch?: boolean }) => {
      const workflowId = resolveId(id);
      const client = await ctx.client();
      if (workflowId.startsWith('spot-guardian-') || workflowId.startsWith('spot-events-')) {
        if (workflowId.startsWith('spot-guardian-')) {
          const g = await queryWorkflow(client, workflowId, guardianStatusQuery);
          ctx.out(opts.json ? `${JSON.stringify(g, null, 2)}\n` : `${renderGuardian(g)}\n`);
        } else {
          ctx.out(`${JSON.stringify(await queryWorkflow(client, workflowId, routerStatusQuery), null, 2)}\n`);
        }
        return done(EXIT.ok);
      }
      if (opts.watch) {
        await followMigration(client.workflow.getHandle(workflowId), { tty: ctx.isTTY, write: ctx.out });
        return done(EXIT.ok);
      }
      const status = await queryStatus(client, workflowId);
      ctx.out(opts.json ? `${JSON.stringify(status, null, 2)}\n` : `${renderLive(status)}\n`);
      done(EXIT.ok);
    });
}
