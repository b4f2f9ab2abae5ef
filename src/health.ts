/**
 * The worker's health endpoints, on an address of their own (`worker --health 0.0.0.0:8081`, or
 * MIGRATION_HEALTH_ADDRESS), for Docker's HEALTHCHECK, compose and Kubernetes probes:
 *
 * - `GET /healthz` (liveness): 200 while the process runs;
 * - `GET /readyz` (readiness): 200 once every worker of the process polls its task queue
 *   (RUNNING), 503 while they start, drain or have stopped.
 *
 * Both answer a line of JSON, e.g. `{"status":"ready","state":"RUNNING"}`; HEAD answers the same
 * without the body. Any other path is a 404. The server never keeps the process alive by itself.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { State } from '@temporalio/worker';

/** A worker's state as the SDK reports it (`Worker.getState()`), or STARTING before the workers exist. */
export type HealthState = State | 'STARTING';

/** The paths it answers. */
export const HEALTH_PATHS = ['/healthz', '/readyz'] as const;

/**
 * The state of a process's workers together: RUNNING only when every one runs; else FAILED when
 * one failed, else the first state that is not RUNNING (INITIALIZED, STOPPING, DRAINING…).
 */
export function combinedState(states: readonly State[]): HealthState {
  if (states.length === 0) return 'STARTING';
  if (states.includes('FAILED')) return 'FAILED';
  return states.find((s) => s !== 'RUNNING') ?? 'RUNNING';
}

export interface HealthServer {
  /** Where it listens, `host:port` (the port the system chose when 0 was asked for). */
  readonly address: string;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** Splits `host:port` or `[v6]:port`; undefined when it is neither. */
export function splitHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
  if (!m || Number(m[3]) > 65535) return undefined;
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

/**
 * Serves /healthz and /readyz on `address`; `state` is asked at each request. Fails when the
 * address cannot be listened on (in use, not a local address).
 */
export async function startHealthServer(address: string, state: () => HealthState): Promise<HealthServer> {
  const target = splitHostPort(address);
  if (!target) throw new Error(`health: ${JSON.stringify(address)} is not host:port`);

  const server = createServer((req, res) => answer(req, res, state));
  server.requestTimeout = 5_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    const failed = (err: Error) => reject(new Error(`health: cannot listen on ${address}: ${err.message}`));
    server.once('error', failed);
    server.listen({ host: target.host, port: target.port }, () => {
      server.off('error', failed);
      resolve();
    });
  });
  // A probe's connection must not hold up the exit of a process whose workers have stopped.
  server.unref();

  const bound = server.address() as AddressInfo;
  return {
    address: bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function answer(req: IncomingMessage, res: ServerResponse, state: () => HealthState): void {
  let path: string;
  try {
    path = new URL(req.url ?? '/', 'http://health').pathname;
  } catch {
    path = '';
  }
  const send = (code: number, body: Record<string, unknown>) => {
    res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : `${JSON.stringify(body)}\n`);
  };
  if (!(HEALTH_PATHS as readonly string[]).includes(path))
    return send(404, { status: 'not found', paths: HEALTH_PATHS });
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(405, { status: 'method not allowed' });
  }
  let current: HealthState | 'UNKNOWN';
  try {
    current = state();
  } catch {
    current = 'UNKNOWN';
  }
  if (path === '/healthz') return send(200, { status: 'alive', state: current });
  const ready = current === 'RUNNING';
  send(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', state: current });
}
