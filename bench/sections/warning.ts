/**
 * Section 2, downtime per interruption, on a timeline taken from published measurements (the
 * sources are in BENCHMARKS.md) and run at a time scale of 1/20: RunInstances → running, the SSM
 * agent online, the first boot of a volume that loads lazily from the golden image's snapshot,
 * the services and the model, the Elastic IP taking effect, every API call's latency. Each case
 * ends with AWS taking the instance two minutes after the interruption warning; the figure is how
 * long the Elastic IP then points at nothing that serves (0 when it moved in time).
 *
 * What is not scaled (so the figures are pessimistic): our own orchestration (workflow tasks,
 * activity dispatch) and moto's own answer times, which count 20× in "real" terms here.
 */
import { DescribeInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import type { GuardianStatus } from '../../src/shared/spot';
import { mulberry32 } from '../../test/harness/random';
import { createQueue, endSpotWorkflows, waitForGuardian } from '../../test/harness/spot';
import { START_MARKER } from '../../test/harness/world';
import { stopGuardingSignal } from '../../src/shared/spot';
import { currentRunId, guardedService, nextRun, putSpotEvent, startGuardian } from '../spot';
import { openAccount, spawnBenchWorker, type Account, type Stack } from '../stack';
import { sleep, summarize, type Summary } from '../stats';
import { waitRouterKnows } from './recovery';

export const TIME_SCALE = 20;
/**
 * The timeline of a replacement in real milliseconds, each from a published measurement (see
 * BENCHMARKS.md, "Timeline model"); scaled by 1/TIME_SCALE when injected.
 */
export const TIMELINE = {
  /** RunInstances → running. */
  launchToRunningMs: 17_000,
  /** Running → the SSM agent online (until then Run Command refuses the instance). */
  agentAfterRunningMs: 30_000,
  /** EC2's eventual consistency: a new instance is unknown by id for about a second. */
  consistencyLagMs: 1_000,
  /** What `remote.start` reads of a fresh volume (container images, libraries, weights) while it loads lazily from its snapshot. */
  firstBootReadMs: 120_000,
  /** The services up and the model on the GPU, once their files are read. */
  modelStartMs: 20_000,
  /** AssociateAddress until the address reaches the new instance. */
  eipMs: 5_000,
  apiMinMs: 100,
  apiMaxMs: 300,
  /** The interruption warning: AWS takes the instance two minutes after it. */
  warningMs: 120_000,
  ssmPollMs: 2_000,
  /**
   * A command's first second or two on SSM: unknown to GetCommandInvocation, then Pending until
   * the agent picks it up, then InProgress.
   */
  commandPreludeMs: [500, 1_000, 1_500] as const,
};
const scaled = (ms: number) => ms / TIME_SCALE;

export interface WarningSample {
  /** Notice (the first one) → Elastic IP answered by AWS on the replacement (scaled). */
  recoveryMs: number;
  /** Deadline (the interruption) minus the EIP move (scaled); negative = after the instance was gone. */
  marginMs: number;
  /** Real seconds the Elastic IP pointed at nothing that serves: the EIP move after the deadline, ×TIME_SCALE. */
  downtimeS: number;
  /** State of the old instance when the EIP moved. */
  oldStateAtMove: string;
  /** The guardian's own record (notice → EIP moved, workflow clock). */
  recordedMs: number;
  /** The replacement was the warm spare. */
  viaSpare: boolean;
}

export interface WarningCase {
  name: string;
  about: string;
  /** From the first notice to the interruption (scaled). */
  deadlineMs: number;
  samples: WarningSample[];
  recovery: Summary;
  margin: Summary;
  downtime: Summary;
  /** The case's target, when it has one: no downtime in any sample. */
  target?: string;
  /** Every sample met the target (or, without one, moved the EIP before the deadline). */
  met: boolean;
}

export interface WarningResult {
  timeScale: number;
  injected: Record<string, number>;
  cases: WarningCase[];
}

interface CaseSpec {
  name: string;
  about: string;
  /** A rebalance recommendation this long before the interruption warning; undefined: the warning alone. */
  leadMs?: number;
  spare?: boolean;
  target?: string;
}

const CASES: CaseSpec[] = [
  { name: 'interruption only', about: 'the interruption warning alone, then the interruption 2 min later' },
  ...[0, 60_000, 180_000].map((leadMs): CaseSpec => ({
    name: `rebalance, lead ${leadMs / 1000} s`,
    about: `a rebalance recommendation, the interruption warning ${leadMs / 1000} s later, the interruption 2 min after the warning`,
    leadMs,
    ...(leadMs === 180_000 ? { target: '0 s' } : {}),
  })),
  {
    name: 'warm spare',
    about:
      'spot.standby: warm; the interruption warning alone, then the interruption 2 min later; the EIP moves to the checked spare',
    spare: true,
    target: '0 s',
  },
];
/** The quick run's cases: one boot-on-demand, the spare. */
const QUICK_CASES = ['interruption only', 'warm spare'];

const REGION = 'us-west-1';

export async function benchWarning(
  stack: Stack,
  options: { repeats: number; quick?: boolean; log: (s: string) => void },
): Promise<WarningResult> {
  const account = await openAccount(stack, REGION);
  const worker = await spawnBenchWorker(stack, account, { ssmPollMs: scaled(TIMELINE.ssmPollMs) });
  const guardians: string[] = [];
  try {
    injectRealisticAws(account);
    const queueUrl = await createQueue(account.direct, REGION);

    let eipAt = 0;
    let stateAtMove = '';
    let watching = '';
    account.proxy.onAfter('AssociateAddress', async ({ request }) => {
      if (!watching || eipAt || String(request.params.DryRun) === 'true') return;
      eipAt = Date.now();
      stateAtMove = await instanceState(account, watching);
    });

    /** A guarded service of its own per kind of guardian: with and without a spare. */
    const open = async (spare: boolean) => {
      const svc = await guardedService(account, {
        spot: {
          pollInterval: '5s',
          interruptionQueueUrl: queueUrl,
          ...(spare ? { standby: 'warm' as const, standbyCheckInterval: '1h' } : {}),
        },
      });
      guardians.push(svc.guardianId);
      const handle = await startGuardian(stack.client, worker.taskQueue, svc.plan, svc.instanceId, svc.seeded.imageId);
      await waitForGuardian(handle, 'guarding', (s) => s.state === 'guarding', 120_000);
      return { svc, current: svc.instanceId, done: 0 };
    };
    const spareReady = (guardianId: string, done: number) =>
      waitForGuardian(
        stack.client.workflow.getHandle(guardianId),
        'a spare ready',
        (s: GuardianStatus) => s.replacements === done && s.spare !== undefined,
        180_000,
      );

    const out: WarningCase[] = [];
    let plain: Awaited<ReturnType<typeof open>> | undefined;
    for (const c of CASES.filter((x) => !options.quick || QUICK_CASES.includes(x.name))) {
      if (c.spare && plain) {
        // The guardian without a spare ends; its instance stays, unguarded, as after `stop`.
        await stack.client.workflow.getHandle(plain.svc.guardianId).signal(stopGuardingSignal);
      }
      const g = c.spare ? await open(true) : (plain ??= await open(false));
      await waitRouterKnows(stack, 1, REGION);
      const samples: WarningSample[] = [];
      for (let i = 0; i < options.repeats; i++) {
        if (c.spare) await spareReady(g.svc.guardianId, g.done);
        const guardianId = g.svc.guardianId;
        const runId = await currentRunId(stack.client, guardianId);
        eipAt = 0;
        stateAtMove = '';
        watching = g.current;
        const old = g.current;
        const noticeAt = Date.now();
        const lead = c.leadMs !== undefined ? scaled(c.leadMs) : 0;
        const deadline = noticeAt + lead + scaled(TIMELINE.warningMs);
        const timers: NodeJS.Timeout[] = [];
        const later = (at: number, what: () => Promise<unknown>) =>
          timers.push(setTimeout(() => void what().catch(() => undefined), at - Date.now()));
        if (c.leadMs !== undefined) {
          await putSpotEvent(account, queueUrl, 'rebalance', old, noticeAt);
          later(noticeAt + lead, () => putSpotEvent(account, queueUrl, 'interruption', old, noticeAt + lead));
        } else {
          await putSpotEvent(account, queueUrl, 'interruption', old, noticeAt);
        }
        // AWS takes the instance at the end of the warning, whatever happened meanwhile.
        later(deadline, () => account.direct.ec2(REGION).send(new TerminateInstancesCommand({ InstanceIds: [old] })));
        const newRun = await nextRun(stack.client, guardianId, runId);
        const status = await waitForGuardian(
          stack.client.workflow.getHandle(guardianId, newRun),
          'the replacement',
          (s) => s.replacements === g.done + 1,
          180_000,
        );
        g.done++;
        const event = status.events[status.events.length - 1];
        if (event.outcome !== 'replaced' || !event.newInstanceId)
          throw new Error(`${c.name}: no replacement: ${JSON.stringify(event)}`);
        if (c.spare && !event.viaSpare) throw new Error(`${c.name}: replaced by a launch, not the spare`);
        // Let the deadline pass before the next round, so every round starts alike.
        await sleep(Math.max(0, deadline - Date.now()) + 300);
        timers.forEach(clearTimeout);
        const sample: WarningSample = {
          recoveryMs: eipAt - noticeAt,
          marginMs: deadline - eipAt,
          downtimeS: (Math.max(0, eipAt - deadline) * TIME_SCALE) / 1000,
          oldStateAtMove: stateAtMove,
          recordedMs: event.recoveryMs ?? NaN,
          viaSpare: event.viaSpare === true,
        };
        samples.push(sample);
        options.log(
          `  ${c.name} ${i + 1}/${options.repeats}: EIP moved after ${sample.recoveryMs} ms (scaled), downtime ${sample.downtimeS.toFixed(1)} s (real), old instance ${sample.oldStateAtMove}`,
        );
        g.current = event.newInstanceId;
      }
      const downtime = summarize(samples.map((x) => x.downtimeS * 1000));
      out.push({
        name: c.name,
        about: c.about,
        deadlineMs: (c.leadMs !== undefined ? scaled(c.leadMs) : 0) + scaled(TIMELINE.warningMs),
        samples,
        recovery: summarize(samples.map((x) => x.recoveryMs)),
        margin: summarize(samples.map((x) => x.marginMs)),
        downtime,
        ...(c.target ? { target: c.target } : {}),
        met: c.target ? samples.every((x) => x.downtimeS === 0) : samples.every((x) => x.marginMs > 0),
      });
    }
    return {
      timeScale: TIME_SCALE,
      injected: {
        launchToRunningMs: scaled(TIMELINE.launchToRunningMs),
        agentAfterRunningMs: scaled(TIMELINE.agentAfterRunningMs),
        consistencyLagMs: scaled(TIMELINE.consistencyLagMs),
        firstBootReadMs: scaled(TIMELINE.firstBootReadMs),
        modelStartMs: scaled(TIMELINE.modelStartMs),
        eipMs: scaled(TIMELINE.eipMs),
        apiMinMs: scaled(TIMELINE.apiMinMs),
        apiMaxMs: scaled(TIMELINE.apiMaxMs),
        warningMs: scaled(TIMELINE.warningMs),
        ssmPollMs: scaled(TIMELINE.ssmPollMs),
      },
      cases: out,
    };
  } finally {
    await endSpotWorkflows(stack.client, REGION, guardians);
    await worker.stop();
    await account.close();
  }
}

/**
 * AWS on the timeline, scaled: every call the worker makes waits 5–15 ms; RunInstances answers
 * once the instance would be running (so the waiter's first look finds it running); the agent
 * registers some seconds later; the start command stays InProgress while the fresh volume is
 * read and the model starts, and only then does the app answer; AssociateAddress answers when
 * the address would reach the instance.
 */
function injectRealisticAws(account: Account): void {
  const random = mulberry32(20);
  const bootMs = scaled(TIMELINE.firstBootReadMs + TIMELINE.modelStartMs);
  account.proxy.setTiming({
    // Counted from the launch: running, then the agent.
    agentRegistrationMs: scaled(TIMELINE.launchToRunningMs + TIMELINE.agentAfterRunningMs),
    consistencyLagMs: scaled(TIMELINE.consistencyLagMs),
    commandPreludeMs: [
      scaled(TIMELINE.commandPreludeMs[0]),
      scaled(TIMELINE.commandPreludeMs[1]),
      scaled(TIMELINE.commandPreludeMs[2]),
    ],
  });
  account.proxy.onAfter('*', () =>
    sleep(scaled(TIMELINE.apiMinMs) + random() * scaled(TIMELINE.apiMaxMs - TIMELINE.apiMinMs)),
  );
  account.proxy.latency({ action: 'RunInstances', ms: scaled(TIMELINE.launchToRunningMs) });
  account.proxy.latency({ action: 'AssociateAddress', ms: scaled(TIMELINE.eipMs) });
  account.proxy.onCommand(
    (cmd) => {
      if (!cmd.commands.some((c) => c.includes(START_MARKER))) return undefined;
      setTimeout(() => {
        account.world.markStarted(cmd.instanceId);
        account.proxy.setCommandResult(cmd.commandId, cmd.instanceId, {
          status: 'Success',
          exitCode: 0,
          durationMs: bootMs,
        });
      }, bootMs);
      return { status: 'InProgress' };
    },
    { prepend: true },
  );
}

async function instanceState(account: Account, instanceId: string): Promise<string> {
  const out = await account.direct
    .ec2(account.region)
    .send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return out.Reservations?.[0]?.Instances?.[0]?.State?.Name ?? 'unknown';
}
