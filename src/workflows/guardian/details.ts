import { describeLedger } from '../../shared/ledger';
import type { GuardianStatus } from '../../shared/spot';

/** The guardian's Web UI details: its instance, its queue and router when they fail, the last rounds. */
export function detailsOf(s: GuardianStatus): string {
  const recent = s.events.slice(-5).reverse();
  const rows = recent.map(
    (e) =>
      `| ${e.noticeAt} | ${e.kind} | ${e.oldInstanceId} | ${e.newInstanceId ?? '–'}${e.viaSpare ? ' (spare)' : ''} | ${e.outcome} | ${e.recoveryMs !== undefined ? `${(e.recoveryMs / 1000).toFixed(1)} s` : '–'} |`,
  );
  return (
    `**${s.planName}** on \`${s.instanceId}\`${s.market ? ` (${s.market})` : ''}: ${s.state}, ${s.replacements} replacement(s)\n\n` +
    (s.ledger ? `Ledger: ${describeLedger(s.ledger)}\n\n` : '') +
    (s.nextSpotTryAt ? `Tries Spot again at ${s.nextSpotTryAt}.\n\n` : '') +
    (s.standby === 'warm'
      ? s.spare
        ? `Warm spare \`${s.spare.instanceId}\` (${s.spare.instanceType}${s.spare.availabilityZone ? ` in ${s.spare.availabilityZone}` : ''}), checked ${s.spare.checkedAt}.\n\n`
        : '**No warm spare ready** yet.\n\n'
      : '') +
    (s.queue && !s.queue.ok
      ? `**The interruption queue cannot be read** since ${s.queue.since}: ${s.queue.error}\n\n`
      : '') +
    (s.router && !s.router.ok ? `**The router could not be started** (${s.router.at}): ${s.router.error}\n\n` : '') +
    (rows.length
      ? `| notice | kind | old | new | outcome | recovery |\n|---|---|---|---|---|---|\n${rows.join('\n')}`
      : 'No interruption yet.')
  );
}
