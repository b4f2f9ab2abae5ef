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

/** Whether something answers HTTP at `url` within half a second. */
async function answers(url: string): Promise<boolean> {
  try {
    await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(500) });
    return true;
  } catch {
    return false;
  }
}

/** The port the compose file (docker-compose.temporal.yml) serves the Web UI on. */
export const COMPOSE_UI_PORT = 8080;

/**
 * Where the Web UI is: TEMPORAL_UI_URL when it is set; Temporal Cloud's for a Cloud address;
 * else beside the address the client connects to: the dev server serves its UI 1000 ports above
 * its own, the compose file on 8080. The one that answers is taken; the dev server's when none does.
 */
export async function webUiBase(
  address = temporalTarget().address,
  probe: (url: string) => Promise<boolean> = answers,
): Promise<string> {
  const set = readConfig().temporalUiUrl;
  if (set) return set.replace(/\/$/, '');
  const colon = address.lastIndexOf(':');
  const host = colon > 0 ? address.slice(0, colon) : address;
  const port = colon > 0 ? Number(address.slice(colon + 1)) : 7233;
  if (/(\.tmprl\.cloud|\.api\.temporal\.io)$/i.test(host)) return 'https://cloud.temporal.io';
  const dev = `http://${host}:${port + 1000}`;
  const compose = `http://${host}:${COMPOSE_UI_PORT}`;
  if (await probe(dev)) return dev;
  if (port !== COMPOSE_UI_PORT - 1000 && (await probe(compose))) return compose;
  return dev;
}

/** The Web UI page of a workflow, for people to click. */
export async function webUiLink(namespace: string, workflowId: string, base?: string): Promise<string> {
  return `${base ?? (await webUiBase())}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
