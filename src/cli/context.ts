import type { Client } from '@temporalio/client';
import { connectClient } from '../connection';

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

/** The Web UI page of a workflow, for people to click: TEMPORAL_UI_URL, else the dev server's. */
export function webUiLink(namespace: string, workflowId: string): string {
  const base = process.env.TEMPORAL_UI_URL ?? guessUi();
  return `${base.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

function guessUi(): string {
  const address = process.env.TEMPORAL_ADDRESS ?? 'localhost:7233';
  const [host, port] = address.split(':');
  return `http://${host}:${Number(port ?? 7233) + 1000}`;
}
