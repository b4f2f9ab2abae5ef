/**
 * Section 2, recovery inside the two-minute warning, with AWS as slow as it really is, at a time
 * scale of 1/20: launch → running 30 s (1.5 s), the SSM agent registered 20 s later (1 s), boot
 * and services 45 s (2.25 s), each API call
 * 100–300 ms (5–15 ms), the two minutes 6 s. Is the Elastic IP on a healthy replacement before
 * the old instance is gone?
 *
 * What is not scaled (so the figures are pessimistic): our own orchestration (workflow tasks,
 * activity dispatch) and moto's own answer times, which count 20× in "real" terms here.
 */
import { DescribeInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { mulberry32 } from '../../test/harness/aws-proxy';
import { createQueue, endSpotWorkflows, waitForGuardian } from '../../test/harness/spot';
import { START_MARKER } from '../../test/harness/world';
import { currentRunId, guardedService, nextRun, putSpotEvent, startGuardian } from '../spot';
import { openAccount, spawnBenchWorker, type Account, type Stack } from '../stack';
import { sleep, summarize, type Summary } from '../stats';
import { waitRouterKnows } from './recovery';

export const TIME_SCALE = 20;
/** Real-world figures, scaled by 1/TIME_SCALE below. */
const REAL = {
  launchToRunningMs: 30_000,
  // The SSM agent registers some seconds after the instance runs; until then Run Command refuses it.
  agentRegistrationMs: 20_000,
  // EC2's eventual consistency: a new instance is unknown by id for about a second.
  consistencyLagMs: 1_000,
  bootAndServicesMs: 45_000,
  apiMinMs: 100,
  apiMaxMs: 300,
  warningMs: 120_000,
  rebalanceLeadMs: 60_000,
  ssmPollMs: 2_000,
  // A command's first second or two on SSM: unknown to GetCommandInvocation, then Pending until
  // the agent picks it up, then InProgress.
  commandPreludeMs: [500, 1_000, 1_500] as const,
};
const scaled = (ms: number) => ms / TIME_SCALE;

export interface WarningSample {
  /** Notice (the first one) → Elastic IP answered by AWS on the replacement. */
  recoveryMs: number;
  /** Deadline (the interruption) minus the EIP move; negative = after the instance was gone. */
  marginMs: number;
  /** State of the old instance when the EIP moved. */
  oldStateAtMove: string;
  /** The guardian's own record (notice → EIP moved, workflow clock). */
  recordedMs: number;
}

export interface WarningCase {
  name: string;
  about: string;
  /** From the first notice to the interruption (scaled). */
  deadlineMs: number;
  samples: WarningSample[];
  recovery: Summary;
  margin: Summary;
  /** Every sample moved the EIP before the deadline. */
  met: boolean;
}

export interface WarningResult {
  timeScale: number;
  injected: Record<string, number>;
  cases: WarningCase[];
}

const REGION = 'us-west-1';

export async function benchWarning(
  stack: Stack,
  options: { repeats: number; log: (s: string) => void },
): Promise<WarningResult> {
  const account = await openAccount(stack, REGION);
  const worker = await spawnBenchWorker(stack, account, { ssmPollMs: scaled(REAL.ssmPollMs) });
  let guardianId = '';
  try {
    injectRealisticAws(account);
    const queueUrl = await createQueue(account.direct, REGION);
    const svc = await guardedService(account, { spot: { pollInterval: '5s', interruptionQueueUrl: queueUrl } });
    guardianId = svc.guardianId;
    const handle = await startGuardian(stack.client, worker.taskQueue, svc.plan, svc.instanceId, svc.seeded.imageId);
    await waitForGuardian(handle, 'guarding', (s) => s.state === 'guarding', 120_000);
    await waitRouterKnows(stack, 1, REGION);

    let eipAt = 0;
    let stateAtMove = '';
    let watching = '';
    account.proxy.onAfter('AssociateAddress', async ({ request }) => {
      if (!watching || eipAt || String(request.params.DryRun) === 'true') return;
      eipAt = Date.now();
      stateAtMove = await instanceState(account, watching);
    });

    const cases: { name: string; about: string; leadMs: number }[] = [
      {
        name: 'rebalance first',
        about: `a rebalance recommendation, then the interruption warning ${REAL.rebalanceLeadMs / 1000} s later (assumed lead), then the interruption 2 min after the warning`,
        leadMs: scaled(REAL.rebalanceLeadMs),
      },
      {
        name: 'interruption only',
        about: 'the interruption warning alone, then the interruption 2 min later',
        leadMs: 0,
      },
    ];
    const out: WarningCase[] = [];
    let current = svc.instanceId;
    let done = 0;
    for (const c of cases) {
      const samples: WarningSample[] = [];
      for (let i = 0; i < options.repeats; i++) {
        const runId = await currentRunId(stack.client, guardianId);
        eipAt = 0;
        stateAtMove = '';
        watching = current;
        const old = current;
        const noticeAt = Date.now();
        const deadline = noticeAt + c.leadMs + scaled(REAL.warningMs);
        const timers: NodeJS.Timeout[] = [];
        const later = (at: number, what: () => Promise<unknown>) =>
          timers.push(setTimeout(() => void what().catch(() => undefined), at - Date.now()));
        if (c.leadMs > 0) {
          await putSpotEvent(account, queueUrl, 'rebalance', old, noticeAt);
          later(noticeAt + c.leadMs, () => putSpotEvent(account, queueUrl, 'interruption', old, noticeAt + c.leadMs));
        } else {
          await putSpotEvent(account, queueUrl, 'interruption', old, noticeAt);
        }
        // AWS takes the instance at the end of the warning, whatever happened meanwhile.
        later(deadline, () => account.direct.ec2(REGION).send(new TerminateInstancesCommand({ InstanceIds: [old] })));
        const newRun = await nextRun(stack.client, guardianId, runId);
        const status = await waitForGuardian(
          stack.client.workflow.getHandle(guardianId, newRun),
          'the replacement',
          (s) => s.replacements === done + 1,
          120_000,
        );
        done++;
        const event = status.events[status.events.length - 1];
        if (event.outcome !== 'replaced' || !event.newInstanceId)
          throw new Error(`${c.name}: no replacement: ${JSON.stringify(event)}`);
        // Let the deadline pass before the next round, so every round starts alike.
        await sleep(Math.max(0, deadline - Date.now()) + 300);
        timers.forEach(clearTimeout);
        const sample: WarningSample = {
          recoveryMs: eipAt - noticeAt,
          marginMs: deadline - eipAt,
          oldStateAtMove: stateAtMove,
          recordedMs: event.recoveryMs ?? NaN,
        };
        samples.push(sample);
        options.log(
          `  ${c.name} ${i + 1}/${options.repeats}: EIP moved after ${sample.recoveryMs} ms, margin ${sample.marginMs} ms (scaled), old instance ${sample.oldStateAtMove}`,
        );
        current = event.newInstanceId;
      }
      out.push({
        name: c.name,
        about: c.about,
        deadlineMs: c.leadMs + scaled(REAL.warningMs),
        samples,
        recovery: summarize(samples.map((s) => s.recoveryMs)),
        margin: summarize(samples.map((s) => s.marginMs)),
        met: samples.every((s) => s.marginMs > 0),
      });
    }
    return {
      timeScale: TIME_SCALE,
      injected: {
        launchToRunningMs: scaled(REAL.launchToRunningMs),
        agentRegistrationMs: scaled(REAL.agentRegistrationMs),
        consistencyLagMs: scaled(REAL.consistencyLagMs),
        bootAndServicesMs: scaled(REAL.bootAndServicesMs),
        apiMinMs: scaled(REAL.apiMinMs),
        apiMaxMs: scaled(REAL.apiMaxMs),
        warningMs: scaled(REAL.warningMs),
        rebalanceLeadMs: scaled(REAL.rebalanceLeadMs),
        ssmPollMs: scaled(REAL.ssmPollMs),
      },
      cases: out,
    };
  } finally {
    await endSpotWorkflows(stack.client, REGION, guardianId ? [guardianId] : []);
    await worker.stop();
    await account.close();
  }
}

/**
 * AWS as slow as it is, scaled: every call the worker makes waits 5–15 ms; RunInstances answers
 * once the instance would be running (so the waiter's first look finds it running); the start
 * command stays InProgress until the app would be up, and only then does the app answer.
 */
function injectRealisticAws(account: Account): void {
  const random = mulberry32(20);
  account.proxy.setTiming({
    agentRegistrationMs: scaled(REAL.agentRegistrationMs),
    consistencyLagMs: scaled(REAL.consistencyLagMs),
    commandPreludeMs: [
      scaled(REAL.commandPreludeMs[0]),
      scaled(REAL.commandPreludeMs[1]),
      scaled(REAL.commandPreludeMs[2]),
    ],
  });
  account.proxy.onAfter('*', () => sleep(scaled(REAL.apiMinMs) + random() * scaled(REAL.apiMaxMs - REAL.apiMinMs)));
  account.proxy.latency({ action: 'RunInstances', ms: scaled(REAL.launchToRunningMs) });
  account.proxy.onCommand(
    (cmd) => {
      if (!cmd.commands.some((c) => c.includes(START_MARKER))) return undefined;
      setTimeout(() => {
        account.world.markStarted(cmd.instanceId);
        account.proxy.setCommandResult(cmd.commandId, cmd.instanceId, {
          status: 'Success',
          exitCode: 0,
          durationMs: scaled(REAL.bootAndServicesMs),
        });
      }, scaled(REAL.bootAndServicesMs));
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
