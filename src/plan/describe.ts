/** What a plan would do, without doing it: the text `migration plan FILE` prints. Pure. */
import { guardianWorkflowId, migrationWorkflowId, routerWorkflowId, TAG_PLAN } from '../shared/constants';
import { durationMs } from './duration';
import { plannedIngress, type IngressRule } from './ingress';
import type { Plan } from './schema';
import { checkHost } from '../shared/check-host';

const UNIT_WORDS: Record<string, string> = { ms: 'millisecond', s: 'second', m: 'minute', h: 'hour', d: 'day' };

/** `7d` → `7d (7 days)`. */
export function humanDuration(value: string): string {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  if (!m) return value;
  const n = Number(m[1]);
  return `${value} (${n} ${UNIT_WORDS[m[2]]}${n === 1 ? '' : 's'})`;
}

const list = (items: readonly string[]): string => items.join(', ');

function table(rows: string[][], indent: string): string[] {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => r[c].length))) ?? [];
  return rows.map(
    (r) =>
      indent +
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c])))
        .join('  ')
        .trimEnd(),
  );
}

function commandLines(commands: readonly string[], indent: string): string[] {
  if (commands.length === 0) return [`${indent}(no commands)`];
  return commands.map((c) => `${indent}$ ${c}`);
}

function ruleText(r: IngressRule): string {
  const what = r.service === 'ssh' ? 'SSH' : r.service;
  return `tcp ${r.port} from ${r.cidr} (${what})`;
}

/** The text the CLI's `plan FILE` prints: what would happen, phase by phase. Touches nothing. */
/** On-demand prices the description may quote (the CLI passes the dated table). */
export interface PriceTable {
  asOf: string;
  hoursPerMonth: number;
  perHour(region: string, instanceType: string): number | undefined;
}

export function describePlan(plan: Plan, prices?: PriceTable): string {
  const { target, ingress, checks, approval, spot } = plan;
  const old = plan.source.instanceId;
  const eip = plan.elasticIp.allocationId;
  const host = checkHost(checks, '<new instance public address>');
  const publicServices = plan.services.filter((s) => s.public);
  const privateServices = plan.services.filter((s) => !s.public);
  const spotMarket = target.market === 'spot';
  const image = target.imageId ? `AMI ${target.imageId}` : `the AMI named by SSM parameter ${target.imageParameter}`;
  const rules = plannedIngress(plan);
  const out: string[] = [];
  const line = (text = '') => out.push(text);

  line(
    `Plan ${plan.name}: move the service on ${old} to a new ${target.instanceType} in ${plan.region}, keeping Elastic IP ${eip}.`,
  );
  line(`Workflow id ${migrationWorkflowId(plan.name)}. Printing this plan changes nothing.`);
  line();

  line('0. Preflight (reads only)');
  line(`   - source instance ${old} exists`);
  line(`   - Elastic IP ${eip} exists`);
  line(`   - subnets exist: ${list(target.subnetIds)}`);
  line(`   - security groups exist: ${list(target.securityGroupIds)}`);
  line(
    `   - image: ${target.imageId ? `AMI ${target.imageId} exists` : `SSM parameter ${target.imageParameter} resolves to an AMI`}`,
  );
  if (target.iamInstanceProfile)
    line(`   - instance profile ${target.iamInstanceProfile} exists and may be passed (part of the DryRun)`);
  line('   - permission to launch, checked with a DryRun RunInstances');
  line();

  line('1. Launch GPU instance');
  const types = [target.instanceType, ...target.fallbackInstanceTypes];
  line(
    `   - instance type: ${target.instanceType}${target.fallbackInstanceTypes.length ? `; without capacity, then ${list(target.fallbackInstanceTypes)}` : ' (no fallback types)'}`,
  );
  line(
    `   - market: ${spotMarket ? `Spot; if no Spot capacity in any type or subnet, on-demand (${list(types)})` : 'on-demand'}`,
  );
  line(`   - subnets, tried in order: ${list(target.subnetIds)}`);
  line(`   - image: ${image}`);
  line(`   - root volume: ${target.rootVolume.sizeGiB} GiB ${target.rootVolume.type}`);
  line(`   - security groups: ${list(target.securityGroupIds)}`);
  line(`   - instance profile: ${target.iamInstanceProfile ?? '(none: the image must reach SSM another way)'}`);
  line(`   - key pair: ${target.keyName ?? '(none: access through SSM)'}`);
  line(`   - tagged ${TAG_PLAN}=${plan.name}; waits until running`);
  line('   undo: terminate the new instance');
  line();

  line('2-5. Remote steps, on the new instance through SSM Run Command (a non-zero exit fails the phase)');
  line('   2. Environment setup: wait for the SSM agent, then');
  out.push(...commandLines(plan.remote.setup, '        '));
  line('      GPU facts (model, memory, driver) are read from nvidia-smi output when it is there.');
  line('   3. Source migration');
  out.push(...commandLines(plan.remote.deploy, '        '));
  line('   4. Docker image build');
  out.push(...commandLines(plan.remote.build, '        '));
  line('   5. Service start check');
  out.push(...commandLines(plan.remote.start, '        '));
  line(`      then every service is checked (each request may take up to ${checks.requestTimeoutSeconds} s;`);
  line(`      a failing check is tried again every ${checks.interval}, up to ${checks.attempts} attempts):`);
  out.push(
    ...table(
      plan.services.map((s) => [
        s.name,
        `port ${s.port}`,
        s.public ? 'public' : 'private',
        s.public
          ? `GET http://${host}:${s.port}${s.healthPath} over HTTP, from outside`
          : `GET http://127.0.0.1:${s.port}${s.healthPath} via SSM, on the instance`,
      ]),
      '        ',
    ),
  );
  line();

  line('6. Voice clone test');
  if (checks.voiceClone) {
    const vc = checks.voiceClone;
    const port = plan.services.find((s) => s.name === vc.service)?.port;
    line(
      `   ${vc.method} http://${host}:${port}${vc.path} (${vc.service}) with the configured body, timed; fails over ${vc.maxSeconds} s`,
    );
  } else {
    line('   skipped: checks.voiceClone is not set');
  }
  line();

  line('7. Security group');
  line(
    `   Ingress added to ${target.securityGroupIds[0]} (the first of target.securityGroupIds), if not already there:`,
  );
  if (rules.length === 0) line('     (none)');
  out.push(
    ...table(
      rules.map((r) => [
        `tcp ${r.port}`,
        `from ${r.cidr}`,
        r.service === 'ssh' ? 'SSH' : r.service,
        r.facesInternet ? 'faces the internet' : 'private network',
      ]),
      '     ',
    ),
  );
  if (privateServices.length) {
    line(`   Private services get no rule: ${list(privateServices.map((s) => `${s.name} (port ${s.port})`))}.`);
  }
  if (ingress.adminCidrs.length === 0)
    line('   SSH (port 22) gets no rule: ingress.adminCidrs is empty; use SSM Session Manager.');
  line(
    ingress.revokeUnplanned
      ? '   Other rules on the group are revoked (ingress.revokeUnplanned: true).'
      : '   Other rules on the group are left as they are (ingress.revokeUnplanned: false).',
  );
  const facing = rules.filter((r) => r.facesInternet);
  line(`   Rules that face the internet: ${facing.length}`);
  for (const r of facing) line(`     - ${ruleText(r)}`);
  if (rules.some((r) => r.service === 'ssh' && r.cidr === '0.0.0.0/0')) {
    line(
      '   WARNING: SSH (port 22) WILL BE OPEN TO THE WHOLE INTERNET (0.0.0.0/0), because ingress.allowSshFromAnywhere is true.',
    );
    line(
      '   WARNING: list your own address in ingress.adminCidrs instead, or use SSM Session Manager and no SSH rule at all.',
    );
  }
  if (ingress.adminCidrs.length > 0 && !target.keyName) {
    line('   Note: SSH is opened but target.keyName is not set, so no key pair is installed by the launch.');
  }
  line('   undo: revoke the rules it added');
  line();

  line('8. External connectivity');
  if (publicServices.length === 0) line('   no public services: nothing to check from outside');
  for (const s of publicServices)
    line(`   - ${s.name}: GET http://<new instance public address>:${s.port}${s.healthPath} from outside`);
  line();

  line('9. Elastic IP switch');
  line(
    `   ${eip} moves from ${old} to the new instance (AssociateAddress with AllowReassociation), then is verified from outside.`,
  );
  line(`   undo: associate it with ${old} again`);
  line();

  line('10. Performance test');
  if (checks.latency) {
    const l = checks.latency;
    const port = plan.services.find((s) => s.name === l.service)?.port;
    const limits = [
      `average <= ${l.maxAverageMs} ms`,
      ...(l.maxP95Ms !== undefined ? [`p95 <= ${l.maxP95Ms} ms`] : []),
    ];
    line(
      `   ${l.samples} x GET http://${host}:${port}${l.path} (${l.service}): avg, p50, p95, max; limits: ${list(limits)}`,
    );
  } else {
    line('   latency: skipped, checks.latency is not set');
  }
  if (checks.voiceClone) line(`   synthesis time: limit ${checks.voiceClone.maxSeconds} s`);
  line('   GPU facts from nvidia-smi, when the instance reports them');
  line();

  line('Approval');
  line(
    `   waits up to ${humanDuration(approval.timeout)} for a person: signal approve/reject in the Temporal UI, or migration approve/reject`,
  );
  line(`   who may approve: ${approval.approvers.length ? list(approval.approvers) : 'anyone'}`);
  line(`   rejected: roll back (Elastic IP to ${old}, new instance terminated); ${old} keeps serving`);
  line(`   timed out: nothing is stopped; ${old} keeps running and the Elastic IP stays on the new instance`);
  line();

  line('11. Stop old instance (only after approval)');
  line(`   AMI backup of ${old}, then StopInstances; it is never terminated.`);
  line(`   undo: start ${old} again`);
  line('   then: a golden AMI of the new instance, and the migration report');
  line();

  if (spotMarket) {
    line('Spot guarding');
    line(`   ${guardianWorkflowId(plan.name)} watches the new instance for as long as it runs on Spot.`);
    line(
      spot.interruptionQueueUrl
        ? `   ${routerWorkflowId(plan.region)} reads Spot events from ${spot.interruptionQueueUrl} and polls instance state every ${humanDuration(spot.pollInterval)}.`
        : `   ${routerWorkflowId(plan.region)} polls instance state every ${humanDuration(spot.pollInterval)}; no event queue, since spot.interruptionQueueUrl is null.`,
    );
    if (durationMs(spot.pollInterval) > 60_000)
      line('   Note: a poll interval over 1m leaves little of the two-minute interruption warning.');
    const order = spot.poolOrder ?? 'placement-score';
    const avoid = spot.avoidInterruptedPoolFor ?? '3m';
    line(
      `   On an interruption or rebalance notice: replacement from the golden AMI in a Spot pool (${list(types)} × the planned subnets' zones), then on-demand,`,
    );
    line(
      `   pools tried ${order === 'placement-score' ? 'by Spot placement score, then price' : order === 'price' ? 'cheapest first' : 'in the plan order'}${durationMs(avoid) > 0 ? `; the interrupted pool skipped for ${humanDuration(avoid)}` : ''};`,
    );
    line(
      `   remote.start, every service checked${checks.voiceClone ? `, a voice clone within ${checks.voiceClone.maxSeconds} s` : ''}, Elastic IP moved, checked from outside, old Spot instance terminated.`,
    );
    if ((spot.standby ?? 'none') === 'warm') {
      const spareTypes = list(types);
      const od = prices?.perHour(plan.region, target.instanceType);
      line(
        `   Warm spare (spot.standby: warm): a second instance (${spareTypes}, Spot only) from the golden AMI in another pool, started and fully checked every ${humanDuration(spot.standbyCheckInterval ?? '5m')};`,
      );
      line(
        '   on a notice the Elastic IP moves to it after a quick check (no launch on the way), then a new spare is launched.',
      );
      line(
        `   Cost: a second Spot instance all the time${prices && od !== undefined ? `, at most $${od.toFixed(3)}/h ($${(od * prices.hoursPerMonth).toFixed(0)} a month) for ${target.instanceType}: its on-demand price (table of ${prices.asOf}); its Spot price is lower` : ''}; the guardian's ledger counts what it cost.`,
      );
    }
    const revert = spot.revertAfter ?? '1h';
    line(
      durationMs(revert) > 0
        ? `   On on-demand (no Spot capacity anywhere): Spot tried again every ${humanDuration(revert)}; the on-demand instance serves until a checked Spot one holds the Elastic IP.`
        : '   On on-demand (no Spot capacity anywhere): it stays there (spot.revertAfter is 0s).',
    );
    line();
  }

  line('On a failure that retries cannot fix, the undo steps run in reverse: the Elastic IP goes back to');
  line(`${old}, the new instance is terminated (kept with --keep-failed), and ${old} keeps serving.`);
  return `${out.join('\n')}\n`;
}
