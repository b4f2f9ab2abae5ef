import { Context } from '@temporalio/activity';

/**
 * Heartbeats every `everyMs` while `work` runs, so long waits stay visibly alive; at least three
 * times per heartbeat timeout when the activity has a shorter one.
 */
export async function withHeartbeat<T>(work: () => Promise<T>, details?: () => unknown, everyMs = 5_000): Promise<T> {
  const ctx = Context.current();
  const timeoutMs = ctx.info.heartbeatTimeoutMs;
  const interval = timeoutMs ? Math.max(100, Math.min(everyMs, Math.floor(timeoutMs / 3))) : everyMs;
  ctx.heartbeat(details?.());
  const timer = setInterval(() => ctx.heartbeat(details?.()), interval);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** The current attempt (1-based), reported back to the workflow in every result. */
export function attempt(): number {
  return Context.current().info.attempt;
}

/** Waits, heartbeating; ends early with a CancelledFailure when the activity is cancelled. */
export async function pause(ms: number): Promise<void> {
  const ctx = Context.current();
  ctx.heartbeat();
  await ctx.sleep(ms);
}

export function tail(text: string | undefined, max = 2_000): string {
  if (!text) return '';
  return text.length <= max ? text : `…${text.slice(text.length - max)}`;
}

/** A deterministic idempotency token of at most 64 characters (EC2 ClientToken's limit). */
export function clientToken(...parts: string[]): string {
  const raw = parts.join(':');
  if (raw.length <= 64) return raw;
  // FNV-1a, twice with different seeds: short, stable, good enough to tell tokens apart.
  const fnv = (seed: number) => {
    let h = seed;
    for (let i = 0; i < raw.length; i++) {
      h ^= raw.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h.toString(16).padStart(8, '0');
  };
  return `${raw.slice(0, 47)}-${fnv(0x811c9dc5)}${fnv(0x01000193)}`;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}
