/**
 * Section 3, migration overhead: a whole migration (on-demand, approved through `decide` the
 * moment it asks) with AWS answering at once, against bench/sequential-migration.ts, which makes
 * the same calls with the same activity code in a plain sequential script. Each round runs
 * both, on fresh old services, in alternating order; the ratio is taken per round.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Plan } from '../../src/plan/schema';
import { migrationWorkflowId } from '../../src/shared/constants';
import { activityTimings, fetchEvents, workflowTaskWaits } from '../history';
import { ApprovalWatch, runMigration, seededPlan } from '../migrations';
import { openAccount, spawnBenchWorker, type Account, type Stack } from '../stack';
import { summarize, type Summary } from '../stats';

export interface MigrationRound {
  temporalMs: number;
  scriptMs: number;
  ratio: number;
  /** Where the Temporal run's time went (ms). */
  activitiesMs: number;
  activityQueueMs: number;
  workflowTaskMs: number;
  clientMs: number;
  scriptActivitiesMs: number;
}

export interface MigrationResult {
  rounds: MigrationRound[];
  temporal: Summary;
  script: Summary;
  ratio: Summary;
  breakdown: {
    /** Activity execution (started → closed), summed over the run. */
    activities: Summary;
    /** Activity schedule-to-start, summed. */
    activityQueue: Summary;
    /** Between one activity's close and the next one's schedule: workflow task round trips. */
    workflowTasks: Summary;
    /** Workflow task schedule-to-start, each. */
    workflowTaskWait: Summary;
    /** Client → server start and result delivery. */
    client: Summary;
    /** The script's own calls, summed. */
    scriptActivities: Summary;
  };
  /** The activities of the Temporal run, in order; the script makes the same calls. */
  calls: string[];
  sameCalls: boolean;
  target: { ratio: number; met: boolean };
}

const REGION = 'us-east-1';

export async function benchMigration(
  stack: Stack,
  options: { runs: number; log: (s: string) => void; /** Round 0, not counted (default true). */ warmUp?: boolean },
): Promise<MigrationResult> {
  const account = await openAccount(stack, REGION);
  const worker = await spawnBenchWorker(stack, account);
  const script = await spawnScript(account);
  const watch = new ApprovalWatch([account.world]);
  try {
    const rounds: MigrationRound[] = [];
    const wftWaits: number[] = [];
    let calls: string[] = [];
    let sameCalls = true;
    // Round 0 warms both up (JIT, connections, first-use code paths) and is not counted.
    for (let i = options.warmUp === false ? 1 : 0; i <= options.runs; i++) {
      const a = await seededPlan(account);
      const b = await seededPlan(account);
      const runTemporal = async () => {
        const run = await runMigration(stack.client, worker.taskQueue, a.plan, a.seeded.publicIp, watch);
        return { run, events: await fetchEvents(stack.client, run.workflowId) };
      };
      const runScript = () => script.migrate(b.plan);
      let t: Awaited<ReturnType<typeof runTemporal>>;
      let s: Awaited<ReturnType<typeof runScript>>;
      if (i % 2 === 0) {
        t = await runTemporal();
        s = await runScript();
      } else {
        s = await runScript();
        t = await runTemporal();
      }
      const acts = activityTimings(t.events);
      const types = acts.map((x) => x.activityType);
      const scriptTypes = s.calls.map((c) => c.name);
      if (i > 0 && JSON.stringify(types) !== JSON.stringify(scriptTypes)) sameCalls = false;
      calls = types;
      // Round trips between activities, leaving out the wait for the decision.
      const decided = Date.parse(t.run.report.approval?.at ?? '');
      let gaps = 0;
      for (let k = 1; k < acts.length; k++) {
        const prev = acts[k - 1].closedAt ?? NaN;
        if (prev <= decided && acts[k].scheduledAt >= decided) continue;
        gaps += acts[k].scheduledAt - prev;
      }
      const started = t.events[0]?.at ?? NaN;
      const completed = t.events[t.events.length - 1]?.at ?? NaN;
      gaps +=
        (acts[0]?.scheduledAt ?? started) - started + (completed - (acts[acts.length - 1]?.closedAt ?? completed));
      const activitiesMs = acts.reduce((sum, x) => sum + ((x.closedAt ?? NaN) - (x.startedAt ?? NaN)), 0);
      const activityQueueMs = acts.reduce((sum, x) => sum + ((x.startedAt ?? NaN) - x.scheduledAt), 0);
      const round: MigrationRound = {
        temporalMs: t.run.netMs,
        scriptMs: s.totalMs,
        ratio: t.run.netMs / s.totalMs,
        activitiesMs,
        activityQueueMs,
        workflowTaskMs: gaps,
        clientMs: t.run.netMs - (completed - started - t.run.approvalWaitMs),
        scriptActivitiesMs: s.calls.reduce((sum, c) => sum + c.ms, 0),
      };
      if (i === 0) {
        options.log(
          `  warm-up: Temporal ${round.temporalMs} ms, script ${Math.round(round.scriptMs)} ms (not counted)`,
        );
        continue;
      }
      rounds.push(round);
      wftWaits.push(...workflowTaskWaits(t.events));
      options.log(
        `  round ${i}/${options.runs}: Temporal ${round.temporalMs} ms, script ${Math.round(round.scriptMs)} ms, ratio ${round.ratio.toFixed(2)}`,
      );
    }
    const pick = (f: (r: MigrationRound) => number) => summarize(rounds.map(f));
    const ratio = pick((r) => r.ratio);
    return {
      rounds,
      temporal: pick((r) => r.temporalMs),
      script: pick((r) => r.scriptMs),
      ratio,
      breakdown: {
        activities: pick((r) => r.activitiesMs),
        activityQueue: pick((r) => r.activityQueueMs),
        workflowTasks: pick((r) => r.workflowTaskMs),
        workflowTaskWait: summarize(wftWaits),
        client: pick((r) => r.clientMs),
        scriptActivities: pick((r) => r.scriptActivitiesMs),
      },
      calls,
      sameCalls,
      target: { ratio: 1.5, met: ratio.median <= 1.5 },
    };
  } finally {
    watch.close();
    await script.stop();
    await worker.stop();
    await account.close();
  }
}

interface ScriptProcess {
  migrate(plan: Plan): Promise<{ totalMs: number; calls: { name: string; ms: number }[] }>;
  stop(): Promise<void>;
}

async function spawnScript(account: Account): Promise<ScriptProcess> {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    ['--import', 'tsx', join(__dirname, '..', 'sequential-migration.ts')],
    {
      env: { ...process.env, AWS_ENDPOINT_URL: account.proxy.endpoint, SSM_POLL_MS: '2000' },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let errors = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (errors = (errors + s).slice(-10_000)));
  const pending = new Map<
    string,
    (r: { totalMs: number; calls: { name: string; ms: number }[]; error?: string }) => void
  >();
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise<void>((resolve, reject) => {
    child.once('exit', () => reject(new Error(`the sequential script exited:\n${errors}`)));
    lines.on('line', (line) => {
      if (line.startsWith('sequential-migration ready')) return resolve();
      const msg = JSON.parse(line) as {
        id: string;
        totalMs: number;
        calls: { name: string; ms: number }[];
        error?: string;
      };
      pending.get(msg.id)?.(msg);
      pending.delete(msg.id);
    });
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  await ready;
  return {
    async migrate(plan) {
      const id = migrationWorkflowId(plan.name);
      const answer = new Promise<{ totalMs: number; calls: { name: string; ms: number }[]; error?: string }>(
        (resolve) => pending.set(id, resolve),
      );
      child.stdin.write(`${JSON.stringify({ id, plan })}\n`);
      const r = await answer;
      if (r.error) throw new Error(`the sequential script failed: ${r.error}`);
      return r;
    },
    async stop() {
      child.stdin.end();
      child.kill('SIGTERM');
      await exited;
    },
  };
}
