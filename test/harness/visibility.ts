/** Listing runs through the server's visibility store, as the Web UI and `temporal workflow list` do. */
import type { Client } from '@temporalio/client';
import { pollUntil } from './net';

/** The workflow ids a visibility query lists (visibility trails the run a little: polled). */
export async function listed(client: Client, query: string, expected: string[]): Promise<string[]> {
  let last: string[] = [];
  try {
    return await pollUntil(
      `${query} listing ${expected.join(', ')}`,
      async () => {
        last = [];
        for await (const wf of client.workflow.list({ query })) last.push(wf.workflowId);
        return expected.every((id) => last.includes(id)) ? last : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; listed: ${JSON.stringify(last)}`);
  }
}
