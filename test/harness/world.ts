/**
 * Stand-ins for the reference app (FastAPI backend, nginx frontend, OpenVoice, VOICEVOX) as if
 * they ran on EC2 instances in moto.
 *
 * Each service port is one listener on 0.0.0.0. moto's public addresses are on loopback (Elastic
 * IPs in 127.0.0.0/8; instance addresses mapped to 127.214.x.y by the proxy), so a request to
 * `http://<public ip>:<port>` arrives here with that address as the socket's local address. The
 * world asks moto which instance owns the address right now and answers only if that instance
 * is running and its app was started; otherwise it drops the connection like an unreachable
 * host. Private services are reached only from "inside" the instance: through SSM Run Command,
 * which the world scripts (curl to 127.0.0.1:<port>, nvidia-smi, the start command).
 */
import {
  DescribeAddressesCommand,
  paginateDescribeInstances,
  paginateDescribeSecurityGroups,
  type Instance,
} from '@aws-sdk/client-ec2';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { AwsClients } from '../../src/aws/clients';
import type { AwsProxy, CommandInvocation, ScriptedResult } from './aws-proxy';

/** The reference app's services (ports are chosen per world). */
export const REFERENCE_SERVICES: readonly WorldServiceSpec[] = [
  { name: 'backend', healthPath: '/health', public: true },
  { name: 'frontend', healthPath: '/', public: true },
  { name: 'openvoice', healthPath: '/health', public: false },
  { name: 'voicevox', healthPath: '/version', public: false },
];

/** The command in `remote.start` that brings the app up (testPlan uses it). */
export const START_MARKER = 'docker compose up -d';

export const DEFAULT_GPU_OUTPUT = 'Tesla T4, 15360 MiB, 535.183.01, 12.2';

const GPU_BY_FAMILY: Record<string, string> = {
  g4dn: DEFAULT_GPU_OUTPUT,
  g5: 'NVIDIA A10G, 23028 MiB, 535.183.01, 12.2',
  g6: 'NVIDIA L4, 23034 MiB, 535.183.01, 12.2',
  p3: 'Tesla V100-SXM2-16GB, 16384 MiB, 535.183.01, 12.2',
};

/** A line that makes the rest of the script stop on the first error (`set -e`, `set -euo pipefail`). */
const SET_ERREXIT = /^set\s+(-[a-z]*e[a-z]*\b|-o\s+errexit\b)/;

const NO_DRIVER =
  "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.";

export interface WorldServiceSpec {
  name: string;
  healthPath: string;
  public: boolean;
  /** Listen on this port (the demo uses the app's real ports); default: one the OS picks. */
  port?: number;
}

export interface WorldService extends WorldServiceSpec {
  port: number;
}

/** How a service behaves. `fail`: true = HTTP 500, a number = that status, 'refuse' = drop the connection. */
export interface ServiceBehaviour {
  delayMs?: number;
  fail?: boolean | number | 'refuse';
  /** Time the backend takes for a synthesis (default by instance type: GPU 30 ms, CPU 300 ms). */
  synthesisDelayMs?: number;
}

/** A behaviour for one service and/or one instance; later rules override earlier ones. */
export interface BehaviourRule extends ServiceBehaviour {
  service?: string;
  instanceId?: string;
}

export interface GpuBehaviour {
  instanceId?: string;
  /** What nvidia-smi prints; '' for empty output. */
  stdout?: string;
  stderr?: string;
  exitCode?: number;
}

export interface ServedRequest {
  service: string;
  port: number;
  /** The address the client connected to. */
  address: string;
  instanceId?: string;
  method: string;
  path: string;
  /** HTTP status answered, or 'dropped' when the connection was destroyed. */
  outcome: number | 'dropped';
  reason?: string;
  at: Date;
  durationMs: number;
}

export interface WorldCommand extends CommandInvocation {
  result: ScriptedResult;
}

export interface WorldOptions {
  proxy: AwsProxy;
  /** Region the instances are in (default us-east-1). */
  region?: string;
  services?: readonly WorldServiceSpec[];
  /** A command containing this string starts the app on the instance. */
  startMarker?: string;
}

interface InstanceView {
  instanceId: string;
  state: string;
  instanceType: string;
  /** The security groups of the instance (and of its network interfaces). */
  groupIds: string[];
}

/** One ingress permission of a security group, as the world enforces it. */
interface IngressPermission {
  protocol: string;
  fromPort: number;
  toPort: number;
  cidrs: string[];
}

/** Who owns which public address, and every instance's state, as moto said last. */
interface Snapshot {
  byAddress: Map<string, InstanceView>;
  byId: Map<string, InstanceView>;
  /** Ingress of every security group of the account, by group id. */
  ingress: Map<string, IngressPermission[]>;
}

export class AppWorld {
  readonly services: readonly WorldService[];
  /** Service name → port. */
  readonly ports: Readonly<Record<string, number>>;
  readonly startMarker: string;
  readonly region: string;

  private readonly ec2Clients: AwsClients;
  private readonly started = new Set<string>();
  private behaviours: BehaviourRule[] = [];
  private gpuRules: GpuBehaviour[] = [];
  private commandRules: { match: string | RegExp; result: ScriptedResult; instanceId?: string }[] = [];
  private readonly served: ServedRequest[] = [];
  private readonly servedListeners = new Set<(request: ServedRequest) => void>();
  private readonly seenCommands: WorldCommand[] = [];
  private readonly closing = new AbortController();
  private readonly unsubscribe: (() => void)[];
  /** EC2 state, loaded on demand and dropped after every EC2 change through the proxy. */
  private snapshot?: Promise<Snapshot>;

  private constructor(
    private readonly servers: Server[],
    services: WorldService[],
    options: WorldOptions,
  ) {
    this.services = services;
    this.ports = Object.fromEntries(services.map((s) => [s.name, s.port]));
    this.startMarker = options.startMarker ?? START_MARKER;
    this.region = options.region ?? 'us-east-1';
    this.ec2Clients = options.proxy.clients({ bypass: true, maxAttempts: 3 });
    this.unsubscribe = [
      options.proxy.onCommand((cmd) => this.runCommands(cmd)),
      options.proxy.onEc2Change(() => {
        this.snapshot = undefined;
      }),
    ];
  }

  static async start(options: WorldOptions): Promise<AppWorld> {
    const specs = options.services ?? REFERENCE_SERVICES;
    const servers: Server[] = [];
    const services: WorldService[] = [];
    try {
      for (const spec of specs) {
        const server = createServer();
        await new Promise<void>((ok, fail) => server.once('error', fail).listen(spec.port ?? 0, '0.0.0.0', () => ok()));
        servers.push(server);
        services.push({ ...spec, port: (server.address() as AddressInfo).port });
      }
    } catch (err) {
      await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
      throw err;
    }
    const world = new AppWorld(servers, services, options);
    servers.forEach((server, i) => server.on('request', (req, res) => void world.serve(services[i], req, res)));
    return world;
  }

  /** The URL of a service at an address, e.g. `world.url(eip, 'backend', '/health')`. */
  url(address: string, service: string, path?: string): string {
    const svc = this.service(service);
    return `http://${address}:${svc.port}${path ?? svc.healthPath}`;
  }

  /** Services in the plan's shape. */
  planServices(): { name: string; port: number; healthPath: string; public: boolean }[] {
    return this.services.map(({ name, port, healthPath, public: isPublic }) => ({
      name,
      port,
      healthPath,
      public: isPublic,
    }));
  }

  configure(rule: BehaviourRule): void {
    if (rule.service !== undefined) this.service(rule.service);
    this.behaviours.push({ ...rule });
  }

  /** nvidia-smi's answer, for one instance or (without instanceId) every instance. */
  configureGpu(rule: GpuBehaviour): void {
    this.gpuRules.push({ ...rule });
  }

  /** Any command containing `match` (or matching it) gets `result` (a failure stops the list). */
  scriptCommand(match: string | RegExp, result: ScriptedResult, instanceId?: string): void {
    this.commandRules.push({ match, result, instanceId });
  }

  /** Forget configure / configureGpu / scriptCommand rules. */
  resetConfig(): void {
    this.behaviours = [];
    this.gpuRules = [];
    this.commandRules = [];
  }

  markStarted(instanceId: string): void {
    this.started.add(instanceId);
  }

  markStopped(instanceId: string): void {
    this.started.delete(instanceId);
  }

  startedInstances(): string[] {
    return [...this.started];
  }

  /** Calls `listener` with each request once it was answered (or dropped). */
  onServed(listener: (request: ServedRequest) => void): () => void {
    this.servedListeners.add(listener);
    return () => this.servedListeners.delete(listener);
  }

  requests(filter: { service?: string; instanceId?: string; outcome?: number | 'dropped' } = {}): ServedRequest[] {
    return this.served.filter(
      (r) =>
        (filter.service === undefined || r.service === filter.service) &&
        (filter.instanceId === undefined || r.instanceId === filter.instanceId) &&
        (filter.outcome === undefined || r.outcome === filter.outcome),
    );
  }

  /** Commands the world answered, oldest first. */
  commands(instanceId?: string): WorldCommand[] {
    return this.seenCommands.filter((c) => instanceId === undefined || c.instanceId === instanceId);
  }

  async close(): Promise<void> {
    for (const off of this.unsubscribe) off();
    this.closing.abort();
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((done) => {
            s.close(() => done());
            s.closeAllConnections();
          }),
      ),
    );
  }

  // --- HTTP ---------------------------------------------------------------------------------

  private service(name: string): WorldService {
    const svc = this.services.find((s) => s.name === name);
    if (!svc)
      throw new Error(`the world has no service '${name}' (has ${this.services.map((s) => s.name).join(', ')})`);
    return svc;
  }

  private behaviour(service: string, instanceId: string | undefined): ServiceBehaviour {
    const out: ServiceBehaviour = {};
    for (const rule of this.behaviours) {
      if (rule.service !== undefined && rule.service !== service) continue;
      if (rule.instanceId !== undefined && rule.instanceId !== instanceId) continue;
      if (rule.delayMs !== undefined) out.delayMs = rule.delayMs;
      if (rule.fail !== undefined) out.fail = rule.fail;
      if (rule.synthesisDelayMs !== undefined) out.synthesisDelayMs = rule.synthesisDelayMs;
    }
    return out;
  }

  private async serve(svc: WorldService, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const address = (req.socket.localAddress ?? '').replace(/^::ffff:/, '');
    const record: ServedRequest = {
      service: svc.name,
      port: svc.port,
      address,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      outcome: 'dropped',
      at: new Date(started),
      durationMs: 0,
    };
    this.served.push(record);
    const drop = (reason: string) => {
      record.outcome = 'dropped';
      record.reason = reason;
      record.durationMs = Date.now() - started;
      req.socket.destroy();
    };
    try {
      const body = await readText(req);
      if (!svc.public) return drop(`${svc.name} is private: not reachable from outside the instance`);
      const owner = await this.ownerOf(address);
      if (!owner) return drop(`no instance has the public address ${address}`);
      record.instanceId = owner.instanceId;
      if (owner.state !== 'running') return drop(`instance ${owner.instanceId} is ${owner.state}`);
      // Security groups deny inbound traffic unless a rule allows it: no rule, no answer (the
      // client waits until it gives up, as on AWS).
      const caller = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      if (!(await this.ingressAllows(owner, svc.port, caller))) {
        return drop(
          `no security group of ${owner.instanceId} (${owner.groupIds.join(', ') || 'none'}) allows tcp/${svc.port} from ${caller}`,
        );
      }
      if (!this.started.has(owner.instanceId)) return drop(`the app is not started on ${owner.instanceId}`);

      const behaviour = this.behaviour(svc.name, owner.instanceId);
      if (behaviour.fail === 'refuse') return drop(`${svc.name} is configured to refuse connections`);
      if (behaviour.delayMs) await delay(behaviour.delayMs, undefined, { signal: this.closing.signal });
      const answer =
        behaviour.fail !== undefined && behaviour.fail !== false
          ? {
              status: behaviour.fail === true ? 500 : behaviour.fail,
              type: 'application/json',
              body: JSON.stringify({ detail: 'Internal Server Error' }),
            }
          : await this.answer(svc, req, body, owner);
      if (res.destroyed) return drop('client went away');
      res.writeHead(answer.status, { 'content-type': answer.type, 'x-served-by': owner.instanceId });
      res.end(answer.body);
      record.outcome = answer.status;
      record.durationMs = Date.now() - started;
    } catch (err) {
      drop(this.closing.signal.aborted ? 'world closed' : `world error: ${String(err)}`);
    } finally {
      for (const listener of [...this.servedListeners]) listener(record);
    }
  }

  private async answer(
    svc: WorldService,
    req: IncomingMessage,
    body: string,
    owner: InstanceView,
  ): Promise<{ status: number; type: string; body: string }> {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, value: unknown) => ({
      status,
      type: 'application/json',
      body: JSON.stringify(value),
    });
    const gpu = hasGpu(owner.instanceType);
    switch (svc.name) {
      case 'backend':
        if (req.method === 'GET' && path === svc.healthPath) return json(200, { status: 'ok' });
        if (req.method === 'POST' && path === '/api/voice/synthesize') {
          const down = ['openvoice', 'voicevox'].find(
            (name) => this.services.some((s) => s.name === name) && !this.privateHealthy(name, owner),
          );
          if (down) return json(503, { detail: `${down} is unavailable` });
          const behaviour = this.behaviour(svc.name, owner.instanceId);
          const ms = behaviour.synthesisDelayMs ?? (gpu ? 30 : 300);
          await delay(ms, undefined, { signal: this.closing.signal });
          let text = '';
          try {
            const parsed: unknown = JSON.parse(body || '{}');
            if (parsed && typeof parsed === 'object' && 'text' in parsed) text = String(parsed.text);
          } catch {
            return json(422, { detail: 'body is not JSON' });
          }
          return json(200, {
            audio: Buffer.from(`RIFF-fake-wav:${text}`).toString('base64'),
            device: gpu ? 'cuda' : 'cpu',
            synthesisMs: ms,
          });
        }
        return json(404, { detail: 'Not Found' });
      case 'frontend':
        if (req.method === 'GET' && (path === svc.healthPath || path === '/index.html')) {
          return {
            status: 200,
            type: 'text/html',
            body: '<!doctype html><html><head><title>Video Message App</title></head><body><div id="root"></div></body></html>',
          };
        }
        return { status: 404, type: 'text/html', body: '<html><body><h1>404 Not Found</h1></body></html>' };
      case 'openvoice':
        if (path === svc.healthPath) return json(200, { status: 'ok', cuda: gpu });
        return json(404, { detail: 'Not Found' });
      case 'voicevox':
        if (path === svc.healthPath) return json(200, '0.19.1');
        return json(404, { detail: 'Not Found' });
      default:
        if (path === svc.healthPath) return { status: 200, type: 'text/plain', body: 'ok' };
        return { status: 404, type: 'text/plain', body: 'not found' };
    }
  }

  /** The instance that owns a public address now (an Elastic IP or an instance's own address). */
  private async ownerOf(address: string): Promise<InstanceView | undefined> {
    return (await this.state()).byAddress.get(address);
  }

  /** Whether one of the instance's security groups lets `caller` in on TCP `port`. */
  private async ingressAllows(owner: InstanceView, port: number, caller: string): Promise<boolean> {
    const { ingress } = await this.state();
    return owner.groupIds.some((id) =>
      (ingress.get(id) ?? []).some(
        (p) =>
          (p.protocol === '-1' ||
            ((p.protocol === 'tcp' || p.protocol === '6') && p.fromPort <= port && port <= p.toPort)) &&
          p.cidrs.some((c) => cidrContains(c, caller)),
      ),
    );
  }

  private state(): Promise<Snapshot> {
    if (!this.snapshot) {
      const loading = this.loadState();
      this.snapshot = loading;
      loading.catch(() => {
        if (this.snapshot === loading) this.snapshot = undefined;
      });
    }
    return this.snapshot;
  }

  private async loadState(): Promise<Snapshot> {
    const ec2 = this.ec2Clients.ec2(this.region);
    const instances: Instance[] = [];
    const ingress = new Map<string, IngressPermission[]>();
    const [addresses] = await Promise.all([
      ec2.send(new DescribeAddressesCommand({})),
      (async () => {
        for await (const page of paginateDescribeSecurityGroups({ client: ec2 }, {})) {
          for (const g of page.SecurityGroups ?? []) {
            ingress.set(
              g.GroupId ?? '',
              (g.IpPermissions ?? []).map((p) => ({
                protocol: p.IpProtocol ?? '-1',
                fromPort: p.FromPort ?? -1,
                toPort: p.ToPort ?? -1,
                cidrs: (p.IpRanges ?? []).map((r) => r.CidrIp ?? ''),
              })),
            );
          }
        }
      })(),
      (async () => {
        for await (const page of paginateDescribeInstances({ client: ec2 }, {})) {
          for (const r of page.Reservations ?? []) instances.push(...(r.Instances ?? []));
        }
      })(),
    ]);
    const byId = new Map(instances.map((i) => [i.InstanceId ?? '', view(i)]));
    const byAddress = new Map<string, InstanceView>();
    for (const eip of addresses.Addresses ?? []) {
      const owner = eip.InstanceId ? byId.get(eip.InstanceId) : undefined;
      if (eip.PublicIp && owner) byAddress.set(eip.PublicIp, owner);
    }
    for (const i of instances) {
      if (
        i.PublicIpAddress &&
        !byAddress.has(i.PublicIpAddress) &&
        !addresses.Addresses?.some((a) => a.PublicIp === i.PublicIpAddress)
      ) {
        byAddress.set(i.PublicIpAddress, view(i));
      }
    }
    return { byAddress, byId, ingress };
  }

  private privateHealthy(name: string, owner: InstanceView): boolean {
    if (owner.state !== 'running' || !this.started.has(owner.instanceId)) return false;
    const fail = this.behaviour(name, owner.instanceId).fail;
    return fail === undefined || fail === false;
  }

  // --- SSM Run Command ----------------------------------------------------------------------

  private async runCommands(cmd: CommandInvocation): Promise<ScriptedResult> {
    const result = await this.execute(cmd);
    this.seenCommands.push({ ...cmd, result });
    return result;
  }

  private async execute(cmd: CommandInvocation): Promise<ScriptedResult> {
    const instance = (await this.state()).byId.get(cmd.instanceId);
    if (!instance || instance.state !== 'running') {
      // SSM cannot deliver it: the command stays Pending until its delivery timeout (an hour by default).
      return { status: 'Pending' };
    }
    // AWS-RunShellScript writes the lines into one script and runs it: every line runs, and the
    // script's exit code is its last line's, unless the script stops on errors itself (`set -e`).
    const stdout: string[] = [];
    const stderr: string[] = [];
    let errexit = false;
    let last = 0;
    for (const line of cmd.commands) {
      if (SET_ERREXIT.test(line.trim())) {
        errexit = true;
        last = 0;
        continue;
      }
      const step = this.executeLine(line, instance);
      if (step.stdout) stdout.push(step.stdout);
      if (step.stderr) stderr.push(step.stderr);
      if (step.status && step.status !== 'Success' && step.status !== 'Failed') {
        return { ...step, stdout: joinLines(stdout), stderr: joinLines(stderr) };
      }
      last = step.exitCode ?? (step.status === 'Failed' ? 1 : 0);
      if (last !== 0 && errexit) break;
    }
    return {
      status: last === 0 ? 'Success' : 'Failed',
      exitCode: last,
      stdout: joinLines(stdout),
      stderr: joinLines(stderr),
    };
  }

  /** One line of the script: its output and exit code. */
  private executeLine(line: string, instance: InstanceView): ScriptedResult {
    const rule = [...this.commandRules]
      .reverse()
      .find(
        (r) =>
          (r.instanceId === undefined || r.instanceId === instance.instanceId) &&
          (typeof r.match === 'string' ? line.includes(r.match) : r.match.test(line)),
      );
    if (rule) return rule.result;
    if (line.includes(this.startMarker)) {
      this.started.add(instance.instanceId);
      return { exitCode: 0 };
    }
    if (/\bnvidia-smi\b/.test(line)) return this.nvidiaSmi(instance);
    const urls = [...line.matchAll(/https?:\/\/(?:127\.0\.0\.1|localhost):(\d+)(\/[^\s'"]*)?/g)];
    if (urls.length > 0) return this.curl(line, urls, instance);
    return { exitCode: 0 };
  }

  private nvidiaSmi(instance: InstanceView): ScriptedResult {
    let out: ScriptedResult = hasGpu(instance.instanceType)
      ? { exitCode: 0, stdout: gpuOutput(instance.instanceType) }
      : { exitCode: 9, stderr: NO_DRIVER };
    for (const rule of this.gpuRules) {
      if (rule.instanceId !== undefined && rule.instanceId !== instance.instanceId) continue;
      out = {
        exitCode: rule.exitCode ?? 0,
        stdout: rule.stdout ?? '',
        stderr: rule.stderr ?? (rule.exitCode ? NO_DRIVER : ''),
      };
    }
    return out;
  }

  /** curl printing the HTTP status (`-w '%{http_code}'`), as the private-service check does. */
  private curl(line: string, urls: RegExpMatchArray[], instance: InstanceView): ScriptedResult {
    const failFlag = /(?:^|\s)(?:--fail\b|-[a-zA-Z]*f[a-zA-Z]*\b)/.test(line);
    const codes: string[] = [];
    for (const url of urls) {
      const port = Number(url[1]);
      const path = url[2] ?? '/';
      const svc = this.services.find((s) => s.port === port);
      const behaviour = svc ? this.behaviour(svc.name, instance.instanceId) : {};
      const reachable = svc !== undefined && this.started.has(instance.instanceId) && behaviour.fail !== 'refuse';
      if (!reachable) {
        return {
          exitCode: 7,
          stdout: joinLines([...codes, '000']),
          stderr: `curl: (7) Failed to connect to 127.0.0.1 port ${port} after 0 ms: Couldn't connect to server`,
        };
      }
      const status =
        behaviour.fail === true
          ? 500
          : typeof behaviour.fail === 'number'
            ? behaviour.fail
            : path.split('?')[0] === svc.healthPath
              ? 200
              : 404;
      if (status >= 400 && failFlag) {
        return {
          exitCode: 22,
          stdout: joinLines(codes),
          stderr: `curl: (22) The requested URL returned error: ${status}`,
        };
      }
      codes.push(String(status));
    }
    return { exitCode: 0, stdout: codes.join('\n') };
  }
}

function view(instance: Instance): InstanceView {
  const groups = [
    ...(instance.SecurityGroups ?? []),
    ...(instance.NetworkInterfaces ?? []).flatMap((n) => n.Groups ?? []),
  ];
  return {
    instanceId: instance.InstanceId ?? '',
    state: instance.State?.Name ?? 'unknown',
    instanceType: instance.InstanceType ?? '',
    groupIds: [...new Set(groups.map((g) => g.GroupId ?? '').filter(Boolean))],
  };
}

/** Whether an IPv4 CIDR (`127.0.0.0/8`, `0.0.0.0/0`, `203.0.113.7/32`) holds an address. */
export function cidrContains(cidr: string, address: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText ?? 32);
  const a = ipv4(base);
  const b = ipv4(address);
  if (a === undefined || b === undefined || !(bits >= 0 && bits <= 32)) return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (a & mask) >>> 0 === (b & mask) >>> 0;
}

function ipv4(text: string): number | undefined {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) return undefined;
  return (((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3]) >>> 0;
}

function family(instanceType: string): string {
  return instanceType.split('.')[0];
}

/** GPU instance families (g*, p*; not the Graviton g-suffixed CPU types such as m6g). */
export function hasGpu(instanceType: string): boolean {
  return /^(g\d|p\d)/.test(family(instanceType));
}

function gpuOutput(instanceType: string): string {
  return GPU_BY_FAMILY[family(instanceType)] ?? DEFAULT_GPU_OUTPUT;
}

function joinLines(parts: string[]): string {
  return parts.filter((p) => p !== '').join('\n');
}

function readText(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}
