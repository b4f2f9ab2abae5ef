/**
 * How a migration ended, as a test reads it: the failure and the report it carries, who answers
 * on an address, and the id of the instance a run launches, as soon as it exists.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { MigrationReport } from '../../src/shared/report';
import type { AwsProxy } from './aws-proxy';
import type { AppWorld } from './world';

export interface MigrationFailure {
  error: WorkflowFailedError;
  /** The workflow's own failure: its type is the failure type of the run. */
  failure: ApplicationFailure;
  /** The report the failure's details carry. */
  report: MigrationReport;
}

/** Waits for the run to end, asserting it failed with an ApplicationFailure holding the report. */
export async function failureOf(handle: WorkflowHandle): Promise<MigrationFailure> {
  let result: unknown;
  try {
    result = await handle.result();
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const failure = err.cause;
    if (!(failure instanceof ApplicationFailure))
      throw new Error(`${handle.workflowId} failed with ${String(failure)}, not an ApplicationFailure`, { cause: err });
    const report = (failure.details ?? [])[0] as MigrationReport | undefined;
    if (!report || typeof report !== 'object' || !('outcome' in report))
      throw new Error(`${handle.workflowId} failed without a report in its details`, { cause: err });
    return { error: err, failure, report };
  }
  throw new Error(`expected ${handle.workflowId} to fail; it completed with ${JSON.stringify(result)?.slice(0, 300)}`);
}

/**
 * The instance that answers `service` at `address` (the world's `x-served-by`), or 'dropped' when
 * nothing answers there.
 */
export async function whoServes(world: AppWorld, address: string, service: string): Promise<string | 'dropped'> {
  try {
    const res = await fetch(world.url(address, service), { signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    return res.headers.get('x-served-by') ?? `HTTP ${res.status} without x-served-by`;
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code;
    if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'ECONNREFUSED') return 'dropped';
    throw err;
  }
}

/**
 * Calls `then` with the id of each instance that RunInstances launches through the proxy
 * (DryRun calls and errors launch nothing), before the caller gets the answer: rules scoped to
 * that instance are in force before it runs anything. Returns a function that stops listening.
 */
export function onLaunched(proxy: AwsProxy, then: (instanceId: string) => void | Promise<void>): () => void {
  return proxy.onAfter('RunInstances', async ({ call, request, responseBody }) => {
    if (call.status !== 200 || call.injected || String(request.params.DryRun) === 'true') return;
    for (const m of responseBody.matchAll(/<instanceId>(i-[0-9a-f]+)<\/instanceId>/g)) await then(m[1]);
  });
}

/** A promise with its resolve function, for gates a test opens when it is ready. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
