/**
 * Section 1, recovery overhead: an interruption warning put on the SQS queue → the Elastic IP on
 * a healthy replacement, with AWS answering at once (moto), repeated. Everything measured here
 * is our own overhead: the router's pickup, workflow and activity round trips, the activities'
 * own work against moto and the app's stand-ins.
 */
import { routerWorkflowId } from '../../src/shared/constants';
import { guardianStatusQuery, routerStatusQuery } from '../../src/shared/spot';
import { createQueue, endSpotWorkflows, waitForGuardian } from '../../test/harness/spot';
import { activityTimings, fetchEvents, type ActivityTiming } from '../history';
import { currentRunId, guardedService, nextRun, patientQuery, putSpotEvent, startGuardian } from '../spot';
import { openAccount, spawnBenchWorker, type Account, type Stack } from '../stack';
import { sleep, summarize, type Summary } from '../stats';

export interface RecoverySample {
  /** Message put on the queue (bench clock). */
  noticeAt: number;
  /** The router's ReceiveMessage that carried it answered (proxy). */
  pickupMs: number;
  /** The guardian's own record: notice → Elastic IP moved (workflow clock). */
  recordedMs: number;
  /** AssociateAddress answered by AWS (proxy), from the notice. */
  eipAnsweredMs: number;
  /** Execution (start → close) of the replacement's activities. */
  launchMs: number;
  startMs: number;
  checksMs: number;
  eipMs: number;
  /** What is left: signal delivery, workflow tasks, activity dispatch. */
  orchestrationMs: number;
  activities: { type: string; queueMs: number; execMs: number }[];
  /** The slowest calls the local AWS (moto and the app's stand-ins behind the proxy) answered meanwhile. */
  slowestAws: { action: string; ms: number }[];
}

export interface RecoveryResult {
  recoveries: number;
  pollInterval: string;
  samples: RecoverySample[];
  recorded: Summary;
  eipAnswered: Summary;
  steps: Record<'pickup' | 'launch' | 'start' | 'checks' | 'eip' | 'orchestration', Summary>;
  target: { p50Ms: number; met: boolean };
}

const REGION = 'us-east-2';

export async function benchRecovery(
  stack: Stack,
  options: { recoveries: number; pollInterval?: string; log: (s: string) => void },
): Promise<RecoveryResult> {
  const pollInterval = options.pollInterval ?? '5s';
  const account = await openAccount(stack, REGION);
  const worker = await spawnBenchWorker(stack, account);
  let guardianId = '';
  try {
    const queueUrl = await createQueue(account.direct, REGION);
    const svc = await guardedService(account, { spot: { pollInterval, interruptionQueueUrl: queueUrl } });
    guardianId = svc.guardianId;
    const handle = await startGuardian(stack.client, worker.taskQueue, svc.plan, svc.instanceId, svc.seeded.imageId);
    await waitForGuardian(handle, 'guarding', (s) => s.state === 'guarding', 120_000);
    await waitRouterKnows(stack, 1);

    const samples: RecoverySample[] = [];
    let current = svc.instanceId;
    for (let i = 0; i < options.recoveries; i++) {
      // A moment apart, at no fixed phase of the router's poll timer.
      await sleep(200 + Math.random() * 1000);
      const r = await recoverOnce(stack, account, guardianId, queueUrl, current);
      samples.push(r.sample);
      options.log(
        `  recovery ${i + 1}/${options.recoveries}: ${r.sample.recordedMs} ms (pickup ${r.sample.pickupMs} ms)`,
      );
      current = r.newInstanceId;
    }
    const pick = (f: (s: RecoverySample) => number) => summarize(samples.map(f));
    const recorded = pick((s) => s.recordedMs);
    return {
      recoveries: samples.length,
      pollInterval,
      samples,
      recorded,
      eipAnswered: pick((s) => s.eipAnsweredMs),
      steps: {
        pickup: pick((s) => s.pickupMs),
        launch: pick((s) => s.launchMs),
        start: pick((s) => s.startMs),
        checks: pick((s) => s.checksMs),
        eip: pick((s) => s.eipMs),
        orchestration: pick((s) => s.orchestrationMs),
      },
      target: { p50Ms: 1000, met: recorded.median <= 1000 },
    };
  } finally {
    await endSpotWorkflows(stack.client, REGION, guardianId ? [guardianId] : []);
    await worker.stop();
    await account.close();
  }
}

/**
 * One interruption warning on the queue for the guarded instance, and what it took until the
 * guardian's run that replaced it continued as new: the guardian's record, the proxy's view of
 * the pickup and the EIP move, and the replaced run's activity timings.
 */
export async function recoverOnce(
  stack: Stack,
  account: Account,
  guardianId: string,
  queueUrl: string,
  instanceId: string,
): Promise<{ sample: RecoverySample; newInstanceId: string }> {
  let pickupAt = 0;
  let eipAt = 0;
  const off = [
    account.proxy.onAfter('ReceiveMessage', ({ responseBody }) => {
      if (!pickupAt && responseBody.includes(instanceId)) pickupAt = Date.now();
    }),
    account.proxy.onAfter('AssociateAddress', ({ request }) => {
      if (!eipAt && String(request.params.DryRun) !== 'true') eipAt = Date.now();
    }),
  ];
  try {
    const runId = await currentRunId(stack.client, guardianId);
    const replacements = (
      await patientQuery('the guardian status', () =>
        stack.client.workflow.getHandle(guardianId, runId).query(guardianStatusQuery),
      )
    ).replacements;
    const noticeAt = Date.now();
    await putSpotEvent(account, queueUrl, 'interruption', instanceId, noticeAt);
    const newRun = await nextRun(stack.client, guardianId, runId);
    const status = await waitForGuardian(
      stack.client.workflow.getHandle(guardianId, newRun),
      'the replacement',
      (s) => s.replacements === replacements + 1,
      120_000,
    );
    const event = status.events[status.events.length - 1];
    if (event.outcome !== 'replaced' || !event.newInstanceId || event.recoveryMs === undefined)
      throw new Error(`no replacement: ${JSON.stringify(event)}`);
    const acts = activityTimings(await fetchEvents(stack.client, guardianId, runId));
    const until = noticeAt + event.recoveryMs;
    const slowestAws = account.proxy
      .calls((c) => c.at.getTime() >= noticeAt && c.at.getTime() <= until && c.action !== 'ReceiveMessage')
      .sort((a, b) => b.durationMs - a.durationMs)
      .slice(0, 3)
      .map((c) => ({ action: c.action, ms: c.durationMs }));
    return {
      sample: { ...sample(noticeAt, pickupAt, eipAt, event.recoveryMs, acts), slowestAws },
      newInstanceId: event.newInstanceId,
    };
  } finally {
    off.forEach((f) => f());
  }
}

function sample(
  noticeAt: number,
  pickupAt: number,
  eipAt: number,
  recordedMs: number,
  acts: ActivityTiming[],
): Omit<RecoverySample, 'slowestAws'> {
  const exec = (t?: ActivityTiming) =>
    t?.startedAt !== undefined && t.closedAt !== undefined ? t.closedAt - t.startedAt : NaN;
  const first = (type: string) => acts.find((a) => a.activityType === type);
  const launch = exec(first('launchInstance'));
  const start = acts.filter((a) => a.activityType === 'runRemote').reduce((sum, a) => sum + exec(a), 0);
  const checks = exec(first('checkServices'));
  const eip = exec(first('associateAddress'));
  const pickupMs = pickupAt ? pickupAt - noticeAt : NaN;
  return {
    noticeAt,
    pickupMs,
    recordedMs,
    eipAnsweredMs: eipAt ? eipAt - noticeAt : NaN,
    launchMs: launch,
    startMs: start,
    checksMs: checks,
    eipMs: eip,
    orchestrationMs: recordedMs - pickupMs - launch - start - checks - eip,
    activities: acts.map((a) => ({
      type: a.activityType,
      queueMs: (a.startedAt ?? NaN) - a.scheduledAt,
      execMs: exec(a),
    })),
  };
}

export async function waitRouterKnows(
  stack: Stack,
  count: number,
  region = REGION,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await stack.client.workflow
      .getHandle(routerWorkflowId(region))
      .query(routerStatusQuery)
      .catch(() => undefined);
    if (s && s.guarded >= count) return;
    if (Date.now() > deadline)
      throw new Error(
        `the router of ${region} knows ${s?.guarded ?? 0} of ${count} guarded instances after ${timeoutMs} ms`,
      );
    await sleep(200);
  }
}
