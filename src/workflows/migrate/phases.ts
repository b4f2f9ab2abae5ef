/**
 * The phases from preflight to the performance test, each with its undo beside it and the
 * figures it records. Workflow code only.
 */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import type { ServiceCheck } from '../../shared/checks';
import type { IngressResult, Rule } from '../../shared/network';
import { checkHost } from '../../shared/check-host';
import { launchSpec, type LaunchSpec } from '../../shared/launch';
import { ingressPlan } from '../../shared/plan-slices';
import type { Figure } from '../../shared/migration';
import { joinSpotRouter } from '../router';
import type { MigrationRun, NewInstance } from './run';

/** Phase 0: the plan against the account. Returns the image to launch. */
export async function preflight(run: MigrationRun): Promise<string> {
  const result = await run.phase(
    'preflight',
    () => run.acts.quick.preflight({ plan: run.plan }),
    (r) => ({
      sourceType: { value: r.source.instanceType, source: 'measured' },
      permissions: { value: r.permissions.join(', ') || 'none verified', source: 'measured' },
    }),
  );
  run.preflight = result;
  run.warnings.push(...result.warnings);
  run.status.elasticIp = result.address.publicIp;
  return result.imageId;
}

/** How a launch of the migration differs from the first: a relaunch after a Spot notice. */
export interface LaunchOptions {
  /** `launch`, then `launch-2`, …: each launch has tags and ClientTokens of its own. */
  step?: string;
  /** The Spot pools to try, best first (the interrupted one left out). */
  spotPools?: LaunchSpec['spotPools'];
  /** Tags for the instance from its first second (the migration's guard marker). */
  tags?: Record<string, string>;
}

/** Phase 1: the GPU instance, from the first type, subnet and market that has capacity. */
export async function launch(run: MigrationRun, imageId: string, options: LaunchOptions = {}): Promise<NewInstance> {
  const { plan, workflowId } = run;
  const step = options.step ?? 'launch';
  // Whatever an attempt launched is found by its tags, so the undo needs no instance id. The
  // run's id keeps its launch apart from other runs' (runs that began before keep theirs).
  const runId = patched('launch-per-run') ? run.runId : undefined;
  run.undoable({
    name: step === 'launch' ? 'terminate the new instance' : `terminate the new instance of ${step}`,
    keepable: true,
    phase: 'launch',
    run: () => run.acts.undoWaiting.terminateLaunched({ region: plan.region, workflowId, runId, step }),
  });
  const spec = { ...launchSpec(plan), ...(options.spotPools ? { spotPools: options.spotPools } : {}) };
  const vm = await run.phase(
    'launch',
    () =>
      run.acts.long.launchInstance({
        spec,
        workflowId,
        runId,
        step,
        imageId,
        ...(options.tags ? { tags: options.tags } : {}),
      }),
    (r) => ({
      instanceType: { value: r.instanceType, source: 'measured' },
      market: { value: r.market, source: 'measured' },
      ...(r.skipped.length
        ? {
            skipped: {
              value: r.skipped.map((s) => `${s.instanceType}/${s.market}: ${s.error}`).join('; '),
              source: 'measured',
            },
          }
        : {}),
    }),
  );
  run.newInstance = vm;
  run.status.newInstanceId = vm.instanceId;
  const host = checkHost(plan.checks, vm.publicIp);
  if (!host)
    throw ApplicationFailure.nonRetryable(
      `the new instance ${vm.instanceId} has no public address; set checks.host`,
      'NoPublicAddress',
    );
  return { ...vm, host };
}

/** Phase 2: the plan's setup commands, then what the GPU and its driver say of themselves. */
export async function setUp(run: MigrationRun, vm: NewInstance): Promise<void> {
  const ran = await run.remoteStep('setup', vm, run.plan.remote.setup);
  const facts = await run.acts.quick.readGpuFacts({ region: run.plan.region, instanceId: vm.instanceId });
  run.gpu = { name: facts.name, memory: facts.memory, driver: facts.driver, cuda: facts.cuda };
  if (ran || facts.name.value !== null)
    Object.assign(run.record('setup').figures, {
      gpu: facts.name,
      gpuMemory: facts.memory,
      driver: facts.driver,
      cuda: facts.cuda,
    });
}

/** One figure per service: how long its check took, and by which way it was reached. */
function checkFigures(results: ServiceCheck[], unit: (c: ServiceCheck) => string): Record<string, Figure> {
  return Object.fromEntries(
    results.map((c) => [
      c.service,
      {
        value: c.ms === undefined ? 'ok' : Math.round(c.ms),
        unit: c.ms === undefined ? undefined : unit(c),
        source: 'measured',
      } as Figure,
    ]),
  );
}

/** Phase 5: the plan's start commands, then every service answers its check. */
export async function startServices(run: MigrationRun, vm: NewInstance): Promise<void> {
  await run.phase(
    'start',
    async () => {
      if (run.plan.remote.start.length > 0) await run.runCommands('start', vm, run.plan.remote.start, 3600);
      return run.acts.checks.checkServices({
        spec: run.checks,
        instanceId: vm.instanceId,
        host: vm.host,
        scope: 'all',
      });
    },
    (r) => checkFigures(r.results, (c) => `ms (${c.via})`),
  );
}

/** Phase 6: one voice clone on the new instance, within the plan's limit (skipped without one). */
export async function voiceTest(run: MigrationRun, vm: NewInstance): Promise<void> {
  const vc = run.plan.checks.voiceClone;
  if (!vc) {
    run.record('voice-test').state = 'skipped';
    return;
  }
  await run.phase(
    'voice-test',
    () => run.acts.checks.voiceCloneTest({ spec: run.checks, host: vm.host }),
    (r) => ({
      synthesisSeconds: { value: r.seconds, unit: 's', source: 'measured' },
      limitSeconds: { value: vc.maxSeconds, unit: 's', source: 'configured' },
    }),
  );
}

/** Phase 7: the planned ingress on the target's security group, with its undo. */
export async function openIngress(run: MigrationRun): Promise<void> {
  const { plan } = run;
  run.undoable({
    name: 'undo the security-group changes',
    phase: 'security-group',
    run: () => run.acts.undo.undoIngress({ plan: ingressPlan(plan), restore: run.ingress?.revoked ?? ([] as Rule[]) }),
  });
  const opened = await run.phase(
    'security-group',
    () => run.acts.quick.applyIngress({ plan: ingressPlan(plan) }),
    (r) => ({
      added: { value: r.added.length, source: 'measured' },
      unplanned: { value: r.unplanned.length, source: 'measured' },
    }),
  );
  run.warnings.push(...ingressWarnings(run, opened));
  run.ingress = opened;
}

function ingressWarnings({ plan }: MigrationRun, opened: IngressResult): string[] {
  const warnings: string[] = [];
  if (plan.ingress.adminCidrs.includes('0.0.0.0/0'))
    warnings.push(
      `SSH (port 22) is open to the whole internet (0.0.0.0/0) on ${opened.groupId}, because ingress.allowSshFromAnywhere is true: list your own address in ingress.adminCidrs, or use SSM Session Manager`,
    );
  if (opened.unplanned.length > 0 && !plan.ingress.revokeUnplanned) {
    const rules = opened.unplanned.map((r) => `${r.protocol}/${r.fromPort} from ${r.cidr}`).join(', ');
    warnings.push(
      `security group ${opened.groupId} also allows ${rules} (not in the plan; left alone: set ingress.revokeUnplanned to remove)`,
    );
  }
  return warnings;
}

/** Phase 8: the public services answer from outside, at the new instance's own address. */
export async function checkConnectivity(run: MigrationRun, vm: NewInstance): Promise<void> {
  await run.phase(
    'connectivity',
    () =>
      run.acts.checks.checkServices({ spec: run.checks, instanceId: vm.instanceId, host: vm.host, scope: 'public' }),
    (r) => checkFigures(r.results, () => 'ms'),
  );
}

/**
 * Phase 9: the Elastic IP onto the new instance, verified from outside, with its undo. From here
 * a new Spot instance's notices come to the migration until the guardian takes them. Returns the
 * host the service is now reached at.
 */
export async function switchElasticIp(run: MigrationRun, vm: NewInstance): Promise<string> {
  const { plan } = run;
  const allocationId = plan.elasticIp.allocationId;
  run.undoable({
    name: `move the Elastic IP back to ${plan.source.instanceId}`,
    phase: 'eip-switch',
    run: () =>
      run.acts.undo.associateAddress({ region: plan.region, allocationId, instanceId: plan.source.instanceId }),
  });
  const moved = await run.phase(
    'eip-switch',
    async () => {
      const a = await run.acts.quick.associateAddress({ region: plan.region, allocationId, instanceId: vm.instanceId });
      const host = checkHost(plan.checks, a.publicIp);
      await run.acts.checks.checkServices({ spec: run.checks, instanceId: vm.instanceId, host, scope: 'public' });
      return a;
    },
    (r) => ({
      elasticIp: { value: r.publicIp, source: 'measured' },
      verified: { value: 'public services answer on it', source: 'measured' },
    }),
  );
  // Runs guarded from the launch on are guarded already.
  if (vm.market === 'spot' && !run.guarding && patched('guard-from-eip-switch')) {
    await run.acts.quick.markGuarded({ region: plan.region, instanceId: vm.instanceId, guardianId: run.workflowId });
    await joinSpotRouter(plan, run.workflowId);
    run.guarding = true;
  }
  return checkHost(plan.checks, moved.publicIp);
}

/** Phase 10: latency and a voice clone through the Elastic IP, as users reach the service. */
export async function performanceTest(run: MigrationRun, host: string): Promise<void> {
  const { plan } = run;
  await run.phase(
    'performance',
    async () => {
      const figures: Record<string, Figure> = {};
      // The phase's attempts: the most any of its tests needed.
      let attempt: number | undefined;
      if (plan.checks.latency) {
        const r = await run.acts.checks.latencyTest({ spec: run.checks, host });
        run.latency = r.figures;
        Object.assign(figures, r.figures);
        attempt = r.attempt;
      }
      if (plan.checks.voiceClone) {
        const r = await run.acts.checks.voiceCloneTest({ spec: run.checks, host });
        run.synthesisSeconds = r.seconds;
        figures.synthesisSeconds = { value: r.seconds, unit: 's', source: 'measured' };
        attempt = Math.max(attempt ?? 1, r.attempt);
      }
      return { figures, attempt };
    },
    (r) => r.figures,
  );
}
