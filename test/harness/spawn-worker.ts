/**
 * Starts `worker-process.ts` as a child process, tells when it polls, and kills it: for tests of
 * what a worker crash leaves behind.
 *
 *   const w = await spawnWorkerProcess({ taskQueue, awsEndpoint: s.proxy.endpoint, identity: 'first' });
 *   await w.kill();   // SIGKILL, resolves once the process is gone
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { temporalAddress, temporalNamespace } from './env';
import { workflowBundle } from './worker';

const ENTRY = join(__dirname, 'worker-process.ts');
const READY = 'worker-process polling';

let bundleFile: Promise<string> | undefined;
let bundleDir: string | undefined;

/** The workflow bundle of this test process, written once to a file the children read. */
function bundlePath(): Promise<string> {
  bundleFile ??= (async () => {
    const { code } = await workflowBundle();
    bundleDir = await mkdtemp(join(tmpdir(), 'migration-bundle-'));
    const file = join(bundleDir, 'workflows.js');
    await writeFile(file, code);
    return file;
  })();
  return bundleFile;
}

/** Removes the bundle file the children read; call in afterAll, once no child runs. */
export async function removeWorkerBundle(): Promise<void> {
  const dir = bundleDir;
  bundleFile = undefined;
  bundleDir = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
}

export interface WorkerProcessOptions {
  taskQueue: string;
  /** The AwsProxy endpoint the worker's AWS clients use. */
  awsEndpoint: string;
  identity?: string;
  /** The Temporal frontend to connect to (default: the harness's dev server, `temporalAddress()`). */
  temporalAddress?: string;
  pollIntervalMs?: number;
  /** How long it may take to start polling (default 30 s). */
  readyTimeoutMs?: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WorkerProcess {
  pid: number;
  identity: string;
  /** Resolves when the process is gone. */
  exited: Promise<Exit>;
  /** Its stdout and stderr so far. */
  output(): string;
  /** Sends SIGKILL (or `signal`) and waits until the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<Exit>;
  /** SIGTERM (graceful shutdown), then SIGKILL if it is still there after 10 s. */
  stop(): Promise<Exit>;
}

/** Spawns a worker process and resolves once it polls the task queue. */
export async function spawnWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcess> {
  const identity = options.identity ?? `worker-${Math.random().toString(16).slice(2, 8)}`;
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: options.temporalAddress ?? temporalAddress(),
      TEMPORAL_NAMESPACE: temporalNamespace(),
      TASK_QUEUE: options.taskQueue,
      AWS_ENDPOINT_URL: options.awsEndpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      WORKFLOW_BUNDLE_PATH: await bundlePath(),
      WORKER_IDENTITY: identity,
      POLL_INTERVAL_MS: String(options.pollIntervalMs ?? 50),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `worker process ${identity} did not poll within ${options.readyTimeoutMs ?? 30_000} ms:\n${output}`,
          ),
        ),
      options.readyTimeoutMs ?? 30_000,
    );
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      output += s;
      if (output.includes(READY)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`worker process ${identity} exited (${e.signal ?? e.code}) before it polled:\n${output}`));
    });
  });
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  const proc: WorkerProcess = {
    pid: child.pid ?? -1,
    identity,
    exited,
    output: () => output,
    kill,
    stop: async () => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      try {
        return await kill('SIGTERM');
      } finally {
        clearTimeout(timer);
      }
    },
  };
  try {
    await ready;
  } catch (err) {
    await kill();
    throw err;
  }
  return proc;
}
