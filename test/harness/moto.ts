/**
 * moto in server mode as a child process: one per test run, shared by every test. Tests are
 * kept apart by account (see aws-proxy.ts), never by resetting moto.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort, pollUntil } from './net';

/** Where the harness writes server logs; ignored by git. */
export const ARTIFACTS_DIR = resolve(__dirname, '..', '..', 'test-artifacts');

export interface MotoOptions {
  /** Python with moto[server] installed (toolPaths().motoPython). */
  python: string;
  /** Port to listen on; by default a free one (retried on a clash). */
  port?: number;
  /** Log file for the server's output; default test-artifacts/moto-<port>.log. */
  logFile?: string;
  /** Extra environment, e.g. MOTO_ENABLE_AMI_VALIDATION. */
  env?: Record<string, string>;
  /** How long to wait for the server to answer (default 30 s). */
  readyTimeoutMs?: number;
}

export interface MotoServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  pid: number;
  logFile: string;
  /** Kills the server and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startMoto(options: MotoOptions): Promise<MotoServer> {
  const attempts = options.port === undefined ? 3 : 1;
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    const port = options.port ?? (await freePort());
    try {
      return await startOnce(options, port);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

async function startOnce(options: MotoOptions, port: number): Promise<MotoServer> {
  const logFile = options.logFile ?? join(ARTIFACTS_DIR, `moto-${port}.log`);
  mkdirSync(resolve(logFile, '..'), { recursive: true });
  const log = createWriteStream(logFile, { flags: 'a' });
  await new Promise<void>((ok, fail) => log.once('open', () => ok()).once('error', fail));

  const child = spawn(options.python, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, PYTHONUNBUFFERED: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });

  let exitInfo: string | undefined;
  const exited = new Promise<void>((done) => {
    child.once('exit', (code, signal) => {
      exitInfo = `moto exited (code ${code}, signal ${signal}); see ${logFile}`;
      done();
    });
    child.once('error', (err) => {
      exitInfo = `could not start ${options.python}: ${err.message}`;
      done();
    });
  });
  // Never leave moto behind when this process ends without calling stop().
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const endpoint = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (!stopped) {
      stopped = true;
      process.removeListener('exit', killOnExit);
      if (exitInfo === undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await closeLog(log);
    }
  };

  try {
    await pollUntil(
      `moto on ${endpoint}`,
      async () => {
        const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        return res.ok ? true : undefined;
      },
      { timeoutMs: options.readyTimeoutMs ?? 30_000, intervalMs: 100, abort: () => exitInfo },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, port, pid: assertPid(child), logFile, stop };
}

function assertPid(child: ChildProcess): number {
  if (child.pid === undefined) throw new Error('moto has no pid');
  return child.pid;
}

function closeLog(log: WriteStream): Promise<void> {
  return new Promise((done) => log.end(() => done()));
}
