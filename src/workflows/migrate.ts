import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  startChild,
  setCurrentDetails,
  setHandler,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities';
import { guardianWorkflowId } from '../shared/constants';
import { spotGuardian } from './guardian';
import { joinSpotRouter } from './router';
import { NOTICE_KINDS, goldenImageSignal, interruptionSignal, type InterruptionNotice } from '../shared/spot';
import type { LaunchResult, InstanceInfo } from '../activities/instances';
import type { PreflightResult } from '../activities/preflight';
import type { IngressResult, Rule } from '../activities/network';
import { durationMs } from '../plan/duration';
import type { Plan } from '../plan/schema';
import { ErrorType, NON_RETRYABLE_AWS_CODES } from '../shared/errors';
import {
  PHASES,
  SIGNAL_DESCRIPTIONS,
  approveSignal,
  decideUpdate,
  rejectSignal,
  statusQuery,
  timeoutsProblem,
  type ApprovalRecord,
  type Decision,
  type Figure,
  type MigrationInput,
  type MigrationStatus,
  type PhaseName,
  type PhaseRecord,
} from '../shared/migration';
import priceTable from '../pricing/on-demand.json';
import { renderPhaseTable, type CostRow, type MigrationReport } from '../shared/report';

const NON_RETRYABLE = [...NON_RETRYABLE_AWS_CODES, ErrorType.PreflightFailed, 'NotConfigured'];

/** Quick AWS calls: the SDK retries throttling inside a call; this is the outer loop. */
const QUICK: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    maximumAttempts: 10,
    nonRetryableErrorTypes: NON_RETRYABLE,
  },
};
/** Launches and image/stop waits: long, heartbeating, retried with backoff (capacity returns). */
const LONG: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '2 minutes',
    maximumAttempts: 8,
    nonRetryableErrorTypes: NON_RETRYABLE,
  },
};
/** Remote steps: they may take an hour (a docker build); a failing step gets two more tries. */
const REMOTE: ActivityOptions = {
  startToCloseTimeout: '3 hours',
  heartbeatTimeout: '2 minutes',
  retry: {
    initialInterval: '5s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 3,
    nonRetryableErrorTypes: NON_RETRYABLE,
  },
};
/** Compensations must finish: many tries. */
const UNDO: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20 },
};

/**
 * The activity kinds of one run. `timeouts.heartbeatSeconds` of the input replaces the heartbeat
 * timeout of the heartbeating kinds; `timeouts.activitySeconds` the start-to-close timeout of the
 * quick activities and (through `startToClose`) of the checks.
 */
function runProxies(timeouts: MigrationInput['timeouts']) {
  const problem = timeoutsProblem(timeouts);
  if (problem) throw ApplicationFailure.nonRetryable(problem, 'InvalidInput');
  const seconds = timeouts?.heartbeatSeconds;
  const options = (o: ActivityOptions): ActivityOptions =>
    seconds === undefined ? o : { ...o, heartbeatTimeout: seconds * 1000 };
  const startToClose = (fallback: ActivityOptions['startToCloseTimeout']) =>
    timeouts?.activitySeconds === undefined ? fallback : timeouts.activitySeconds * 1000;
  return {
    quick: proxyActivities<Activities>({ ...QUICK, startToCloseTimeout: startToClose(QUICK.startToCloseTimeout) }),
    long: proxyActivities<Activities>(options(LONG)),
    remote: proxyActivities<Activities>(options(REMOTE)),
    undo: proxyActivities<Activities>(options(UNDO)),
    startToClose,
  };
}

interface Compensation {
  name: string;
  run: () => Promise<unknown>;
  /** Skipped with --keep-failed. */
  keepable?: boolean;
  /** The phase it undoes: marked `compensated` once the undo is done. */
  phase?: PhaseName;
}

/** The migration of one service onto a GPU instance: phases 0–11 of the design. */
export async function migrateToGpu(input: MigrationInput): Promise<MigrationReport> {
  const { plan } = input;
  const { quick, long, remote, undo, startToClose } = runProxies(input.timeouts);
  const info = workflowInfo();
  const workflowId = info.workflowId;
  const startedAt = new Date().toISOString();
  const approvers = plan.approval.approvers;

  // Checks are retried as slow polls: the plan says how often and how far apart.
  const checks = proxyActivities<Activities>({
    startToCloseTimeout: startToClose('10 minutes'),
    retry: {
      initialInterval: durationMs(plan.checks.interval),
      backoffCoefficient: 1,
      maximumAttempts: plan.checks.attempts,
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });

  const status: MigrationStatus = {
    workflowId,
    planName: plan.name,
    region: plan.region,
    phase: 'preflight',
    phases: PHASES.map((p) => ({ name: p.name, title: p.title, state: 'pending', attempts: 0, figures: {} })),
    oldInstanceId: plan.source.instanceId,
    ignoredMessages: [],
    compensations: [],
  };
  const warnings: string[] = [];
  const record = (name: PhaseName): PhaseRecord => status.phases.find((p) => p.name === name) as PhaseRecord;
  const refreshDetails = () => {
    setCurrentDetails(
      `**${plan.name}**: ${status.phase}${status.newInstanceId ? ` · new instance \`${status.newInstanceId}\`` : ''}` +
        (status.phase === 'awaiting-approval'
          ? '\n\nWaiting for a person: send the signal `approve` {"by": "name"} or `reject` {"by": "name", "reason": "…"}.'
          : '') +
        `\n\n${renderPhaseTable(status.phases)}`,
    );
  };
  setHandler(statusQuery, () => status, {
    description: 'Phases with state, attempts, timing, figures and errors; top-level `phase`.',
  });

  // --- approval messages --------------------------------------------------------------
  let decision: ApprovalRecord | undefined;
  const refuse = (d: Partial<Decision> | undefined, kind: 'approve' | 'reject'): string | undefined => {
    if (!d || typeof d !== 'object')
      return `${kind} needs a JSON object payload such as {"by": "your name"${kind === 'reject' ? ', "reason": "why"' : ''}}`;
    if (typeof d.by !== 'string' || d.by.trim() === '') return `${kind} needs "by": the name of the person deciding`;
    if (
      kind === 'reject' &&
      (typeof (d as { reason?: unknown }).reason !== 'string' || !(d as { reason: string }).reason.trim())
    )
      return 'reject needs "reason": why the migration is rejected';
    if ('comment' in d && d.comment !== undefined && typeof d.comment !== 'string') return '"comment" must be a string';
    if (status.phase !== 'awaiting-approval') return `no decision is awaited now (phase: ${status.phase})`;
    if (decision) return `already decided: ${decision.decision} by ${decision.by}`;
    if (kind === 'approve' && approvers.length > 0 && !approvers.includes(d.by.trim()))
      return `${d.by} is not an approver (approval.approvers: ${approvers.join(', ')})`;
    return undefined;
  };
  const accept = (d: Decision, via: 'signal' | 'update'): ApprovalRecord => {
    decision = {
      decision: d.decision === 'approve' ? 'approved' : 'rejected',
      by: d.by.trim(),
      comment: d.decision === 'approve' ? d.comment : d.reason,
      at: new Date().toISOString(),
      via,
    };
    status.approval = decision;
    return decision;
  };
  const onSignal = (kind: 'approve' | 'reject') => (payload: unknown) => {
    const problem = refuse(payload as Partial<Decision>, kind);
    if (problem) {
      status.ignoredMessages.push({ name: kind, at: new Date().toISOString(), reason: problem });
      log.warn('ignored an invalid signal', { signal: kind, reason: problem });
      return;
    }
    accept({ ...(payload as object), decision: kind } as Decision, 'signal');
  };
  setHandler(approveSignal, onSignal('approve'), { description: SIGNAL_DESCRIPTIONS.approve });
  setHandler(rejectSignal, onSignal('reject'), { description: SIGNAL_DESCRIPTIONS.reject });
  setHandler(decideUpdate, (d) => accept(d, 'update'), {
    description:
      'Approve or reject, answered at once: {"decision": "approve"|"reject", "by": "name", "comment"|"reason": "…"}',
    validator: (d) => {
      const kind = d?.decision;
      if (kind !== 'approve' && kind !== 'reject') throw new Error('"decision" must be "approve" or "reject"');
      const problem = refuse(d, kind);
      if (problem) throw new Error(problem);
    },
  });

  // --- Spot notices before the migration stands ------------------------------------------
  // From the Elastic IP switch until the guardian takes over, the migration itself owns the new
  // Spot instance's notices (the router sends them here): while the old instance still runs, an
  // interrupted new one means rolling back to it, not running without anyone watching.
  let guarding = false;
  let notice: InterruptionNotice | undefined;
  setHandler(
    interruptionSignal,
    (n) => {
      if (
        !guarding ||
        !n ||
        typeof n !== 'object' ||
        n.instanceId !== status.newInstanceId ||
        !NOTICE_KINDS.includes(n.kind)
      ) {
        status.ignoredMessages.push({
          name: 'interruption',
          at: new Date().toISOString(),
          reason: guarding
            ? `not a notice for the new instance ${status.newInstanceId}`
            : 'the new instance is not guarded by the migration now',
        });
        return;
      }
      notice ??= { ...n, at: n.at ?? new Date().toISOString() };
    },
    {
      description:
        "A Spot notice for the new instance (from the region's router) while the migration still stands by the old one: roll back to it.",
    },
  );
  const interrupted = (during: string, oldState = 'which still runs'): ApplicationFailure =>
    ApplicationFailure.create({
      type: ErrorType.SpotInterrupted,
      message: `the new Spot instance ${notice?.instanceId} was interrupted (${notice?.kind} notice, from the ${notice?.source ?? 'signal'}) ${during}: the Elastic IP goes back to ${plan.source.instanceId}, ${oldState}`,
      nonRetryable: true,
    });

  // --- phases -------------------------------------------------------------------------
  async function phase<T extends { attempt?: number }>(
    name: PhaseName,
    work: () => Promise<T>,
    figures?: (r: T) => Record<string, Figure>,
  ): Promise<T> {
    const rec = record(name);
    status.phase = name;
    rec.state = 'running';
    rec.startedAt = new Date().toISOString();
    refreshDetails();
    try {
      const result = await work();
      rec.state = 'succeeded';
      rec.attempts = result.attempt ?? 1;
      if (figures) Object.assign(rec.figures, figures(result));
      return result;
    } catch (err) {
      rec.state = 'failed';
      rec.lastError = describeFailure(err);
      rec.attempts = failedAttempts(err);
      const output = remoteOutputOf(err);
      if (output) rec.output = output;
      status.error = { type: failureType(err), message: rec.lastError, phase: name };
      throw err;
    } finally {
      rec.endedAt = new Date().toISOString();
      rec.durationMs = Date.parse(rec.endedAt) - Date.parse(rec.startedAt);
      refreshDetails();
    }
  }

  async function remoteStep(name: PhaseName, commands: string[]) {
    if (commands.length === 0) {
      record(name).state = 'skipped';
      record(name).figures.commands = { value: 'none in the plan', source: 'configured' };
      return undefined;
    }
    return phase(
      name,
      async () => {
        const r = await remote.runRemote({
          region: plan.region,
          instanceId: newInstance.instanceId,
          label: name,
          commands,
          timeoutSeconds: 3 * 3600,
        });
        record(name).output = {
          exitCode: r.exitCode,
          stdoutTail: r.stdoutTail,
          stderrTail: r.stderrTail,
          ...(r.cut ? { cut: r.cut } : {}),
        };
        return r;
      },
      (r) => ({
        exitCode: { value: r.exitCode, source: 'measured' },
        durationSeconds: { value: r.durationMs / 1000, unit: 's', source: 'measured' },
      }),
    );
  }

  const compensations: Compensation[] = [];
  let preflight: PreflightResult | undefined;
  let newInstance: LaunchResult = undefined as unknown as LaunchResult;
  let ingress: IngressResult | undefined;
  let addressIp: string | undefined;
  let gpu: Record<string, Figure> | undefined;
  let latency: Record<string, Figure> | undefined;
  let synthesisSeconds: number | undefined;
  const images: MigrationReport['images'] = {};
  let afterInstance: InstanceInfo | undefined;
  let outcome: MigrationReport['outcome'] = 'completed';

  try {
    preflight = await phase(
      'preflight',
      () => quick.preflight({ plan }),
      (r) => ({
        sourceType: { value: r.source.instanceType, source: 'measured' },
        permissions: { value: r.permissions.join(', ') || 'none verified', source: 'measured' },
      }),
    );
    warnings.push(...preflight.warnings);
    status.elasticIp = preflight.address.publicIp;
    const imageId = preflight.imageId;

    // Whatever an attempt launched is found by its tags, so the undo needs no instance id. The
    // run's id keeps its launch apart from other runs' (runs that began before keep theirs).
    const runId = patched('launch-per-run') ? info.runId : undefined;
    compensations.unshift({
      name: 'terminate the new instance',
      keepable: true,
      phase: 'launch',
      run: () => undo.terminateLaunched({ region: plan.region, workflowId, runId, step: 'launch' }),
    });
    newInstance = await phase(
      'launch',
      () => long.launchInstance({ plan, workflowId, runId, step: 'launch', imageId }),
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
    status.newInstanceId = newInstance.instanceId;
    const newHost = plan.checks.host === 'auto' ? newInstance.publicIp : plan.checks.host;
    if (!newHost)
      throw ApplicationFailure.nonRetryable(
        `the new instance ${newInstance.instanceId} has no public address; set checks.host`,
        'NoPublicAddress',
      );
    // Security groups deny inbound traffic by default: the planned ingress is in place before
    // anything is checked from outside (runs that began before this order keep theirs).
    const ingressFirst = patched('ingress-before-public-checks');
    if (ingressFirst) await openIngress();

    const setup = await remoteStep('setup', plan.remote.setup);
    const facts = await quick.readGpuFacts({ region: plan.region, instanceId: newInstance.instanceId });
    gpu = { name: facts.name, memory: facts.memory, driver: facts.driver, cuda: facts.cuda };
    if (setup || facts.name.value !== null)
      Object.assign(record('setup').figures, {
        gpu: facts.name,
        gpuMemory: facts.memory,
        driver: facts.driver,
        cuda: facts.cuda,
      });

    await remoteStep('source', plan.remote.deploy);
    await remoteStep('build', plan.remote.build);
    await phase(
      'start',
      async () => {
        if (plan.remote.start.length > 0) {
          const r = await remote.runRemote({
            region: plan.region,
            instanceId: newInstance.instanceId,
            label: 'start',
            commands: plan.remote.start,
            timeoutSeconds: 3600,
          });
          record('start').output = {
            exitCode: r.exitCode,
            stdoutTail: r.stdoutTail,
            stderrTail: r.stderrTail,
            ...(r.cut ? { cut: r.cut } : {}),
          };
        }
        return checks.checkServices({ plan, instanceId: newInstance.instanceId, host: newHost, scope: 'all' });
      },
      (r) =>
        Object.fromEntries(
          r.results.map((c) => [
            c.service,
            {
              value: c.ms === undefined ? 'ok' : Math.round(c.ms),
              unit: c.ms === undefined ? undefined : `ms (${c.via})`,
              source: 'measured',
            } as Figure,
          ]),
        ),
    );

    if (plan.checks.voiceClone) {
      const vc = plan.checks.voiceClone;
      await phase(
        'voice-test',
        () => checks.voiceCloneTest({ plan, host: newHost }),
        (r) => ({
          synthesisSeconds: { value: r.seconds, unit: 's', source: 'measured' },
          limitSeconds: { value: vc.maxSeconds, unit: 's', source: 'configured' },
        }),
      );
    } else record('voice-test').state = 'skipped';

    if (!ingressFirst) await openIngress();

    await phase(
      'connectivity',
      () => checks.checkServices({ plan, instanceId: newInstance.instanceId, host: newHost, scope: 'public' }),
      (r) =>
        Object.fromEntries(
          r.results.map((c) => [
            c.service,
            {
              value: c.ms === undefined ? 'ok' : Math.round(c.ms),
              unit: c.ms === undefined ? undefined : 'ms',
              source: 'measured',
            } as Figure,
          ]),
        ),
    );

    compensations.unshift({
      name: `move the Elastic IP back to ${plan.source.instanceId}`,
      phase: 'eip-switch',
      run: () =>
        undo.associateAddress({
          region: plan.region,
          allocationId: plan.elasticIp.allocationId,
          instanceId: plan.source.instanceId,
        }),
    });
    const moved = await phase(
      'eip-switch',
      async () => {
        const a = await quick.associateAddress({
          region: plan.region,
          allocationId: plan.elasticIp.allocationId,
          instanceId: newInstance.instanceId,
        });
        const host = plan.checks.host === 'auto' ? a.publicIp : plan.checks.host;
        await checks.checkServices({ plan, instanceId: newInstance.instanceId, host, scope: 'public' });
        return a;
      },
      (r) => ({
        elasticIp: { value: r.publicIp, source: 'measured' },
        verified: { value: 'public services answer on it', source: 'measured' },
      }),
    );
    addressIp = moved.publicIp;
    const servedHost = plan.checks.host === 'auto' ? addressIp : plan.checks.host;
    // The service now runs on Spot: its notices come here until the guardian takes them.
    if (newInstance.market === 'spot' && patched('guard-from-eip-switch')) {
      await quick.markGuarded({ region: plan.region, instanceId: newInstance.instanceId, guardianId: workflowId });
      await joinSpotRouter(plan, workflowId);
      guarding = true;
    }

    await phase(
      'performance',
      async () => {
        // The phase's attempts: the most any of its tests needed.
        const out: { attempt?: number } = {};
        if (plan.checks.latency) {
          const r = await checks.latencyTest({ plan, host: servedHost });
          latency = r.figures;
          out.attempt = r.attempt;
        }
        if (plan.checks.voiceClone) {
          const r = await checks.voiceCloneTest({ plan, host: servedHost });
          synthesisSeconds = r.seconds;
          out.attempt = Math.max(out.attempt ?? 1, r.attempt);
        }
        return out;
      },
      () => ({
        ...(latency ?? {}),
        ...(synthesisSeconds !== undefined
          ? { synthesisSeconds: { value: synthesisSeconds, unit: 's', source: 'measured' } as Figure }
          : {}),
      }),
    );

    // --- the person's decision ----------------------------------------------------------
    if (notice) throw interrupted('during the performance tests');
    status.phase = 'awaiting-approval';
    refreshDetails();
    log.info('waiting for approval', { workflowId, timeout: plan.approval.timeout });
    const decided = await condition(
      () => decision !== undefined || notice !== undefined,
      durationMs(plan.approval.timeout),
    );
    if (notice) throw interrupted('while awaiting approval');
    if (!decided) {
      decision = { decision: 'timed-out', at: new Date().toISOString() };
      status.approval = decision;
      record('stop-old').state = 'skipped';
      record('stop-old').figures.skipped = {
        value: 'approval timed out: the old instance still runs; the Elastic IP is on the new instance',
        source: 'measured',
      };
      outcome = 'approval timed out';
      // The service now runs on the new instance: on Spot it needs guarding all the same.
      compensations.length = 0;
      await afterCutOver();
      warnings.push(
        `approval timed out after ${plan.approval.timeout}: the old instance ${plan.source.instanceId} still runs and the Elastic IP is on ${newInstance.instanceId}; stop the old instance by hand once satisfied`,
      );
    } else if (decision?.decision === 'rejected') {
      throw ApplicationFailure.create({
        type: ErrorType.Rejected,
        message: `rejected by ${decision.by}: ${decision.comment ?? ''}`,
        nonRetryable: true,
      });
    } else {
      compensations.unshift({
        name: `start ${plan.source.instanceId} again`,
        phase: 'stop-old',
        run: () => undo.startInstance({ region: plan.region, instanceId: plan.source.instanceId }),
      });
      await phase(
        'stop-old',
        async () => {
          // The backup is taken of the stopped instance: an image of a running one (NoReboot) is
          // only crash-consistent. Runs that began before keep the old order.
          const stopFirst = patched('backup-after-stop');
          const stoppedBefore = stopFirst
            ? await long.stopInstance({ region: plan.region, instanceId: plan.source.instanceId })
            : undefined;
          const backup = await long.createImage({
            plan,
            workflowId,
            step: 'backup',
            instanceId: plan.source.instanceId,
            stamp: startedAt.slice(0, 10),
          });
          images.backup = backup.imageId;
          const stopped =
            stoppedBefore ?? (await long.stopInstance({ region: plan.region, instanceId: plan.source.instanceId }));
          return { ...stopped, backupImageId: backup.imageId, attempt: backup.attempt };
        },
        (r) => ({
          backupImage: { value: r.backupImageId, source: 'measured' },
          oldState: { value: r.state, source: 'measured' },
        }),
      );
      // Interrupted while the old one stopped: start it again and move the Elastic IP back.
      if (notice)
        throw interrupted('while the old instance was being stopped', 'which the rollback starts again first');
      // From here on the migration stands: what follows never rolls it back.
      compensations.length = 0;
      await afterCutOver();
    }
    afterInstance = await quick.getInstance({ region: plan.region, instanceId: newInstance.instanceId });
    status.phase = 'completed';
  } catch (err) {
    const rejected = err instanceof ApplicationFailure && err.type === ErrorType.Rejected;
    if (!status.error) status.error = { type: failureType(err), message: describeFailure(err) };
    log.error('migration failed; rolling back', { error: status.error });
    status.phase = 'rolling-back';
    refreshDetails();
    await CancellationScope.nonCancellable(() => rollBack(compensations, input.keepFailed ?? false));
    status.phase = status.compensations.some((c) => c.state === 'failed') ? 'failed' : 'rolled-back';
    outcome = status.phase === 'rolled-back' ? 'rolled back' : 'failed';
    refreshDetails();
    const report = await buildReport();
    // A cancelled run ends cancelled (after its rollback), as the person asked.
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.create({
      type: status.error.type,
      message: `${rejected ? 'migration rejected' : 'migration failed'} and ${outcome === 'rolled back' ? 'rolled back' : 'its rollback did not finish'}: ${status.error.message}`,
      nonRetryable: true,
      details: [report],
    });
  }
  refreshDetails();
  return buildReport();

  /** Phase 7: the planned ingress on the target's security group, with its undo. */
  async function openIngress(): Promise<void> {
    compensations.unshift({
      name: 'undo the security-group changes',
      phase: 'security-group',
      run: () => undo.undoIngress({ plan, restore: ingress?.revoked ?? ([] as Rule[]) }),
    });
    const opened = await phase(
      'security-group',
      () => quick.applyIngress({ plan }),
      (r) => ({
        added: { value: r.added.length, source: 'measured' },
        unplanned: { value: r.unplanned.length, source: 'measured' },
      }),
    );
    if (plan.ingress.adminCidrs.includes('0.0.0.0/0')) {
      warnings.push(
        `SSH (port 22) is open to the whole internet (0.0.0.0/0) on ${opened.groupId}, because ingress.allowSshFromAnywhere is true: list your own address in ingress.adminCidrs, or use SSM Session Manager`,
      );
    }
    if (opened.unplanned.length > 0 && !plan.ingress.revokeUnplanned) {
      warnings.push(
        `security group ${opened.groupId} also allows ${opened.unplanned.map((r) => `${r.protocol}/${r.fromPort} from ${r.cidr}`).join(', ')} (not in the plan; left alone: set ingress.revokeUnplanned to remove)`,
      );
    }
    ingress = opened;
  }

  /** The golden image of the new instance, and its Spot guardian when it runs on Spot. */
  async function afterCutOver(): Promise<void> {
    // The guardian first: the golden image takes minutes, and the service must not wait for it
    // unguarded. It replaces from the plan's image until it is told of the golden one.
    const guardFirst = newInstance.market === 'spot' && patched('guard-before-golden');
    if (guardFirst) {
      status.guardianWorkflowId = await startGuardian(plan, newInstance.instanceId, undefined, workflowId);
      guarding = false;
      // A notice that came in between goes on to the guardian.
      if (notice) await getExternalWorkflowHandle(status.guardianWorkflowId).signal(interruptionSignal, notice);
    }
    try {
      // The new instance keeps serving while its image is taken (NoReboot): what is in its page
      // cache goes to disk first, so the image holds what the app wrote.
      if (patched('sync-before-golden')) {
        await remote.runRemote({
          region: plan.region,
          instanceId: newInstance.instanceId,
          label: 'sync before the golden image',
          commands: ['sync'],
          timeoutSeconds: 600,
        });
      }
      const golden = await long.createImage({
        plan,
        workflowId,
        step: 'golden',
        instanceId: newInstance.instanceId,
        stamp: startedAt.slice(0, 10),
      });
      images.golden = golden.imageId;
    } catch (err) {
      warnings.push(`the golden image of ${newInstance.instanceId} could not be made: ${describeFailure(err)}`);
    }
    // Older golden images of the plan (earlier runs) are billed for their snapshots: keep the newest.
    if (images.golden && patched('prune-golden-images')) {
      try {
        const pruned = await quick.pruneGoldenImages({
          plan,
          keep: plan.spot.keepGoldenImages ?? 3,
          inUse: images.golden,
        });
        if (pruned.deregistered.length) images.deregistered = pruned.deregistered;
      } catch (err) {
        warnings.push(
          `older golden images of ${plan.name} could not be cleaned up (migration cleanup --plan lists them): ${describeFailure(err)}`,
        );
      }
    }
    if (guardFirst) {
      if (images.golden)
        await getExternalWorkflowHandle(status.guardianWorkflowId as string).signal(goldenImageSignal, {
          imageId: images.golden,
        });
    } else if (newInstance.market === 'spot') {
      status.guardianWorkflowId = await startGuardian(plan, newInstance.instanceId, images.golden, workflowId);
    }
  }

  async function rollBack(list: Compensation[], keepFailed: boolean): Promise<void> {
    for (const c of list) {
      if (keepFailed && c.keepable) {
        status.compensations.push({ name: c.name, state: 'skipped', detail: '--keep-failed' });
        continue;
      }
      try {
        await c.run();
        status.compensations.push({ name: c.name, state: 'done' });
        // Only what was undone is `compensated`: a kept instance or a failed undo stays as it was.
        if (c.phase && record(c.phase).state === 'succeeded') record(c.phase).state = 'compensated';
      } catch (err) {
        status.compensations.push({ name: c.name, state: 'failed', detail: describeFailure(err) });
      }
    }
  }

  async function buildReport(): Promise<MigrationReport> {
    const types = preflight?.instanceTypes ?? [];
    const factsOf = (t?: string) => types.find((x) => x.instanceType === t);
    const cost: CostRow[] = [];
    try {
      const priced = [
        plan.source.instanceId && preflight?.source.instanceType,
        newInstance?.instanceType ?? plan.target.instanceType,
      ].filter((t): t is string => Boolean(t));
      const zones = newInstance?.availabilityZone
        ? [newInstance.availabilityZone]
        : (preflight?.subnets ?? []).map((x) => x.availabilityZone).filter((z): z is string => Boolean(z));
      const prices = await quick.prices({ region: plan.region, instanceTypes: priced, availabilityZones: zones });
      const month = (f: Figure): Figure =>
        typeof f.value === 'number'
          ? { value: f.value * priceTable.hoursPerMonth, unit: 'USD', source: f.source }
          : { value: null, unit: 'USD', source: f.source };
      const before = prices.find((p) => p.instanceType === preflight?.source.instanceType);
      const after = prices.find((p) => p.instanceType === (newInstance?.instanceType ?? plan.target.instanceType));
      if (before)
        cost.push({
          label: 'before',
          instanceType: before.instanceType,
          market: 'on-demand',
          perHour: before.onDemandPerHour,
          perMonth: month(before.onDemandPerHour),
        });
      if (after) {
        cost.push({
          label: 'after',
          instanceType: after.instanceType,
          market: 'on-demand',
          perHour: after.onDemandPerHour,
          perMonth: month(after.onDemandPerHour),
        });
        cost.push({
          label: 'after',
          instanceType: after.instanceType,
          market: 'spot',
          perHour: after.spotPerHour,
          perMonth: month(after.spotPerHour),
        });
      }
    } catch (err) {
      warnings.push(`prices could not be read: ${describeFailure(err)}`);
    }
    const src = preflight?.source;
    const ingressRules = ingress?.final.map((r) => ({
      protocol: r.protocol,
      fromPort: r.fromPort,
      toPort: r.toPort,
      cidr: r.cidr,
      note: ingress?.added.some((a) => a.fromPort === r.fromPort && a.cidr === r.cidr)
        ? 'added for the plan'
        : 'was there before',
    }));
    return {
      planName: plan.name,
      workflowId,
      region: plan.region,
      outcome,
      startedAt,
      endedAt: new Date().toISOString(),
      before: {
        instanceId: plan.source.instanceId,
        instanceType: src?.instanceType,
        market: src?.market,
        publicIp: preflight?.address.publicIp,
        availabilityZone: src?.availabilityZone,
        ...pickFacts(factsOf(src?.instanceType)),
      },
      after: newInstance
        ? {
            instanceId: newInstance.instanceId,
            instanceType: newInstance.instanceType,
            market: newInstance.market,
            publicIp: afterInstance?.publicIp ?? newInstance.publicIp,
            availabilityZone: newInstance.availabilityZone,
            ...pickFacts(factsOf(newInstance.instanceType)),
          }
        : {},
      elasticIp: status.elasticIp,
      phases: status.phases,
      latency,
      latencyLimits: plan.checks.latency
        ? {
            averageMs: { value: plan.checks.latency.maxAverageMs, unit: 'ms', source: 'configured' },
            ...(plan.checks.latency.maxP95Ms !== undefined
              ? { p95Ms: { value: plan.checks.latency.maxP95Ms, unit: 'ms', source: 'configured' } }
              : {}),
          }
        : undefined,
      synthesis:
        synthesisSeconds !== undefined && plan.checks.voiceClone
          ? {
              seconds: { value: synthesisSeconds, unit: 's', source: 'measured' },
              limit: { value: plan.checks.voiceClone.maxSeconds, unit: 's', source: 'configured' },
            }
          : undefined,
      gpu,
      securityGroup: ingress && ingressRules ? { groupId: ingress.groupId, rules: ingressRules } : undefined,
      cost: { rows: cost, priceTableDate: priceTable.asOf, hoursPerMonth: priceTable.hoursPerMonth },
      approval: status.approval,
      images,
      compensations: status.compensations,
      warnings,
      error: status.error,
      guardianWorkflowId: status.guardianWorkflowId,
    };
  }
}

/**
 * Starts the Spot guardian as a child that outlives this run (ABANDON). If one already runs
 * for the plan (a re-run of the migration), the notice goes to that one.
 */
async function startGuardian(
  plan: Plan,
  instanceId: string,
  goldenImageId: string | undefined,
  migrationWorkflowId: string,
): Promise<string> {
  const id = guardianWorkflowId(plan.name);
  try {
    await startChild(spotGuardian, {
      workflowId: id,
      parentClosePolicy: ParentClosePolicy.ABANDON,
      args: [{ plan, instanceId, goldenImageId, migrationWorkflowId }],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    log.warn('a guardian already runs for this plan', { guardianWorkflowId: id });
  }
  return id;
}

function pickFacts(t: { vcpus?: number; memoryMiB?: number; gpus?: string } | undefined) {
  return t ? { vcpus: t.vcpus, memoryMiB: t.memoryMiB, gpus: t.gpus } : {};
}

function rootCause(err: unknown): unknown {
  return err instanceof ActivityFailure && err.cause ? err.cause : err;
}

export function failureType(err: unknown): string {
  const cause = rootCause(err);
  if (cause instanceof ApplicationFailure && cause.type) return cause.type;
  if (isCancellation(err)) return 'Cancelled';
  return cause instanceof Error ? cause.name : 'Error';
}

export function describeFailure(err: unknown): string {
  const cause = rootCause(err);
  return cause instanceof Error ? cause.message : String(cause);
}

function failedAttempts(err: unknown): number {
  const cause = rootCause(err);
  if (cause instanceof ApplicationFailure) {
    const meta = (cause.details ?? []).find(
      (d): d is { attempt: number } => typeof d === 'object' && d !== null && 'attempt' in d,
    );
    if (meta) return meta.attempt;
  }
  return 1;
}

function remoteOutputOf(err: unknown): PhaseRecord['output'] | undefined {
  const cause = rootCause(err);
  if (!(cause instanceof ApplicationFailure) || cause.type !== ErrorType.RemoteCommandFailed) return undefined;
  const d = (cause.details ?? [])[0] as
    { exitCode?: number; stdoutTail?: string; stderrTail?: string; cut?: string } | undefined;
  return d && typeof d.exitCode === 'number'
    ? {
        exitCode: d.exitCode,
        stdoutTail: d.stdoutTail ?? '',
        stderrTail: d.stderrTail ?? '',
        ...(d.cut ? { cut: d.cut } : {}),
      }
    : undefined;
}

export type { Plan };
