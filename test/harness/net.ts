/** Small network helpers shared by the harness. */
import { createServer } from 'node:net';

/** A TCP port that was free on `host` a moment ago (the OS picked it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not read the port the OS picked'));
      });
    });
  });
}

/** Thrown by a probe when waiting longer cannot help (the workflow has ended): pollUntil stops at once. */
export class PollGivesUp extends Error {}

/**
 * Calls `probe` until it returns a value other than undefined, at most `timeoutMs`, pausing
 * `intervalMs` between tries. For readiness checks of processes we start; `abort` ends the wait
 * early with its reason (e.g. the process exited); a probe that throws PollGivesUp ends it too.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  {
    timeoutMs = 20_000,
    intervalMs = 50,
    abort,
  }: { timeoutMs?: number; intervalMs?: number; abort?: () => string | undefined } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const reason = abort?.();
    if (reason) throw new Error(`${what}: ${reason}`);
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      if (err instanceof PollGivesUp) throw new Error(`${what}: ${err.message}`);
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`${what}: not ready after ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
