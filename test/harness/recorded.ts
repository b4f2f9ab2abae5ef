/**
 * What Temporal recorded, for tests that look through it: every run's history of a workflow id,
 * and every text in a value (strings, and payload bytes decoded as UTF-8).
 */
import type { Client, WorkflowHandle } from '@temporalio/client';

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;

/** The history of every run of `workflowId` (continued-as-new runs included), oldest first. */
export async function historiesOf(client: Client, workflowId: string): Promise<{ runId: string; history: History }[]> {
  const runs: { runId: string; startTime: Date }[] = [];
  for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
    runs.push({ runId: wf.runId, startTime: wf.startTime });
  runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  const out: { runId: string; history: History }[] = [];
  for (const r of runs)
    out.push({ runId: r.runId, history: await client.workflow.getHandle(workflowId, r.runId).fetchHistory() });
  return out;
}

/** Every string in `value`, keys included; byte arrays (payload data) decoded as UTF-8. */
export function textsOf(value: unknown, out: string[] = [], seen = new Set<unknown>()): string[] {
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (value && typeof value === 'object') {
    if (seen.has(value)) return out;
    seen.add(value);
    if (Array.isArray(value)) for (const v of value) textsOf(v, out, seen);
    else
      for (const [k, v] of Object.entries(value)) {
        out.push(k);
        textsOf(v, out, seen);
      }
  }
  return out;
}

/** Every payload (`{ metadata, data }`) in a history. */
export function payloadsOf(
  value: unknown,
  out: { metadata: Record<string, Uint8Array>; data: Uint8Array }[] = [],
  seen = new Set<unknown>(),
): typeof out {
  if (!value || typeof value !== 'object' || seen.has(value) || value instanceof Uint8Array) return out;
  seen.add(value);
  const v = value as { metadata?: unknown; data?: unknown };
  if (v.data instanceof Uint8Array && v.metadata && typeof v.metadata === 'object') {
    out.push(v as { metadata: Record<string, Uint8Array>; data: Uint8Array });
    return out;
  }
  for (const child of Array.isArray(value) ? value : Object.values(value)) payloadsOf(child, out, seen);
  return out;
}
