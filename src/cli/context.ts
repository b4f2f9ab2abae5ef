import type { Client } from '@temporalio/client';
import { readConfig } from '../config';
import { connectClient, temporalTarget } from '../connection';

/** What commands need from the outside world; tests give their own writers. */
export interface CliContext {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Connects to Temporal (envconfig); closed by the CLI when the command ends. */
  client: () => Promise<Client>;
  isTTY: boolean;
}

export function defaultContext(): CliContext & { close: () => Promise<void> } {
  let connected: { client: Client; close: () => Promise<void> } | undefined;
  return {
    out: (s) => process.stdout.write(s),
    err: (s) => process.stderr.write(s),
    isTTY: Boolean(process.stdout.isTTY),
    client: async () => {
      connected ??= await connectClient();
      return connected.client;
    },
    close: async () => {
      await connected?.close();
    },
  };
}

/**
 * The Web UI page of a workflow, for people to click: under TEMPORAL_UI_URL, else beside the
 * Temporal address the client connects to (a dev server serves its UI on the port 1000 above).
 */
export function webUiLink(namespace: string, workflowId: string): string {
  const base = readConfig().temporalUiUrl ?? guessUi(temporalTarget().address);
  return `${base.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

function guessUi(address: string): string {
  const [host, port] = address.split(':');
  return `http://${host}:${Number(port ?? 7233) + 1000}`;
}
