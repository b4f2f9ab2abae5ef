/**
 * The `notify` activity: posts a workflow's event to the worker's receivers, Slack-compatible
 * incoming webhooks (`{"text": …}`) and generic JSON webhooks (the event with its text). The
 * receivers are the worker's configuration (`MIGRATION_NOTIFY_URLS` or a file), never a
 * workflow's. A retried attempt skips the receivers an earlier one reached (heartbeat details),
 * so nobody is told twice. With no receiver the text goes to the worker's log (and to `print`).
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { NotifyEvent, NotifyResult } from '../shared/notify';

export interface NotifyTarget {
  url: string;
  format: 'slack' | 'json';
}

export interface NotifySettings {
  targets: NotifyTarget[];
  /** The Web UI's base URL, for links (no link without it). */
  uiBase?: string;
  /** Where the text goes when no receiver is configured (besides the log). */
  print?: (text: string) => void;
  /** Per request (default 10 s). */
  timeoutMs?: number;
}

const SECONDS = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The event as a person reads it (Slack mrkdwn, also plain enough for a log). */
export function notificationText(e: NotifyEvent, webUi?: string): string {
  const head = `*${e.planName}* (${e.region})`;
  const link = webUi ? `\nWeb UI: ${webUi}` : '';
  switch (e.kind) {
    case 'awaiting-approval':
      return (
        `${head} waits for approval: every check passed, the Elastic IP is on ${e.newInstanceId} and the old instance ${e.oldInstanceId} still runs. ` +
        `Decide by ${e.deadline}${e.approvers.length ? ` (approvers: ${e.approvers.join(', ')})` : ''}; after that both keep running.${link}\n` +
        `CLI: migration approve ${e.workflowId} --by NAME   |   migration reject ${e.workflowId} --by NAME --reason TEXT`
      );
    case 'approved':
    case 'rejected':
      return `${head}: ${e.kind} by ${e.by}${e.comment ? `: ${e.comment}` : ''}${e.via ? ` (${e.via})` : ''}.${link}`;
    case 'signal-refused':
      return `${head}: the signal \`${e.name}\` was not acted on: ${e.reason}. Nothing was decided.${link}`;
    case 'completed':
      return `${head}: migration ${e.outcome}${e.instanceId ? `; the service runs on ${e.instanceId}` : ''}.${e.warnings.length ? `\nWarnings: ${e.warnings.join('; ')}` : ''}\nReport: migration report ${e.workflowId}${link}`;
    case 'rolled-back':
    case 'failed':
    case 'cancelled':
      return `${head}: migration ${e.kind === 'rolled-back' ? 'failed and was rolled back' : e.kind}${e.phase ? ` (in ${e.phase})` : ''}: ${e.error}\nReport: migration report ${e.workflowId}${link}`;
    case 'undo-failing':
      return `${head}: an undo step keeps failing since ${e.since} (${e.tries} tries): ${e.step}: ${e.error}. It is tried for up to a day; check AWS and the worker's permissions.${link}`;
    case 'spot-notice':
      return `${head}: Spot ${e.noticeKind} notice for ${e.instanceId}${e.source ? ` (from the ${e.source})` : ''}: a replacement is on its way.${link}`;
    case 'replaced': {
      const ev = e.round;
      const steps: [string, string | undefined][] = [
        ['notice', ev.noticeAt],
        ['launched', ev.launchedAt],
        ['running', ev.runningAt],
        ['started', ev.startedAt],
        ['healthy', ev.healthyAt],
        ['Elastic IP moved', ev.eipMovedAt],
        ['old terminated', ev.oldTerminatedAt],
      ];
      const t0 = Date.parse(ev.noticeAt);
      const timeline = steps
        .filter((s): s is [string, string] => s[1] !== undefined)
        // EC2's launch time has whole seconds: never before the notice.
        .map(([name, at]) => `${name} +${SECONDS(Math.max(0, Date.parse(at) - t0))}`)
        .join(' → ');
      return (
        `${head}: ${ev.oldInstanceId} replaced by ${ev.newInstanceId ?? '?'}${ev.instanceType ? ` (${ev.instanceType}, ${ev.market ?? '?'}${ev.availabilityZone ? `, ${ev.availabilityZone}` : ''})` : ''}` +
        `${ev.viaSpare ? ' from the warm spare' : ''}${ev.recoveryMs !== undefined ? `, serving again after ${SECONDS(ev.recoveryMs)}` : ''}.\nTimeline: ${timeline}${link}`
      );
    }
    case 'replacement-failed':
      return `${head}: replacing ${e.round.oldInstanceId} failed: ${e.round.error ?? 'unknown error'}; the guardian tries again.${link}`;
    case 'on-demand-fallback':
      return `${head}: no Spot capacity: the service now runs on on-demand ${e.instanceId}${e.instanceType ? ` (${e.instanceType})` : ''}; Spot is tried again every spot.revertAfter.${link}`;
    case 'back-to-spot':
      return `${head}: back on Spot: the service runs on ${e.instanceId}${e.instanceType ? ` (${e.instanceType})` : ''}.${link}`;
    case 'router-unhealthy':
      return `${head}: the Spot notices may not arrive: ${e.error}${link}`;
  }
}

/** The body posted to a receiver. */
export function notificationBody(e: NotifyEvent, target: NotifyTarget, webUi?: string): unknown {
  const text = notificationText(e, webUi);
  if (target.format === 'slack') return { text };
  return { ...e, event: e.kind, text, ...(webUi ? { webUi } : {}) };
}

/** The receiver's address without its secret parts, for logs and errors. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return '(not a URL)';
  }
}

export function createNotifyActivities(settings: NotifySettings = { targets: [] }) {
  return {
    async notify(event: NotifyEvent): Promise<NotifyResult> {
      const ctx = Context.current();
      const webUi = settings.uiBase
        ? `${settings.uiBase}/namespaces/${encodeURIComponent(ctx.info.workflowNamespace ?? 'default')}/workflows/${encodeURIComponent(event.workflowId)}`
        : undefined;
      if (settings.targets.length === 0) {
        const text = notificationText(event, webUi);
        ctx.log.info('notification (no MIGRATION_NOTIFY_URLS set, so only logged)', { event: event.kind, text });
        settings.print?.(text);
        return { sent: 0, printed: true };
      }
      const earlier = (ctx.info.heartbeatDetails as { sent?: number[] } | undefined)?.sent ?? [];
      const sent = new Set(earlier);
      const failures: string[] = [];
      for (const [i, target] of settings.targets.entries()) {
        if (sent.has(i)) continue;
        try {
          const res = await fetch(target.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(notificationBody(event, target, webUi)),
            signal: AbortSignal.timeout(settings.timeoutMs ?? 10_000),
          });
          await res.body?.cancel();
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          sent.add(i);
          ctx.heartbeat({ sent: [...sent] });
        } catch (err) {
          failures.push(`${redact(target.url)}: ${(err as Error).message}`);
        }
      }
      if (failures.length)
        throw ApplicationFailure.create({
          type: 'NotificationFailed',
          message: `${event.kind} reached ${sent.size} of ${settings.targets.length} receivers; ${failures.join('; ')}`,
        });
      return { sent: sent.size };
    },
  };
}
