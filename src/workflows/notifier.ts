/**
 * Notifications from a workflow: each event is one `notify` activity, started and not awaited,
 * so a slow or dead receiver never holds up or fails the run (its failure is logged). Before a
 * run ends or continues as new it waits for the ones in flight (each is bounded: a minute at
 * most), so the last events are not dropped with it. Not even cancelling the run cancels
 * them. Runs that began before send none. Workflow code only.
 */
import { CancellationScope, log, patched } from '@temporalio/workflow';
import { describeFailure } from '../shared/failures';
import type { NotifyEvent } from '../shared/notify';
import { summarized } from './options';

type Omitted<T> = T extends unknown ? Omit<T, 'workflowId' | 'planName' | 'region' | 'at'> : never;
/** An event as a workflow sends it: the run, the plan and the time are added. */
export type Event = Omitted<NotifyEvent>;

const acts = summarized(
  {
    startToCloseTimeout: '15 seconds',
    scheduleToCloseTimeout: '1 minute',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 4 },
  },
  () => 'notify',
);

export class Notifier {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly on: boolean;

  constructor(private readonly about: { workflowId: string; planName: string; region: string }) {
    this.on = patched('notifications');
  }

  send(event: Event): void {
    if (!this.on) return;
    const full = { ...this.about, ...event, at: new Date().toISOString() } as NotifyEvent;
    const sent: Promise<void> = CancellationScope.nonCancellable(() =>
      acts.notify.executeWithOptions({ summary: `notify: ${event.kind}` }, [full]),
    ).then(
      () => undefined,
      (err: unknown) =>
        log.warn('a notification could not be sent', { event: event.kind, error: describeFailure(err) }),
    );
    this.inFlight.add(sent);
    void sent.finally(() => this.inFlight.delete(sent));
  }

  /** Waits for the notifications in flight (each ends within its minute). */
  async settle(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }
}
