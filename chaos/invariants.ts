/**
 * The promises a chaos run checks, over what it saw of AWS and Temporal while the faults fell
 * and at the end. The checker holds no I/O: the driver feeds it observations (a sample every
 * few hundred milliseconds, the moment the old instance is stopped, each queue message) and
 * the final state; it answers with the violations, each with when it happened.
 */

export const INVARIANTS = {
  'old-stopped-early':
    'the old instance is never stopped unless a checked new instance holds the Elastic IP and a person approved',
  'recovery-bound': 'after any loss, the Elastic IP is on a running instance that passes the checks within the bound',
  'one-serving': 'once things settle, at most one live serving instance per plan, plus the spare when configured',
  orphans: 'nothing orphaned after completion, rollback or guardian stop (nothing `cleanup` would list)',
  notices:
    'every Spot notice on the queue is acted on or recorded as ignored with a reason, and deleted only after that',
  'end-state': 'every workflow ends in, or stays in, a state its docs describe, with no stuck compensation',
} as const;

export type InvariantName = keyof typeof INVARIANTS;

export interface Violation {
  invariant: InvariantName;
  /** Milliseconds since the run began. */
  atMs: number;
  detail: string;
}

/** What a sample saw. */
export interface Sample {
  atMs: number;
  /** The service answered on the Elastic IP (the backend's health, from outside). */
  serves: boolean;
  /** Who holds the Elastic IP, and its state. */
  holder?: string;
  holderState?: string;
}

/** A window in which recovery cannot make progress (AWS unreachable, the server or every worker down). */
export interface Window {
  fromMs: number;
  toMs: number;
  why: string;
  /** Its own catch-up time, where it differs from the checker's (a killed worker's heartbeat timeouts). */
  catchUpMs?: number;
}

/** A spell without a serving instance behind the Elastic IP, and how much of it was blocked. */
export interface Outage {
  fromMs: number;
  toMs: number;
  /** Blocked time within it (with catch-up): not held against the bound. */
  blockedMs: number;
}

/** The moment the old instance's stop went through (the proxy's hook, before the caller hears of it). */
export interface StopSeen {
  atMs: number;
  /** When the person's approval was sent, if it was. */
  approvedAtMs?: number;
  holder?: string;
  holderState?: string;
  serves: boolean;
}

/** A message put on the interruption queue, and what became of it. */
export interface NoticeTrail {
  messageId: string;
  instanceId: string;
  sentAtMs: number;
  /** The router's record: routed to a workflow, or dropped with a reason. */
  record?: { outcome: 'routed' | 'dropped'; guardianId?: string; reason?: string };
  /** Routed: whether that workflow shows it acted on it or ignored it with a reason. */
  taken?: boolean;
  /** When it was deleted from the queue (through the router), if it was. */
  deletedAtMs?: number;
}

export interface FinalState {
  atMs: number;
  /** The migration's end: its outcome (`completed`, `rolled back`, …) or `running`. */
  migration: { outcome: string; compensations: { name: string; state: string }[]; undoFailing?: boolean };
  /** The guardian, where there is one: its state before it was told to stop, and after. */
  guardian?: { before: string; after: string };
  /** Live (pending or running) instances of the plan once settled, without the old one. */
  live: string[];
  /** The warm spare, if the guardian keeps one. */
  spare?: string;
  /**
   * The Elastic IP as a last look saw it, after the sampler stopped: the last word on whether
   * the run ends with service (a sample still in flight at the stop may predate a recovery).
   */
  serves: boolean;
  holder?: string;
  holderState?: string;
  oldInstanceId: string;
  /** What `cleanup` would list once everything ended. */
  leftovers: string[];
  /** Messages still on the queue, visible or in flight. */
  queued: number;
}

export interface CheckerOptions {
  /** How long the service may be without a serving instance behind its Elastic IP. */
  boundMs: number;
  /** Time after a blocking window in which recovery is still catching up (retries back off). */
  catchUpMs: number;
  /** The outcomes the person's decision allows. */
  outcomes: readonly string[];
  /** A warm spare is configured. */
  warmSpare: boolean;
  /** The migration reached Spot life: the guardian should guard until told to stop. */
  guarded: boolean;
}

export class Checker {
  readonly violations: Violation[] = [];
  private readonly blocked: Window[] = [];
  private downSince?: number;
  private lastSample?: Sample;
  /** Every spell without service, for the report: whether the bound was put to the test. */
  readonly outages: Outage[] = [];

  constructor(private readonly options: CheckerOptions) {}

  /** Known once the migration ended: whether a guardian took over. */
  expectGuardian(guarded: boolean): void {
    this.options.guarded = guarded;
  }

  private violate(invariant: InvariantName, atMs: number, detail: string): void {
    this.violations.push({ invariant, atMs, detail });
  }

  /** The longest time without service, less the blocked time in it (for the report). */
  get longestDownMs(): number {
    return Math.max(0, ...this.outages.map((o) => o.toMs - o.fromMs - o.blockedMs));
  }

  /** Time without service since `from` until `to`, less the blocked time in it. */
  private counted(fromMs: number, toMs: number): number {
    return toMs - fromMs - this.blockedWithin(fromMs, toMs);
  }

  block(window: Window): void {
    this.blocked.push(window);
  }

  /** Blocked time (with each window's catch-up) within [from, to). */
  blockedWithin(fromMs: number, toMs: number): number {
    const spans = this.blocked
      .map(
        (w) => [Math.max(fromMs, w.fromMs), Math.min(toMs, w.toMs + (w.catchUpMs ?? this.options.catchUpMs))] as const,
      )
      .filter(([a, b]) => b > a)
      .sort((x, y) => x[0] - y[0]);
    let total = 0;
    let end = -Infinity;
    for (const [a, b] of spans) {
      const start = Math.max(a, end);
      if (b > start) total += b - start;
      end = Math.max(end, b);
    }
    return total;
  }

  sample(s: Sample): void {
    this.lastSample = s;
    if (s.serves) {
      if (this.downSince !== undefined) this.closeDown(this.downSince, s.atMs);
      this.downSince = undefined;
      return;
    }
    this.downSince ??= s.atMs;
    if (
      this.counted(this.downSince, s.atMs) > this.options.boundMs &&
      !this.violations.some((v) => v.invariant === 'recovery-bound' && v.atMs >= this.downSince!)
    )
      this.violate(
        'recovery-bound',
        s.atMs,
        `no serving instance behind the Elastic IP for ${((s.atMs - this.downSince) / 1000).toFixed(1)} s (bound ${this.options.boundMs / 1000} s beyond blocked time); holder ${s.holder ?? 'none'} (${s.holderState ?? '-'})`,
      );
  }

  /** Records the spell without service from `from` to `to`; returns its time less blocked time. */
  private closeDown(from: number, to: number): number {
    const blockedMs = this.blockedWithin(from, to);
    this.outages.push({ fromMs: from, toMs: to, blockedMs });
    return to - from - blockedMs;
  }

  oldStopped(stop: StopSeen): void {
    const problems: string[] = [];
    if (stop.approvedAtMs === undefined || stop.approvedAtMs > stop.atMs) problems.push('no person had approved');
    if (!stop.holder || stop.holder === 'old') problems.push(`the Elastic IP was on ${stop.holder ?? 'nothing'}`);
    else if (stop.holderState !== 'running')
      problems.push(`its holder ${stop.holder} was ${stop.holderState ?? 'unknown'}`);
    if (!stop.serves) problems.push('the service did not answer on the Elastic IP');
    if (problems.length)
      this.violate('old-stopped-early', stop.atMs, `the old instance was stopped while ${problems.join(', ')}`);
  }

  /** The final checks; `notices` are every message the run put on the queue. */
  finish(state: FinalState, notices: readonly NoticeTrail[]): Violation[] {
    const at = state.atMs;
    this.sample({
      atMs: at,
      serves: state.serves,
      ...(state.holder ? { holder: state.holder } : {}),
      ...(state.holderState ? { holderState: state.holderState } : {}),
    });
    if (this.downSince !== undefined) {
      const counted = this.closeDown(this.downSince, at);
      if (!this.violations.some((v) => v.invariant === 'recovery-bound' && v.atMs >= this.downSince!))
        this.violate(
          'recovery-bound',
          at,
          `at the end, no serving instance behind the Elastic IP for ${(counted / 1000).toFixed(1)} s; holder ${this.lastSample?.holder ?? 'none'}`,
        );
    }
    const allowed = 1 + (this.options.warmSpare && state.spare ? 1 : 0);
    if (state.live.length > allowed)
      this.violate(
        'one-serving',
        at,
        `${state.live.length} live instances of the plan once settled: ${state.live.join(', ')} (at most ${allowed})`,
      );
    // A rollback (or a failed run) leaves nothing of the plan running; after an approval that
    // timed out, the new instance keeps the Elastic IP and serves (the old one runs beside it).
    if (!['completed', 'approval timed out'].includes(state.migration.outcome) && state.live.length > 0)
      this.violate(
        'one-serving',
        at,
        `the migration ended ${state.migration.outcome}, and ${state.live.join(', ')} still live`,
      );
    if (state.leftovers.length) this.violate('orphans', at, `cleanup would list: ${state.leftovers.join('; ')}`);

    for (const n of notices) {
      const what = `the ${n.instanceId} notice (message ${n.messageId})`;
      if (!n.record) this.violate('notices', at, `${what} has no record at the router`);
      else if (n.record.outcome === 'dropped' && !n.record.reason)
        this.violate('notices', at, `${what} was dropped without a reason`);
      else if (n.record.outcome === 'routed' && !n.taken)
        this.violate('notices', at, `${what} was routed to ${n.record.guardianId ?? '?'}, which shows nothing of it`);
      if (n.deletedAtMs !== undefined && !n.record)
        this.violate('notices', n.deletedAtMs, `${what} was deleted before it was recorded`);
    }
    if (state.queued > 0) this.violate('notices', at, `${state.queued} message(s) still on the queue`);

    const m = state.migration;
    if (!this.options.outcomes.includes(m.outcome))
      this.violate('end-state', at, `the migration ended ${m.outcome}; expected ${this.options.outcomes.join(' or ')}`);
    const stuck = m.compensations.filter((c) => c.state !== 'done' && c.state !== 'skipped');
    if (stuck.length || m.undoFailing)
      this.violate(
        'end-state',
        at,
        `compensations not done: ${stuck.map((c) => `${c.name} (${c.state})`).join(', ') || 'an undo step keeps failing'}`,
      );
    if (this.options.guarded) {
      if (!state.guardian) this.violate('end-state', at, 'no guardian after a completed Spot migration');
      else {
        if (state.guardian.before !== 'guarding')
          this.violate('end-state', at, `the guardian was ${state.guardian.before} once settled`);
        if (state.guardian.after !== 'stopped')
          this.violate('end-state', at, `the guardian ended ${state.guardian.after} when told to stop`);
      }
    }
    return this.violations;
  }
}
