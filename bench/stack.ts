/**
 * The local stack the benchmarks run on: a Temporal dev server and a moto of their own (started
 * here, stopped at the end), the workflow bundle built once, and per section an AWS account of
 * its own behind an AwsProxy, the app's stand-ins, and a worker in a process of its own.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKER_HEAP_MIB } from '../src/worker';
import type { AwsClients } from '../src/aws/clients';
import { AwsProxy } from '../test/harness/aws-proxy';
import { startMoto, type MotoServer } from '../test/harness/moto';
import { toolPaths } from '../test/harness/tools';
import { AppWorld } from '../test/harness/world';
import { READY_LINE } from './ready';
import { silentLogger } from '../src/bundle';
import { SEARCH_ATTRIBUTE_KEYS } from '../src/shared/search-attributes';

export interface Stack {
  temporal: TestWorkflowEnvironment;
  client: Client;
  /** host:port of the dev server. */
  address: string;
  moto: MotoServer;
  bundlePath: string;
  /** The processes of the stack (this one, the dev server, moto), for CPU accounting. */
  processes(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const tools = toolPaths();
  const dir = await mkdtemp(join(tmpdir(), 'ec2-gpu-migration-bench-'));
  const [temporal, moto, bundle] = await Promise.all([
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: tools.temporalBin },
        ip: '127.0.0.1',
        namespace: 'default',
        ui: false,
        searchAttributes: [...SEARCH_ATTRIBUTE_KEYS],
      },
    }),
    startMoto({ python: tools.motoPython }),
    bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: silentLogger }),
  ]);
  const bundlePath = join(dir, 'workflows.js');
  await writeFile(bundlePath, bundle.code);
  return {
    temporal,
    client: temporal.client,
    address: temporal.address,
    moto,
    bundlePath,
    async processes() {
      const out: Record<string, number> = { 'bench (proxy, app stand-ins, client)': process.pid, moto: moto.pid };
      const server = await childWith(process.pid, 'start-dev');
      if (server) out['Temporal dev server'] = server;
      return out;
    },
    async close() {
      await Promise.allSettled([temporal.teardown(), moto.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One AWS account of its own (behind a proxy), with the app's stand-ins answering for it. */
export interface Account {
  proxy: AwsProxy;
  world: AppWorld;
  /** Same account through the proxy's side door: not logged, no latency, no hooks. */
  direct: AwsClients;
  region: string;
  close(): Promise<void>;
}

/**
 * The app's stand-ins for one more region of an account. The world answers every Run Command the
 * proxy sees; this one only sees the commands sent to its own region, so worlds of several
 * regions can share one proxy (the proxy's `region` of a command is the request's).
 */
export async function openRegionalWorld(account: Pick<Account, 'proxy'>, region: string): Promise<AppWorld> {
  const proxy = account.proxy;
  const regional = {
    clients: (options: Parameters<AwsProxy['clients']>[0]) => proxy.clients(options),
    onCommand: (handler: Parameters<AwsProxy['onCommand']>[0], options?: Parameters<AwsProxy['onCommand']>[1]) =>
      proxy.onCommand((cmd) => (cmd.region === region ? handler(cmd) : undefined), options),
    onEc2Change: (listener: Parameters<AwsProxy['onEc2Change']>[0]) => proxy.onEc2Change(listener),
  };
  return AppWorld.start({ proxy: regional as unknown as AwsProxy, region });
}

export async function openAccount(stack: Stack, region: string): Promise<Account> {
  const proxy = await AwsProxy.start({ target: stack.moto.endpoint });
  const world = await openRegionalWorld({ proxy }, region);
  return {
    proxy,
    world,
    direct: proxy.clients({ bypass: true, maxAttempts: 3 }),
    region,
    async close() {
      await world.close();
      await proxy.close();
    },
  };
}

export interface BenchWorker {
  pid: number;
  taskQueue: string;
  /** Peak and current resident set size of the worker process, in MiB (from /proc). */
  memory(): Promise<{ peakMiB: number; rssMiB: number }>;
  /** The worker's own view: V8 heap used, external and array buffers (MiB). */
  heap(): Promise<{ heapUsedMiB: number; heapTotalMiB: number; externalMiB: number; rssMiB: number }>;
  stop(): Promise<void>;
}

export interface WorkerOptions {
  /** Between polls of a running SSM command; default 2000 ms, the production default. */
  ssmPollMs?: number;
  taskQueue?: string;
}

/** Starts bench/worker-process.ts for an account and resolves once it polls. */
export async function spawnBenchWorker(
  stack: Stack,
  account: Account,
  options: WorkerOptions = {},
): Promise<BenchWorker> {
  const taskQueue = options.taskQueue ?? `bench-${randomBytes(4).toString('hex')}`;
  // The heap limit the package's worker scripts set; BENCH_WORKER_FLAGS replaces the flags.
  const flags =
    process.env.BENCH_WORKER_FLAGS !== undefined
      ? process.env.BENCH_WORKER_FLAGS.split(' ').filter(Boolean)
      : [`--max-old-space-size=${WORKER_HEAP_MIB}`];
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', join(__dirname, 'worker-process.ts')], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: stack.address,
      TEMPORAL_NAMESPACE: 'default',
      TASK_QUEUE: taskQueue,
      AWS_ENDPOINT_URL: account.proxy.endpoint,
      WORKFLOW_BUNDLE_PATH: stack.bundlePath,
      SSM_POLL_MS: String(options.ssmPollMs ?? 2000),
      // The benchmark's client reads results and histories without a payload codec.
      MIGRATION_PAYLOAD_KEY_FILE: '',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const heapAnswers: ((line: string) => void)[] = [];
  const keep = (s: string) => {
    output = (output + s).slice(-20_000);
  };
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Never leave the worker behind when the benchmark ends without stopping it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the benchmark worker did not start polling within 60 s:\n${output}`)),
      60_000,
    );
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      for (const line of s.split('\n')) if (line.startsWith('memory ')) heapAnswers.shift()?.(line.slice(7));
      keep(s);
      if (output.includes(READY_LINE)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr.setEncoding('utf8').on('data', keep);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the benchmark worker exited before it polled:\n${output}`));
    });
  });
  const pid = child.pid as number;
  return {
    pid,
    taskQueue,
    async memory() {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
      return { peakMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
    },
    async heap() {
      const answer = new Promise<string>((resolve) => heapAnswers.push(resolve));
      child.stdin.write('memory\n');
      const m = JSON.parse(await answer) as NodeJS.MemoryUsage;
      const mib = (n: number) => Math.round((n / 1024 ** 2) * 10) / 10;
      return {
        heapUsedMiB: mib(m.heapUsed),
        heapTotalMiB: mib(m.heapTotal),
        externalMiB: mib(m.external),
        rssMiB: mib(m.rss),
      };
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.kill('SIGTERM');
      await exited;
      clearTimeout(killer);
    },
  };
}

/** A child process of `parent` whose command line contains `text`. */
async function childWith(parent: number, text: string): Promise<number | undefined> {
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      if ((await readFile(`/proc/${entry}/cmdline`, 'utf8')).includes(text)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** CPU seconds (user + system) a process has used so far; NaN when it cannot be read. */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime), in clock ticks of 1/100 s.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** CPU seconds each process used while `work` ran. */
export async function measureCpu<T>(
  pids: Record<string, number>,
  work: () => Promise<T>,
): Promise<{ result: T; cpu: Record<string, number>; wallMs: number }> {
  const before = Object.fromEntries(
    await Promise.all(Object.entries(pids).map(async ([k, pid]) => [k, await cpuSeconds(pid)] as const)),
  );
  const t0 = Date.now();
  const result = await work();
  const wallMs = Date.now() - t0;
  const cpu: Record<string, number> = {};
  for (const [k, pid] of Object.entries(pids)) cpu[k] = Math.round(((await cpuSeconds(pid)) - before[k]) * 100) / 100;
  return { result, cpu, wallMs };
}
