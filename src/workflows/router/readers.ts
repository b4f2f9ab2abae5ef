/**
 * The router's queue readers: one per queue, each long-polling it until the run winds down, and
 * the queue's health told to the guardians that registered it. Workflow code only.
 */
import {
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  metricMeter,
  patched,
} from '@temporalio/workflow';
import { describeFailure } from '../../shared/failures';
import { queueHealthSignal, type QueueMessage, type RouterStats } from '../../shared/spot';
import { ROUTING, summarized } from '../options';
import type { HealthChange, QueueBook } from './queues';

/** The metric of failed queue reads, whichever way the router reads. */
export const readErrorCounter = () =>
  metricMeter.createCounter(
    'ec2_gpu_migration_router_read_errors',
    'errors',
    'Reads of an interruption queue that failed',
  );

const reads = summarized(ROUTING.reads, () => 'router');

/** How long the wind-down waits for the reads in flight before it cancels them. */
const WIND_DOWN = '1 minute';

/** Tells the owners of a queue that it started or stopped failing (runs that began before tell nobody). */
export async function tellOwners(change: HealthChange | undefined): Promise<void> {
  if (!change || !patched('queue-health-to-owners')) return;
  await Promise.all(
    change.owners.map((id) =>
      getExternalWorkflowHandle(id)
        .signal(queueHealthSignal, change.notice)
        .catch((err: unknown) =>
          log.warn('could not tell the guardian', { guardianId: id, error: describeFailure(err) }),
        ),
    ),
  );
}

export interface ReaderHost {
  region: string;
  queues: QueueBook;
  stats: RouterStats;
  pollIntervalMs(): number;
  stopped(): boolean;
  route(queueUrl: string, messages: QueueMessage[]): Promise<void>;
}

export class QueueReaders {
  private readonly readers = new Map<string, Promise<void>>();
  private reading = 0;
  private winding = false;
  /** The readers run in a scope of their own: at wind-down, one that does not end is cancelled. */
  private readonly scope = new CancellationScope();
  private readonly errors = readErrorCounter();

  constructor(private readonly host: ReaderHost) {}

  /** Whether a queue was registered that has no reader yet. */
  get hasNew(): boolean {
    return this.host.queues.urls.some((q) => !this.readers.has(q));
  }

  /** A reader for every queue that has none. */
  startNew(): void {
    for (const url of this.host.queues.urls)
      if (!this.readers.has(url))
        this.readers.set(
          url,
          this.scope.run(() => this.read(url)),
        );
  }

  /**
   * Each reader ends after its read in flight (routing what it brought); one that does not within
   * WIND_DOWN (a read retried against a queue that fails) is cancelled: a message it held comes
   * back once its visibility timeout ends. Runs that began before wait for every reader.
   */
  async windDown(): Promise<void> {
    this.winding = true;
    if (patched('bounded-wind-down') && !(await condition(() => this.reading === 0, WIND_DOWN))) this.scope.cancel();
    await Promise.all(
      [...this.readers.values()].map((r) =>
        r.catch((err: unknown) => {
          if (!isCancellation(err)) throw err;
        }),
      ),
    );
  }

  private get done(): boolean {
    return this.host.stopped() || this.winding;
  }

  /** Reads one queue until the run winds down: each read waits for a message up to the poll interval. */
  private async read(queueUrl: string): Promise<void> {
    const { host } = this;
    this.reading++;
    try {
      while (!this.done) {
        let messages: QueueMessage[];
        try {
          messages = await reads.receiveSpotEvents({
            region: host.region,
            queueUrl,
            waitSeconds: Math.min(20, Math.max(1, Math.ceil(host.pollIntervalMs() / 1000))),
          });
        } catch (err) {
          if (isCancellation(err)) return;
          const error = describeFailure(err);
          host.stats.readErrors = (host.stats.readErrors ?? 0) + 1;
          this.errors.add(1, { region: host.region });
          log.error('could not read the queue', { queueUrl, error });
          await tellOwners(host.queues.readFailed(queueUrl, error, new Date().toISOString()));
          await condition(() => this.done, host.pollIntervalMs());
          continue;
        }
        await tellOwners(host.queues.readOk(queueUrl, new Date().toISOString()));
        try {
          if (messages.length) await host.route(queueUrl, messages);
        } catch (err) {
          if (isCancellation(err)) return;
          // What was not deleted comes back once its visibility timeout ends.
          log.error('could not route the messages', { queueUrl, error: describeFailure(err) });
          await condition(() => this.done, host.pollIntervalMs());
        }
      }
    } finally {
      this.reading--;
    }
  }
}
