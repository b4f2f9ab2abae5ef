/**
 * Running the CLI from a test: in this process through `main()` (fast, output captured), or as
 * a real process (`node --import tsx src/client.ts`), for exit codes and streams as a shell
 * sees them.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { main } from '../../src/client';
import { defaultContext } from '../../src/cli/context';

export const REPO_ROOT = join(__dirname, '..', '..');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface InProcessResult extends CliResult {
  /** Whether the command asked for a Temporal connection. */
  connected: boolean;
}

/**
 * Runs `migration <args>` in this process. Temporal is found as the CLI finds it (envconfig:
 * TEMPORAL_ADDRESS, …), so set the environment first (see `setEnv`). Output is not a TTY;
 * `onOut` sees the output so far each time the command writes (for long-running commands).
 */
export async function runCli(
  args: string[],
  options: { onOut?: (soFar: string) => void } = {},
): Promise<InProcessResult> {
  let stdout = '';
  let stderr = '';
  let connected = false;
  const ctx = defaultContext();
  const code = await main(args, {
    ...ctx,
    out: (s) => {
      stdout += s;
      options.onOut?.(stdout);
    },
    err: (s) => {
      stderr += s;
    },
    isTTY: false,
    client: () => {
      connected = true;
      return ctx.client();
    },
  });
  return { code, stdout, stderr, connected };
}

/** Sets (or, with undefined, removes) environment variables; the returned function restores them. */
export function setEnv(vars: Record<string, string | undefined>): () => void {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  return () => apply(before);
}

export interface SpawnedResult extends CliResult {
  signal: NodeJS.Signals | null;
}

/**
 * Runs `migration <args>` as its own process from the sources, with this process's environment
 * changed by `env` (undefined removes a variable). Fails if it has not exited after `timeoutMs`.
 */
export function spawnCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  timeoutMs = 60_000,
): Promise<SpawnedResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'client.ts'), ...args], {
      cwd: REPO_ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `migration ${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr });
    });
  });
}
