import { ApplicationFailure, Context } from '@temporalio/activity';
import type { AwsClients } from '../aws/clients';
import { describeFailure } from '../shared/failures';
import { isDead } from '../shared/instance-states';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { GuardedInstance, QueueMessage, WatchInput, WatchResult } from '../shared/spot';
import { confirmById, listGuarded, readSpotEvents } from './spot';

/** Tries of one scan before it counts as failed (the SDK retries each call as well). */
const SCAN_TRIES = 3;

/** Resolves after `ms`, or at once when `signal` aborts. */
function nap(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** A read of one queue, shared by the watches of this process; it never fails (the error is its outcome). */
type SharedRead = Promise<{ messages: QueueMessage[] } | { error: unknown }>;

/** The shared reads in flight in this process, each with an abort of its own. */
const inFlight = new Set<AbortController>();
/** Aborts the shared reads of every watch of this process: for a process about to exit. */
export function abandonReads(): void {
  for (const c of inFlight) c.abort();
}

const aliveIn = (found: GuardedInstance[]) => new Set(found.filter((g) => !isDead(g.state)).map((g) => g.instanceId));

export function createWatchActivities(clients: AwsClients) {
  /**
   * The long poll in flight per queue. A watch that returns leaves its read running rather than
   * abort it: SQS may still hand an aborted long poll a message, which would then stay invisible
   * for its visibility timeout. The next watch of this process takes the read over, and every
   * watch waiting on it gets what it brings (a watch of a router that has just ended included:
   * the messages reach the router that runs now as well). What a read brings when no watch waits
   * is kept for the next.
   */
  const reads = new Map<string, { read: SharedRead; settledAt?: number }>();
  function sharedRead(sqs: SQSClient, queueUrl: string): SharedRead {
    const held = reads.get(queueUrl);
    // What a read brought stays until a watch takes it; messages it held longer than half their
    // visibility timeout are left to come back by themselves.
    if (held && (held.settledAt === undefined || Date.now() - held.settledAt < 60_000)) return held.read;
    const abort = new AbortController();
    inFlight.add(abort);
    const entry: { read: SharedRead; settledAt?: number } = {
      read: readSpotEvents(sqs, queueUrl, { waitSeconds: 20, signal: abort.signal })
        .then(
          (messages) => ({ messages }),
          (error: unknown) => ({ error }),
        )
        .finally(() => inFlight.delete(abort)),
    };
    void entry.read.then(() => (entry.settledAt = Date.now()));
    reads.set(queueUrl, entry);
    return entry.read;
  }
  /** A watch took what the read brought: the next one reads again. */
  function taken(queueUrl: string, read: SharedRead): void {
    if (reads.get(queueUrl)?.read === read) reads.delete(queueUrl);
  }

  /**
   * The router's eyes on a region, in one long-lived activity: it lists the guarded instances
   * every `pollIntervalMs` (one DescribeInstances for all of them) and long-polls every queue at
   * once, and returns the moment there is news for the router: messages, a known instance dead,
   * a newly guarded one, a scan or a queue that starts or stops failing. Otherwise it returns
   * after `maxMs`. It heartbeats every `heartbeatMs` only: the polls themselves cost the workflow
   * nothing, where a workflow timer per poll costs a billed action and a handful of events.
   *
   * Cancelling it (a new queue, the router stopping) ends it at its next heartbeat; its reads in
   * flight are left to the next watch (see `reads`).
   */
  async function watchRegion(input: WatchInput): Promise<WatchResult> {
    const ctx = Context.current();
    const ec2 = clients.ec2(input.region);
    const sqs = clients.sqs(input.region);
    const stop = new AbortController();
    const known = new Map(Object.entries(input.known));
    const result: WatchResult = {
      reason: 'time',
      scans: 0,
      describeCalls: 0,
      scanErrors: 0,
      scanFailing: input.scanFailing,
      missedByScan: 0,
      deaths: [],
      known: input.known,
      messages: [],
      queues: [],
      heartbeats: 0,
    };
    let news: (reason: WatchResult['reason']) => void = () => undefined;
    const told = new Promise<void>((resolve) => {
      news = (reason) => {
        if (stop.signal.aborted) return;
        result.reason = reason;
        stop.abort();
        resolve();
      };
    });

    const beat = () => {
      result.heartbeats++;
      ctx.heartbeat({ scans: result.scans, known: known.size });
    };
    beat();
    const heartbeats = setInterval(beat, input.heartbeatMs);
    const deadline = setTimeout(() => news('time'), input.maxMs);

    async function scanOnce(): Promise<void> {
      let found: GuardedInstance[] | undefined;
      let failure: unknown;
      for (let attempt = 1; attempt <= SCAN_TRIES && !found; attempt++) {
        try {
          result.describeCalls++;
          found = await listGuarded(ec2);
        } catch (err) {
          failure = err;
          if (err instanceof ApplicationFailure && err.nonRetryable) break;
          if (attempt < SCAN_TRIES) await nap(1_000 * attempt, stop.signal);
          if (stop.signal.aborted) return;
        }
      }
      result.scans++;
      if (!found) {
        result.scanErrors++;
        result.lastScanError = { at: new Date().toISOString(), error: describeFailure(failure) };
        if (!result.scanFailing) {
          result.scanFailing = true;
          news('scan');
        }
        return;
      }
      const alive = aliveIn(found);
      let dead = [...known.keys()].filter((id) => !alive.has(id));
      // A filtered listing is eventually consistent: one that leaves a known instance out is no
      // proof of its death. Ask for those by id first.
      const listed = new Set(found.map((g) => g.instanceId));
      const missing = dead.filter((id) => !listed.has(id));
      let missed = 0;
      if (missing.length > 0) {
        const living = aliveIn(await confirm(missing));
        missed = living.size;
        result.missedByScan += missed;
        dead = dead.filter((id) => !living.has(id));
      }
      for (const instanceId of dead) {
        result.deaths.push({ instanceId, guardianId: known.get(instanceId) ?? '' });
        known.delete(instanceId);
      }
      let born = false;
      for (const g of found)
        if (g.guardianId && alive.has(g.instanceId) && known.get(g.instanceId) !== g.guardianId) {
          known.set(g.instanceId, g.guardianId);
          born = true;
        }
      result.known = Object.fromEntries(known);
      if (result.scanFailing) {
        result.scanFailing = false;
        news('scan');
      }
      if (dead.length) news('deaths');
      else if (born) news('guarded');
      else if (missed) news('missed');
    }

    const confirm = (instanceIds: string[]) => confirmById(ec2, instanceIds, () => result.describeCalls++);

    async function scanning(): Promise<void> {
      while (!stop.signal.aborted) {
        try {
          await scanOnce();
        } catch (err) {
          // A confirmation by id that failed: the next scan asks again.
          result.scanErrors++;
          result.lastScanError = { at: new Date().toISOString(), error: describeFailure(err) };
        }
        await nap(input.pollIntervalMs, stop.signal);
      }
    }

    async function reading(queueUrl: string): Promise<void> {
      const health = {
        queueUrl,
        ok: !input.failingQueues.includes(queueUrl),
        at: '',
        reads: 0,
        readErrors: 0,
      } as WatchResult['queues'][number];
      result.queues.push(health);
      const stopped = new Promise<'stopped'>((resolve) => {
        if (stop.signal.aborted) resolve('stopped');
        stop.signal.addEventListener('abort', () => resolve('stopped'));
      });
      while (!stop.signal.aborted) {
        const read = sharedRead(sqs, queueUrl);
        const outcome = await Promise.race([read, stopped]);
        if (outcome === 'stopped') return;
        taken(queueUrl, read);
        if ('messages' in outcome) {
          const { messages } = outcome;
          health.reads++;
          health.at = new Date().toISOString();
          if (!health.ok) {
            Object.assign(health, { ok: true, error: undefined });
            news('queue');
          }
          if (messages.length) {
            result.messages.push({ queueUrl, messages });
            news('messages');
          }
        } else {
          health.readErrors++;
          const wasOk = health.ok;
          Object.assign(health, { ok: false, error: describeFailure(outcome.error), at: new Date().toISOString() });
          if (wasOk) news('queue');
          await nap(input.pollIntervalMs, stop.signal);
        }
      }
    }

    const loops = [scanning(), ...input.queueUrls.map(reading)];
    try {
      await Promise.race([told, ctx.cancelled]);
    } finally {
      stop.abort();
      clearInterval(heartbeats);
      clearTimeout(deadline);
      await Promise.allSettled(loops);
    }
    return result;
  }

  return { watchRegion };
}
