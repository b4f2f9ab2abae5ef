/**
 * One migration run's bookkeeping: its activities, its status (the `status` query and the Web
 * UI's current details), the phase runner that records every phase, the undo list and what the
 * phases found for the ones after them and for the report. Workflow code only.
 */
import { setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import type { IngressResult } from '../../shared/network';
import type { InstanceInfo, LaunchResult } from '../../shared/launch';
import type { PreflightResult } from '../../shared/preflight';
import { checksSpec, type ChecksSpec } from '../../shared/checks';
import type { InterruptionNotice } from '../../shared/spot';
import type { InterruptedPool } from '../../shared/pools';
import type { Plan } from '../../plan/schema';
import { describeFailure, failedAttempts, failureType, remoteOutputOf } from '../../shared/failures';
import {
  PHASES,
  statusQuery,
  type ApprovalRecord,
  type Figure,
  type MigrationInput,
  type MigrationStatus,
  type PhaseName,
  type PhaseRecord,
} from '../../shared/migration';
import { renderPhaseTable, type MigrationReport } from '../../shared/report';
import { MIGRATION_PHASE, PLAN_NAME } from '../../shared/search-attributes';
import { IndexedKeyword } from '../indexed';
import { migrationActivities, type MigrationActivities } from '../options';
import { Notifier } from '../notifier';

/** The refused messages the Web UI's current details list (all are in `status.ignoredMessages`). */
const REFUSALS_SHOWN = 3;

export interface Compensation {
  name: string;
  run: () => Promise<unknown>;
  /** Skipped with --keep-failed. */
  keepable?: boolean;
  /** The phase it undoes: marked `compensated` once the undo is done. */
  phase?: PhaseName;
}

/** The new instance as the phases after the launch need it: where the checks reach it. */
export interface NewInstance extends LaunchResult {
  host: string;
}

export class MigrationRun {
  readonly plan: Plan;
  readonly workflowId: string;
  readonly runId: string;
  readonly startedAt = new Date().toISOString();
  readonly keepFailed: boolean;
  readonly acts: MigrationActivities;
  /** What the checks need of the plan. */
  readonly checks: ChecksSpec;
  readonly status: MigrationStatus;
  readonly warnings: string[] = [];
  /** Undo steps, the newest first: each is added before the step it undoes runs. */
  readonly compensations: Compensation[] = [];
  readonly images: MigrationReport['images'] = {};
  outcome: MigrationReport['outcome'] = 'completed';
  /** The cut-over is done for good (`stand`): nothing is rolled back after it. */
  stood = false;

  // What the phases found.
  preflight?: PreflightResult;
  newInstance?: LaunchResult;
  ingress?: IngressResult;
  gpu?: Record<string, Figure>;
  latency?: Record<string, Figure>;
  synthesisSeconds?: number;
  afterInstance?: InstanceInfo;

  // The person's decision, and the new Spot instance's notices while the migration guards it
  // (from its launch until the guardian takes over).
  decision?: ApprovalRecord;
  guarding = false;
  notice?: InterruptionNotice;
  /** The golden image, made while the migration waits for approval (undefined: could not be made). */
  golden?: Promise<string | undefined>;
  /** The golden image's undo: it stops the image being made and discards it with its snapshots. */
  goldenUndo?: Omit<Compensation, 'run'> & { run: () => Promise<{ deregistered: string[] }> };
  /** Pools of new instances lost before the migration stood: left out of its next launches. */
  readonly interruptedPools: InterruptedPool[] = [];
  /**
   * The run keeps its `MigrationPhase` search attribute up to date: only when it was started
   * with its attributes (so the namespace has them; an unknown one would fail every workflow
   * task), and not in runs that began before.
   */
  readonly indexed: boolean;
  private readonly indexedPhase: IndexedKeyword;
  /** Tells people what they need to know (`MIGRATION_NOTIFY_URLS` on the worker). */
  readonly notifier: Notifier;

  constructor(input: MigrationInput) {
    this.plan = input.plan;
    this.keepFailed = input.keepFailed ?? false;
    this.acts = migrationActivities(input.timeouts, input.plan.checks, () => this.status.phase);
    this.checks = checksSpec(input.plan);
    const info = workflowInfo();
    this.workflowId = info.workflowId;
    this.runId = info.runId;
    this.indexedPhase = new IndexedKeyword(MIGRATION_PHASE, PLAN_NAME);
    this.indexed = this.indexedPhase.on;
    this.notifier = new Notifier({ workflowId: this.workflowId, planName: this.plan.name, region: this.plan.region });
    this.status = {
      workflowId: this.workflowId,
      planName: this.plan.name,
      region: this.plan.region,
      phase: 'preflight',
      phases: PHASES.map((p) => ({ name: p.name, title: p.title, state: 'pending', attempts: 0, figures: {} })),
      oldInstanceId: this.plan.source.instanceId,
      ignoredMessages: [],
      compensations: [],
    };
    setHandler(statusQuery, () => this.status, {
      description: 'Phases with state, attempts, timing, figures and errors; top-level `phase`.',
    });
  }

  record(name: PhaseName): PhaseRecord {
    return this.status.phases.find((p) => p.name === name) as PhaseRecord;
  }

  /** The Web UI's current details: the phase, the new instance, what a person must do, the phase table. */
  refreshDetails(): void {
    const { status } = this;
    const instance = status.newInstanceId ? ` · new instance \`${status.newInstanceId}\`` : '';
    const failing = status.undoFailing
      ? `\n\n**An undo step keeps failing**: ${status.undoFailing.name}, since ${status.undoFailing.since} (${status.undoFailing.tries} tries): ${status.undoFailing.lastError}. Next try at ${status.undoFailing.nextTryAt}; it is tried for up to a day. Check AWS (the region, the worker's permissions).`
      : '';
    const waiting =
      status.phase === 'awaiting-approval'
        ? '\n\nWaiting for a person: send the signal `approve` {"by": "name"} or `reject` {"by": "name", "reason": "…"}, or the update `decide` {"decision": "approve", "by": "name"}, which answers at once.'
        : '';
    const refused = status.ignoredMessages.slice(-REFUSALS_SHOWN).reverse();
    const refusals = refused.length
      ? `\n\n**Refused, not acted on** (newest first):\n\n${refused.map((m) => `- ${m.at} \`${m.name}\`: ${m.reason}`).join('\n')}`
      : '';
    setCurrentDetails(
      `**${this.plan.name}**: ${status.phase}${instance}${waiting}${failing}${refusals}\n\n${renderPhaseTable(status.phases)}`,
    );
    this.indexedPhase.set(status.phase);
  }

  /**
   * Adds the undo of the step about to run: it finds its own target, so a step that half-ran is
   * undone too. A step run again (after a relaunch) moves its undo to the front, so it runs once,
   * in the order the steps last ran.
   */
  undoable(c: Compensation): void {
    const earlier = this.compensations.findIndex((x) => x.name === c.name);
    if (earlier >= 0) this.compensations.splice(earlier, 1);
    this.compensations.unshift(c);
  }

  /** From here on the migration stands: what follows never rolls it back. */
  stand(): void {
    this.compensations.length = 0;
    this.stood = true;
    this.status.phase = 'finalizing';
    this.refreshDetails();
  }

  /** Runs one phase, recording its state, attempts, timing, figures and failure. */
  async phase<T extends { attempt?: number }>(
    name: PhaseName,
    work: () => Promise<T>,
    figures?: (r: T) => Record<string, Figure>,
  ): Promise<T> {
    const rec = this.record(name);
    this.status.phase = name;
    rec.state = 'running';
    rec.startedAt = new Date().toISOString();
    this.refreshDetails();
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
      this.status.error = { type: failureType(err), message: rec.lastError, phase: name };
      throw err;
    } finally {
      rec.endedAt = new Date().toISOString();
      rec.durationMs = Date.parse(rec.endedAt) - Date.parse(rec.startedAt);
      this.refreshDetails();
    }
  }

  /** Runs the plan's commands of a step on the new instance and keeps their output in the phase. */
  async runCommands(name: PhaseName, vm: LaunchResult, commands: string[], timeoutSeconds: number) {
    const r = await this.acts.remote.runRemote({
      region: this.plan.region,
      instanceId: vm.instanceId,
      label: name,
      commands,
      timeoutSeconds,
    });
    this.record(name).output = {
      exitCode: r.exitCode,
      stdoutTail: r.stdoutTail,
      stderrTail: r.stderrTail,
      ...(r.cut ? { cut: r.cut } : {}),
    };
    return r;
  }

  /** A phase that is one remote step: skipped when the plan has no commands for it. */
  async remoteStep(name: PhaseName, vm: LaunchResult, commands: string[]) {
    if (commands.length === 0) {
      this.record(name).state = 'skipped';
      this.record(name).figures.commands = { value: 'none in the plan', source: 'configured' };
      return undefined;
    }
    return this.phase(
      name,
      () => this.runCommands(name, vm, commands, 3 * 3600),
      (r) => ({
        exitCode: { value: r.exitCode, source: 'measured' },
        durationSeconds: { value: r.durationMs / 1000, unit: 's', source: 'measured' },
      }),
    );
  }
}
