/**
 * A test-only reverse proxy in front of the shared moto server.
 *
 * - Isolation: every proxy speaks to moto as its own random 12-digit account
 *   (`x-moto-account-id`), so tests never see each other's AWS state and need no resets.
 * - A log of every call (service, action, HTTP status, injected error).
 * - Faults moto cannot produce: capacity errors, throttling, 5xx, latency, an SSM agent that
 *   has not registered yet; all in the wire format of the call's protocol, so the SDK parses,
 *   classifies and retries them as it would with AWS.
 * - Scripted SSM Run Command results (moto always answers Success with empty output).
 * - Public addresses on loopback: moto draws the automatic public IPv4 of an instance from
 *   54.214.0.0/16 (Elastic IPs come from 127.0.0.0/8). The proxy rewrites them in EC2 answers to
 *   127.214.x.y, so a request to an instance's public address arrives on this machine
 *   (see world.ts). An `ip-address` filter with such an address is mapped back.
 * - One moto quirk corrected: reassociating an Elastic IP leaves it on the old instance too.
 */
import { setMaxListeners } from 'node:events';
import { randomInt, randomUUID } from 'node:crypto';
import {
  createServer,
  request as httpRequest,
  Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { createAwsClients, type AwsClients } from '../../src/aws/clients';
import { iamPolicy, type PolicyDocument } from '../../src/aws/permissions';
import { VCPU_QUOTAS } from '../../src/activities/quotas';
import type { Plan } from '../../src/plan/schema';
import { authorizations, firstDenied, kmsAuthorizations, type Authorization } from './iam';
import { placementScores } from './placement';
import { mulberry32 } from './random';

/** What the proxy saw of one call. */
export interface CallRecord {
  service: string;
  action: string;
  region?: string;
  status: number;
  /** The error code the proxy answered with instead of moto, if any. */
  injected?: string;
  at: Date;
  durationMs: number;
}

export interface CallFilter {
  service?: string;
  action?: string;
  /** true: only injected errors; false: only calls moto answered (or the proxy scripted). */
  injected?: boolean;
}

/** One request, as hooks and `when` predicates see it. */
export interface ProxyRequest {
  service: string;
  action: string;
  region?: string;
  protocol: 'query' | 'json';
  /** Form parameters (query protocol) or the JSON document (JSON protocols). */
  params: Record<string, unknown>;
  headers: IncomingHttpHeaders;
}

export interface FaultRule {
  /** Action name (`RunInstances`), several, or '*' for every action. */
  action: string | readonly string[];
  /** Only this service (`ec2`, `ssm`, `sqs`). */
  service?: string;
  code: string;
  status?: number;
  message?: string;
  /** Inject this many times, then pass calls through. Without `times` or `rate`: every time. */
  times?: number;
  /** Inject on this fraction of matching calls (0..1), drawn from a generator seeded with `seed`. */
  rate?: number;
  seed?: number;
  /** Inject only when this returns true for the request's parameters. */
  when?: (params: Record<string, unknown>, request: ProxyRequest) => boolean;
}

export interface RepeatOptions {
  service?: string;
  times?: number;
  rate?: number;
  seed?: number;
  when?: FaultRule['when'];
}

export interface LatencyRule {
  action?: string | readonly string[];
  service?: string;
  ms: number;
  times?: number;
}

/** A rule in force; `fired` counts how often it applied. */
export interface RuleHandle {
  readonly fired: number;
  remove(): void;
}

/**
 * An instance EC2 accepts and then terminates while it is still `pending`, as it does when the
 * capacity went away in the meantime (`Server.InsufficientInstanceCapacity`) or a KMS key for
 * its volumes cannot be used (`Client.InternalError`).
 */
export interface LaunchDeath {
  /** StateReason code, e.g. `Server.InsufficientInstanceCapacity`. */
  code: string;
  message?: string;
  times?: number;
  when?: FaultRule['when'];
}

export type CommandStatus = 'Success' | 'Failed' | 'TimedOut' | 'InProgress' | 'Pending';

export interface ScriptedResult {
  status?: CommandStatus;
  /** Default: 0 for Success, 1 for Failed, -1 while in progress or timed out. */
  exitCode?: number;
  stdout?: string;
  stderr?: string;
  /** Reported execution time (default 1000). */
  durationMs?: number;
}

export interface CommandInvocation {
  commandId: string;
  instanceId: string;
  commands: string[];
  documentName?: string;
  region?: string;
}

export type CommandHandler = (
  cmd: CommandInvocation,
) => ScriptedResult | undefined | Promise<ScriptedResult | undefined>;

export interface AfterEvent {
  call: CallRecord;
  request: ProxyRequest;
  /** The response body as sent to the client. */
  responseBody: string;
}

export type AfterHook = (event: AfterEvent) => void | Promise<void>;

export interface AwsProxyOptions {
  /** moto's endpoint, e.g. motoEndpoint(). */
  target: string;
  /** moto account to act as; default a random 12-digit id. */
  accountId?: string;
  /** Rewrite moto's 54.214.x.y instance addresses to 127.214.x.y (default true). */
  publicIpsOnLoopback?: boolean;
  /** Disassociate an Elastic IP before moto reassociates it, as AWS does (default true). */
  fixReassociation?: boolean;
  /** How AWS lags behind a launch (defaults: PROXY_TIMING). */
  timing?: Partial<ProxyTiming>;
  /** The account already has EC2's Spot service-linked role (default false: a new account). */
  spotServiceLinkedRole?: boolean;
  /** The identity policies calls are authorised against (default: `iamPolicy()`; see grantPlan). */
  policies?: readonly PolicyDocument[];
}

/**
 * How long a new instance is not there yet for parts of AWS: EC2's API is eventually consistent
 * (a new instance is InvalidInstanceID.NotFound by id and missing from listings for a moment),
 * and the SSM agent registers some seconds after the instance runs (until then SendCommand
 * answers InvalidInstanceId and DescribeInstanceInformation does not list it).
 */
export interface ProxyTiming {
  consistencyLagMs: number;
  agentRegistrationMs: number;
  /**
   * A command's life on SSM, from SendCommand: GetCommandInvocation answers
   * InvocationDoesNotExist until `[0]` ms, Pending until `[1]`, InProgress until `[2]`, then the
   * result.
   */
  commandPreludeMs: readonly [number, number, number];
}

/** Short in tests, so every test meets them without waiting long; benchmarks set realistic ones. */
export const PROXY_TIMING: ProxyTiming = {
  consistencyLagMs: 300,
  agentRegistrationMs: 600,
  commandPreludeMs: [60, 120, 180],
};

export interface ProxyClientOptions {
  /** SDK attempts per call; default 1, so a test sees every injected error. */
  maxAttempts?: number;
  /** Use the side door: not logged, no faults, no latency, no hooks (for test setup and checks). */
  bypass?: boolean;
}

/** What GetCommandInvocation keeps of a command's output: the first 24,000 characters of stdout, the first 8,000 of stderr. */
export const SSM_STDOUT_LIMIT = 24_000;
export const SSM_STDERR_LIMIT = 8_000;
/** AWS-RunShellScript's `executionTimeout`: an integer string from 1 to 172800 (its document's allowedPattern). */
const EXECUTION_TIMEOUT = /^(?:[1-9][0-9]{0,4}|1[0-6][0-9]{4}|17[0-1][0-9]{3}|172[0-7][0-9]{2}|172800)$/;
/** The vCPU quotas the world's accounts have unless a test sets one (real new accounts often start at 0 for G and VT). */
export const DEFAULT_EC2_QUOTA = 64;
/** The quota names Service Quotas answers with, for the codes preflight reads. */
const EC2_QUOTA_NAMES: ReadonlyMap<string, string> = new Map(
  [...VCPU_QUOTAS['on-demand'], ...VCPU_QUOTAS.spot].map((q) => [q.code, q.name]),
);
const TEST_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

interface ActiveFault {
  spec: FaultRule;
  remaining?: number;
  random?: () => number;
  fired: number;
  error: (req: ProxyRequest) => { code: string; status: number; message: string };
}

interface ActiveLatency {
  spec: LatencyRule;
  remaining?: number;
  fired: number;
}

interface ActiveDeath {
  spec: LaunchDeath;
  remaining?: number;
  fired: number;
}

interface NotRegisteredRule {
  instanceId: string;
  remaining: number;
  fired: number;
}

interface SentCommand {
  commandId: string;
  instanceIds: string[];
  commands: string[];
  documentName?: string;
  at: Date;
  results: Map<string, ScriptedResult>;
  /** GetCommandInvocation calls so far, per instance. */
  reads: Map<string, number>;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  injected?: string;
}

export class AwsProxy {
  readonly accountId: string;
  /** Point SDK clients here. */
  readonly endpoint: string;
  /** Same account, but nothing is logged, injected or delayed. */
  readonly bypassEndpoint: string;

  private readonly target: URL;
  private readonly rewriteIps: boolean;
  private readonly fixReassociation: boolean;
  private readonly agent = new Agent({ keepAlive: true });
  /** Aborts every request in flight to moto on close; each holds a listener while it runs. */
  private readonly closing = (() => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  })();
  private readonly log: CallRecord[] = [];
  private faults: ActiveFault[] = [];
  private outages: { fired: number }[] = [];
  private latencies: ActiveLatency[] = [];
  private unregistered: NotRegisteredRule[] = [];
  private readonly commandHandlers: CommandHandler[] = [];
  private readonly afterHooks: { action: string; hook: AfterHook }[] = [];
  private readonly ec2ChangeListeners = new Set<(action: string) => void>();
  private readonly sent = new Map<string, SentCommand>();
  /** RunInstances by ClientToken: what was asked (less the token) and what EC2 answered. */
  private readonly launchesByToken = new Map<string, { params: string; reply: Reply }>();
  /** When RunInstances returned each instance through this proxy (instances made otherwise count as old). */
  private readonly launchedAt = new Map<string, number>();
  private timing: ProxyTiming;
  private launchDeaths: ActiveDeath[] = [];
  private omissions: { instanceId: string; remaining: number; fired: number }[] = [];
  /** Instances that died in `pending`, with the StateReason EC2 reports for them. */
  private readonly deadOnLaunch = new Map<string, { code: string; message: string }>();
  /** Spot prices by `type@az` (moto answers one constant price everywhere). */
  private readonly spotPrices = new Map<string, number>();
  private readonly placementScoreByZone = new Map<string, number>();
  /** Root snapshot size (GiB) of images, where it differs from what moto reports. */
  private readonly imageRootGiB = new Map<string, number>();
  /** Which AZs offer which instance types, and each subnet's AZ (moto's own data, read once). */
  private placement?: Promise<{ offered: Set<string>; azOfSubnet: Map<string, string> }>;
  /** The identity policies every call through the main door is authorised against (undefined: `iamPolicy()`). */
  private policies?: PolicyDocument[];
  /** The account's EC2 quotas by code (Service Quotas; moto does not serve it). */
  private readonly quotas = new Map<string, number>();
  /** Whether the account has AWSServiceRoleForEC2Spot (made by its first Spot launch). */
  private spotRole: boolean;

  private constructor(
    private readonly servers: Server[],
    options: AwsProxyOptions,
    accountId: string,
  ) {
    this.accountId = accountId;
    this.target = new URL(options.target);
    this.rewriteIps = options.publicIpsOnLoopback ?? true;
    this.fixReassociation = options.fixReassociation ?? true;
    this.timing = { ...PROXY_TIMING, ...options.timing };
    this.spotRole = options.spotServiceLinkedRole ?? false;
    this.policies = options.policies ? [...options.policies] : undefined;
    const [main, side] = servers.map((s) => (s.address() as AddressInfo).port);
    this.endpoint = `http://127.0.0.1:${main}`;
    this.bypassEndpoint = `http://127.0.0.1:${side}`;
  }

  static async start(options: AwsProxyOptions): Promise<AwsProxy> {
    const accountId = options.accountId ?? randomAccountId();
    if (!/^\d{12}$/.test(accountId)) throw new Error(`accountId must be 12 digits, got '${accountId}'`);
    const servers = [createServer(), createServer()];
    await Promise.all(
      servers.map((s) => new Promise<void>((ok, fail) => s.once('error', fail).listen(0, '127.0.0.1', () => ok()))),
    );
    const proxy = new AwsProxy(servers, options, accountId);
    servers[0].on('request', (req, res) => void proxy.handle(req, res, false));
    servers[1].on('request', (req, res) => void proxy.handle(req, res, true));
    return proxy;
  }

  /** SDK clients for this proxy's account (test credentials, default maxAttempts 1). */
  clients(options: ProxyClientOptions = {}): AwsClients {
    return createAwsClients({
      endpoint: options.bypass ? this.bypassEndpoint : this.endpoint,
      credentials: TEST_CREDENTIALS,
      maxAttempts: options.maxAttempts ?? 1,
    });
  }

  // --- the call log -------------------------------------------------------------------------

  calls(filter: CallFilter | ((call: CallRecord) => boolean) = {}): CallRecord[] {
    const test = typeof filter === 'function' ? filter : (c: CallRecord) => matchesFilter(c, filter);
    return this.log.filter(test);
  }

  /** How many calls of `action` the proxy saw (injected errors included). */
  count(action: string, filter: Omit<CallFilter, 'action'> = {}): number {
    return this.calls({ ...filter, action }).length;
  }

  clearLog(): void {
    this.log.length = 0;
  }

  // --- faults -------------------------------------------------------------------------------

  /** Answer matching calls with an AWS error instead of forwarding them. */
  fail(rule: FaultRule): RuleHandle {
    const status = rule.status ?? 400;
    return this.addFault(rule, (req) => ({
      code: rule.code,
      status,
      message: rule.message ?? defaultMessage(rule.code, req),
    }));
  }

  /** Throttle: EC2 `RequestLimitExceeded` (503), SSM/SQS `ThrottlingException` (400). */
  throttle(action: string | readonly string[], options: RepeatOptions = {}): RuleHandle {
    return this.addFault({ action, ...options, code: 'Throttling' }, (req) =>
      req.service === 'ec2'
        ? { code: 'RequestLimitExceeded', status: 503, message: 'Request limit exceeded.' }
        : { code: 'ThrottlingException', status: 400, message: 'Rate exceeded' },
    );
  }

  /** Server errors: 500 `InternalError` (SSM: `InternalServerError`) or 503 `Unavailable`. */
  serverError(action: string | readonly string[], options: RepeatOptions & { status?: 500 | 503 } = {}): RuleHandle {
    const status = options.status ?? 500;
    return this.addFault({ action, ...options, code: 'ServerError' }, (req) => {
      if (status === 503)
        return {
          code: req.service === 'ec2' ? 'Unavailable' : 'ServiceUnavailable',
          status,
          message: 'The server is overloaded and can not handle the request.',
        };
      return {
        code: req.service === 'ssm' ? 'InternalServerError' : 'InternalError',
        status,
        message: 'An internal error has occurred.',
      };
    });
  }

  /** Delay matching calls before they are forwarded (or answered with an injected error). */
  latency(rule: LatencyRule): RuleHandle {
    const active: ActiveLatency = { spec: rule, remaining: rule.times, fired: 0 };
    this.latencies.push(active);
    return ruleHandle(active, () => {
      this.latencies = this.latencies.filter((l) => l !== active);
    });
  }

  /**
   * SendCommand to `instanceId` (or any instance with '*') answers `InvalidInstanceId` (400)
   * `times` times, as SSM does while the instance's agent has not registered yet.
   */
  notRegistered(instanceId: string, times = 1): RuleHandle {
    const rule: NotRegisteredRule = { instanceId, remaining: times, fired: 0 };
    this.unregistered.push(rule);
    return ruleHandle(rule, () => {
      this.unregistered = this.unregistered.filter((r) => r !== rule);
    });
  }

  /** RunInstances succeeds, then the instance terminates in `pending` with this StateReason. */
  dieOnLaunch(rule: LaunchDeath): RuleHandle {
    const active: ActiveDeath = { spec: rule, remaining: rule.times, fired: 0 };
    this.launchDeaths.push(active);
    return ruleHandle(active, () => {
      this.launchDeaths = this.launchDeaths.filter((d) => d !== active);
    });
  }

  /**
   * Leaves `instanceId` out of the next `times` filtered DescribeInstances listings (by tag, by
   * state: any request with filters and no instance ids), as EC2's eventually consistent
   * listings may. DescribeInstances by id still sees it.
   */
  omitFromListings(instanceId: string, times = 1): RuleHandle {
    const rule = { instanceId, remaining: times, fired: 0 };
    this.omissions.push(rule);
    return ruleHandle(rule, () => {
      this.omissions = this.omissions.filter((r) => r !== rule);
    });
  }

  /** A zone's Spot placement score (1–10) for any request of three types or more (default 5). */
  setPlacementScore(availabilityZone: string, score: number): void {
    this.placementScoreByZone.set(availabilityZone, score);
  }

  /** The current Spot price of a type in one zone, as DescribeSpotPriceHistory reports it. */
  setSpotPrice(instanceType: string, availabilityZone: string, pricePerHour: number): void {
    this.spotPrices.set(`${instanceType}@${availabilityZone}`, pricePerHour);
  }

  /** Changes how long AWS lags behind a launch (see ProxyTiming). */
  setTiming(timing: Partial<ProxyTiming>): void {
    this.timing = { ...this.timing, ...timing };
  }

  /** The size of an image's root snapshot: DescribeImages reports it, RunInstances enforces it. */
  /**
   * Sets an EC2 quota of this account (Service Quotas code, e.g. L-3819A6DF for G and VT Spot
   * vCPUs). Unset quotas answer DEFAULT_EC2_QUOTA.
   */
  setQuota(quotaCode: string, value: number): void {
    this.quotas.set(quotaCode, value);
  }

  setImageRootSize(imageId: string, sizeGiB: number): void {
    this.imageRootGiB.set(imageId, sizeGiB);
  }

  // --- IAM ---------------------------------------------------------------------------------

  /**
   * Authorise the worker's calls with the policy `migration iam-policy --plan` prints for
   * `plan`. The first grant replaces the default (`iamPolicy()`, the policy without a plan);
   * later ones add to it, as attaching one more policy to the worker's role would.
   */
  grantPlan(plan: Plan): void {
    this.policies = [...(this.policies ?? []), iamPolicy(plan)];
  }

  /** Authorise every call with exactly these policies (a test taking an action away). */
  setPolicies(policies: readonly PolicyDocument[]): void {
    this.policies = [...policies];
  }

  /** The policies calls are authorised against now. */
  currentPolicies(): PolicyDocument[] {
    return this.policies ?? [iamPolicy()];
  }

  /**
   * AWS cannot be reached: every call through the main door has its connection closed before
   * an answer (the SDK sees a socket error, as when the network or the endpoint is down), until
   * removed. Logged with status 0.
   */
  unreachable(): RuleHandle {
    const rule = { fired: 0 };
    this.outages.push(rule);
    return ruleHandle(rule, () => {
      this.outages = this.outages.filter((r) => r !== rule);
    });
  }

  /** Removes every fault, latency and not-registered rule. Handlers and hooks stay. */
  reset(): void {
    this.outages = [];
    this.launchDeaths = [];
    this.omissions = [];
    this.faults = [];
    this.latencies = [];
    this.unregistered = [];
  }

  // --- SSM Run Command scripting ------------------------------------------------------------

  /**
   * Decide the result of commands sent to an instance. Handlers are asked in the order they were
   * added (`prepend` puts one first); the first that returns a result wins; with none, moto's
   * answer stands. Returns a function that removes the handler.
   */
  onCommand(handler: CommandHandler, options: { prepend?: boolean } = {}): () => void {
    if (options.prepend) this.commandHandlers.unshift(handler);
    else this.commandHandlers.push(handler);
    return () => {
      const i = this.commandHandlers.indexOf(handler);
      if (i >= 0) this.commandHandlers.splice(i, 1);
    };
  }

  /** The scripted result of a command on an instance, if there is one. */
  commandResult(commandId: string, instanceId: string): ScriptedResult | undefined {
    return this.sent.get(commandId)?.results.get(instanceId);
  }

  /** Changes a scripted result later, e.g. from InProgress to Success. */
  setCommandResult(commandId: string, instanceId: string, result: ScriptedResult): void {
    const sent = this.sent.get(commandId);
    if (!sent) throw new Error(`no SendCommand with CommandId ${commandId} went through this proxy`);
    sent.results.set(instanceId, result);
  }

  /** Every SendCommand that went through, oldest first. */
  sentCommands(): { commandId: string; instanceIds: string[]; commands: string[]; at: Date }[] {
    return [...this.sent.values()].map(({ commandId, instanceIds, commands, at }) => ({
      commandId,
      instanceIds,
      commands,
      at,
    }));
  }

  // --- hooks --------------------------------------------------------------------------------

  /** Runs `hook` after each call of `action` ('*': every call), before the client gets the answer. */
  onAfter(action: string, hook: AfterHook): () => void {
    const entry = { action, hook };
    this.afterHooks.push(entry);
    return () => {
      const i = this.afterHooks.indexOf(entry);
      if (i >= 0) this.afterHooks.splice(i, 1);
    };
  }

  /**
   * Called (synchronously, before the client gets the answer) after every successful EC2 call
   * that may change state, through either endpoint. For caches of EC2 state such as the world's.
   */
  onEc2Change(listener: (action: string) => void): () => void {
    this.ec2ChangeListeners.add(listener);
    return () => this.ec2ChangeListeners.delete(listener);
  }

  async close(): Promise<void> {
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
    this.agent.destroy();
  }

  // --- internals ----------------------------------------------------------------------------

  private addFault(spec: FaultRule, error: ActiveFault['error']): RuleHandle {
    if (spec.rate !== undefined && !(spec.rate >= 0 && spec.rate <= 1))
      throw new Error(`rate must be within 0..1, got ${spec.rate}`);
    const active: ActiveFault = {
      spec,
      remaining: spec.times,
      random: spec.rate !== undefined ? mulberry32(spec.seed ?? 1) : undefined,
      fired: 0,
      error,
    };
    this.faults.push(active);
    return ruleHandle(active, () => {
      this.faults = this.faults.filter((f) => f !== active);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse, bypass: boolean): Promise<void> {
    const started = Date.now();
    let request: ProxyRequest | undefined;
    let reply: Reply;
    try {
      const body = await readBody(req);
      request = identify(req, body);
      const outage = bypass ? undefined : this.outages[0];
      if (outage && request) {
        outage.fired++;
        this.log.push({
          service: request.service,
          action: request.action,
          ...(request.region ? { region: request.region } : {}),
          status: 0,
          injected: 'unreachable',
          at: new Date(started),
          durationMs: Date.now() - started,
        });
        res.destroy();
        return;
      }
      if (bypass) {
        reply = await this.forward(req, body, request);
      } else {
        reply = await this.process(req, body, request);
      }
    } catch (err) {
      if (this.closing.signal.aborted) {
        res.destroy();
        return;
      }
      reply = {
        status: 502,
        headers: { 'content-type': 'text/plain' },
        body: Buffer.from(`aws proxy: ${String(err)}`),
      };
    }

    if (
      request?.service === 'ec2' &&
      request.action === 'TerminateInstances' &&
      reply.status === 200 &&
      !reply.injected
    )
      await this.releaseAddressesOf(req, request).catch(() => undefined);
    if (
      request?.service === 'ec2' &&
      reply.status === 200 &&
      !reply.injected &&
      !/^(Describe|Get|List)/.test(request.action)
    ) {
      for (const listener of [...this.ec2ChangeListeners]) listener(request.action);
    }
    if (!bypass && request) {
      const call: CallRecord = {
        service: request.service,
        action: request.action,
        ...(request.region ? { region: request.region } : {}),
        status: reply.status,
        ...(reply.injected ? { injected: reply.injected } : {}),
        at: new Date(started),
        durationMs: Date.now() - started,
      };
      this.log.push(call);
      const responseBody = reply.body.toString('utf8');
      for (const { action, hook } of [...this.afterHooks]) {
        if (action !== '*' && action !== request.action) continue;
        try {
          await hook({ call, request, responseBody });
        } catch (err) {
          reply = {
            status: 500,
            headers: { 'content-type': 'text/plain' },
            body: Buffer.from(`aws proxy: onAfter(${action}) hook failed: ${String(err)}`),
          };
          call.status = 500;
        }
      }
    }
    if (request?.service === 'sqs' && bypass) {
      // A queue URL names SQS's one endpoint, whichever door was asked: a client that takes the
      // URL as its endpoint (the SDK does, unless given one) reaches the main door, as on AWS.
      const text = reply.body.toString('utf8');
      if (text.includes(this.bypassEndpoint)) {
        reply = { ...reply, body: Buffer.from(text.split(this.bypassEndpoint).join(this.endpoint)) };
      }
    }
    if (res.destroyed) return;
    res.writeHead(reply.status, { ...reply.headers, 'content-length': String(reply.body.length) });
    res.end(reply.body);
  }

  private async process(req: IncomingMessage, body: Buffer, request: ProxyRequest): Promise<Reply> {
    const waitMs = this.matchLatency(request);
    if (waitMs > 0) await delay(waitMs, undefined, { signal: this.closing.signal });

    const denied = await this.authorize(req, request);
    if (denied) return errorReply(request, denied);

    const unregistered = this.matchNotRegistered(request);
    if (unregistered) {
      return errorReply(request, {
        code: 'InvalidInstanceId',
        status: 400,
        message: `Instances [[${unregistered}]] not in a valid state for account ${this.accountId}`,
      });
    }
    const fault = this.matchFault(request);
    if (fault) return errorReply(request, fault);
    const lagging = this.notThereYet(request);
    if (lagging) return errorReply(request, lagging);
    if (request.service === 'ssm' && request.action === 'SendCommand') {
      const gone = await this.goneTarget(req, stringArray(request.params.InstanceIds));
      if (gone) {
        return errorReply(request, {
          code: 'InvalidInstanceId',
          status: 400,
          message: `Instances [[${gone}]] not in a valid state for account ${this.accountId}`,
        });
      }
    }
    if (request.service === 'ssm' && request.action === 'DescribeInstanceInformation')
      return this.describeInstanceInformation(req, request);
    if (request.service === 'servicequotas') return this.serviceQuota(request);
    const invalid = invalidParameters(request);
    if (invalid) return errorReply(request, { code: 'InvalidParameters', status: 400, message: invalid });
    if (request.service === 'ec2' && request.action === 'GetSpotPlacementScores')
      return this.spotPlacementScores(req, request);
    if (request.service === 'ec2' && request.action === 'RunInstances') return this.runInstances(req, body, request);
    if (request.service === 'ec2' && request.action === 'CreateImage') return this.createImage(req, request);
    if (request.service === 'ec2' && request.action === 'RevokeSecurityGroupIngress')
      return this.revokeIngress(req, body, request);
    if (request.service === 'ec2' && request.action === 'TerminateInstances')
      return this.terminateInstances(req, body, request);

    if (request.service === 'ssm' && request.action === 'GetCommandInvocation') {
      const answered = this.answerInvocation(request);
      if (answered) return answered;
    }
    const reply = await this.forward(req, body, request);
    const young = this.youngInstances(this.timing.consistencyLagMs);
    if (
      request.service === 'ec2' &&
      request.action === 'DescribeInstances' &&
      reply.status === 200 &&
      (young.length > 0 || this.omissions.some((o) => o.remaining > 0))
    ) {
      const listing =
        Object.keys(request.params).some((k) => k.startsWith('Filter.')) &&
        !Object.keys(request.params).some((k) => k.startsWith('InstanceId.'));
      if (listing) {
        let xml = reply.body.toString('utf8');
        // A listing does not show an instance launched a moment ago (eventual consistency).
        for (const id of young)
          if (xml.includes(`<instanceId>${id}</instanceId>`)) xml = withoutInstance(xml, id, { sharedOk: true });
        for (const rule of this.omissions) {
          if (rule.remaining <= 0 || !xml.includes(`<instanceId>${rule.instanceId}</instanceId>`)) continue;
          xml = withoutInstance(xml, rule.instanceId);
          rule.remaining--;
          rule.fired++;
        }
        return { ...reply, body: Buffer.from(xml, 'utf8') };
      }
    }
    if (request.service === 'ssm' && request.action === 'SendCommand' && reply.status === 200) {
      await this.scriptCommand(request, reply);
    }
    return reply;
  }

  private matchLatency(request: ProxyRequest): number {
    let total = 0;
    for (const rule of this.latencies) {
      if (rule.spec.service && rule.spec.service !== request.service) continue;
      if (rule.spec.action !== undefined && !actionMatches(rule.spec.action, request.action)) continue;
      if (rule.remaining !== undefined) {
        if (rule.remaining <= 0) continue;
        rule.remaining--;
      }
      rule.fired++;
      total += rule.spec.ms;
    }
    return total;
  }

  private matchNotRegistered(request: ProxyRequest): string | undefined {
    if (request.service !== 'ssm' || request.action !== 'SendCommand') return undefined;
    const ids = stringArray(request.params.InstanceIds);
    for (const rule of this.unregistered) {
      if (rule.remaining <= 0) continue;
      const hit = rule.instanceId === '*' ? ids[0] : ids.find((id) => id === rule.instanceId);
      if (hit === undefined) continue;
      rule.remaining--;
      rule.fired++;
      return hit;
    }
    return undefined;
  }

  private matchFault(request: ProxyRequest): { code: string; status: number; message: string } | undefined {
    for (const rule of this.faults) {
      const { spec } = rule;
      if (spec.service && spec.service !== request.service) continue;
      if (!actionMatches(spec.action, request.action)) continue;
      if (rule.remaining !== undefined && rule.remaining <= 0) continue;
      if (spec.when && !spec.when(request.params, request)) continue;
      if (rule.random && rule.random() >= (spec.rate ?? 1)) continue;
      if (rule.remaining !== undefined) rule.remaining--;
      rule.fired++;
      return rule.error(request);
    }
    return undefined;
  }

  private async forward(req: IncomingMessage, body: Buffer, request: ProxyRequest): Promise<Reply> {
    if (this.fixReassociation && request.service === 'ec2' && request.action === 'AssociateAddress') {
      await this.releaseForReassociation(req, request);
    }
    let outBody = body;
    if (this.rewriteIps && request.service === 'ec2' && request.protocol === 'query') {
      outBody = mapFilterAddresses(body);
    }
    const upstream = await this.send(req, outBody);
    let responseBody = upstream.body;
    if (this.rewriteIps && request.service === 'ec2' && upstream.status === 200) {
      responseBody = Buffer.from(toLoopbackAddresses(responseBody.toString('utf8')), 'utf8');
    }
    if (
      request.service === 'ec2' &&
      upstream.status === 200 &&
      request.action === 'DescribeInstances' &&
      this.deadOnLaunch.size > 0
    ) {
      responseBody = Buffer.from(withStateReasons(responseBody.toString('utf8'), this.deadOnLaunch), 'utf8');
    }
    if (request.service === 'ec2' && upstream.status === 200 && request.action === 'DescribeAddresses') {
      // An address with no association has no instance or interface fields on AWS; moto sends them empty.
      responseBody = Buffer.from(
        responseBody
          .toString('utf8')
          .replace(
            /<(instanceId|associationId|networkInterfaceId|networkInterfaceOwnerId|privateIpAddress)(?:\/>|><\/\1>)/g,
            '',
          ),
        'utf8',
      );
    }
    if (
      request.service === 'ec2' &&
      upstream.status === 200 &&
      request.action === 'DescribeSpotPriceHistory' &&
      this.spotPrices.size > 0
    ) {
      responseBody = Buffer.from(
        responseBody
          .toString('utf8')
          .split('<item>')
          .map((item) => {
            const key = `${/<instanceType>([^<]+)</.exec(item)?.[1]}@${/<availabilityZone>([^<]+)</.exec(item)?.[1]}`;
            const price = this.spotPrices.get(key);
            return price === undefined
              ? item
              : item.replace(/<spotPrice>[^<]*<\/spotPrice>/, `<spotPrice>${price}</spotPrice>`);
          })
          .join('<item>'),
        'utf8',
      );
    }
    if (
      request.service === 'ec2' &&
      upstream.status === 200 &&
      request.action === 'DescribeImages' &&
      this.imageRootGiB.size > 0
    ) {
      responseBody = Buffer.from(withRootSizes(responseBody.toString('utf8'), this.imageRootGiB), 'utf8');
    }
    return { ...upstream, body: responseBody };
  }

  /** Sends a body to moto with the request's method, path and headers, as this account. */
  private async send(req: Pick<IncomingMessage, 'headers' | 'method' | 'url'>, body: Buffer): Promise<Reply> {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_HEADERS.has(name)) continue;
      headers[name] = value;
    }
    headers['x-moto-account-id'] = this.accountId;
    headers['content-length'] = String(body.length);

    const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
      const out = httpRequest(
        {
          protocol: this.target.protocol,
          hostname: this.target.hostname,
          port: this.target.port,
          method: req.method,
          path: req.url,
          headers,
          agent: this.agent,
          signal: this.closing.signal,
        },
        resolve,
      );
      out.once('error', reject);
      out.end(body);
    });
    const responseBody = await readBody(upstream);
    const responseHeaders: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (value === undefined || HOP_HEADERS.has(name) || name === 'content-length') continue;
      responseHeaders[name] = value;
    }
    return { status: upstream.statusCode ?? 502, headers: responseHeaders, body: responseBody };
  }

  /**
   * RunInstances as EC2 answers it where moto does not:
   * - the same ClientToken returns the same reservation (also once its instances are terminated);
   *   the same token with other parameters is IdempotentParameterMismatch;
   * - a type the subnet's AZ does not offer is Unsupported;
   * - a root volume smaller than the image's snapshot is InvalidBlockDeviceMapping;
   * - a launch may die in `pending` (dieOnLaunch).
   */
  private async runInstances(req: IncomingMessage, body: Buffer, request: ProxyRequest): Promise<Reply> {
    const { params } = request;
    const dryRun = String(params.DryRun) === 'true';
    const token = typeof params.ClientToken === 'string' && params.ClientToken !== '' ? params.ClientToken : undefined;
    const asked = JSON.stringify(
      Object.entries(params)
        .filter(([k]) => k !== 'ClientToken' && k !== 'DryRun')
        .sort(([a], [b]) => a.localeCompare(b)),
    );
    if (token && !dryRun) {
      const earlier = this.launchesByToken.get(token);
      if (earlier && earlier.params !== asked) {
        return errorReply(request, {
          code: 'IdempotentParameterMismatch',
          status: 400,
          message: 'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
        });
      }
      if (earlier) return earlier.reply;
    }
    const refused = await this.refuseLaunch(req, request);
    if (refused) return errorReply(request, refused);
    const reply = await this.forward(req, body, request);
    if (reply.status !== 200 || dryRun) return reply;
    if (String(params['InstanceMarketOptions.MarketType']) === 'spot') this.spotRole = true;
    const ids = [...reply.body.toString('utf8').matchAll(/<instanceId>(i-[0-9a-f]+)<\/instanceId>/g)].map((m) => m[1]);
    for (const id of ids) this.launchedAt.set(id, Date.now());
    // EC2 uses a customer-managed key for the volumes as the caller: without the key's grants
    // the instance dies in pending (the launch itself was accepted, DryRun included).
    const kmsDenied = firstDenied(this.currentPolicies(), kmsAuthorizations(request));
    const death = kmsDenied
      ? { code: 'Client.InternalError', message: 'Client.InternalError: Client error on launch' }
      : this.matchDeath(request);
    if (death && ids.length > 0) {
      await this.ec2Side(req, {
        Action: 'TerminateInstances',
        ...Object.fromEntries(ids.map((id, i) => [`InstanceId.${i + 1}`, id])),
      });
      for (const id of ids)
        this.deadOnLaunch.set(id, {
          code: death.code,
          message:
            death.message ??
            `${death.code}: ${STATE_REASON_MESSAGES[death.code] ?? 'the instance terminated during launch'}`,
        });
    }
    if (token) this.launchesByToken.set(token, { params: asked, reply });
    return reply;
  }

  /**
   * CreateImage may tag the image and its snapshots (`TagSpecification` of type `snapshot`);
   * moto raises NotImplementedError on the latter. The proxy sends moto the rest and tags the
   * image's snapshots itself, as EC2 does.
   */
  private async createImage(req: IncomingMessage, request: ProxyRequest): Promise<Reply> {
    const form = new URLSearchParams();
    const snapshotTags: Record<string, string> = {};
    const specs = new Map<string, Record<string, string>>();
    for (const [k, v] of Object.entries(request.params)) {
      const m = /^TagSpecification\.(\d+)\.(.*)$/.exec(k);
      if (m) {
        specs.set(m[1], { ...(specs.get(m[1]) ?? {}), [m[2]]: String(v) });
        continue;
      }
      form.set(k, String(v));
    }
    let n = 0;
    for (const spec of specs.values()) {
      const tags = Object.entries(spec)
        .filter(([k]) => /^Tag\.\d+\.Key$/.test(k))
        .map(([k, key]) => [key, spec[k.replace(/Key$/, 'Value')] ?? ''] as const);
      if (spec.ResourceType === 'snapshot') {
        for (const [key, value] of tags) snapshotTags[key] = value;
        continue;
      }
      n++;
      form.set(`TagSpecification.${n}.ResourceType`, spec.ResourceType ?? '');
      tags.forEach(([key, value], i) => {
        form.set(`TagSpecification.${n}.Tag.${i + 1}.Key`, key);
        form.set(`TagSpecification.${n}.Tag.${i + 1}.Value`, value);
      });
    }
    const reply = await this.forward(req, Buffer.from(form.toString(), 'utf8'), request);
    const imageId = /<imageId>(ami-[0-9a-f]+)<\/imageId>/.exec(reply.body.toString('utf8'))?.[1];
    if (reply.status !== 200 || !imageId || Object.keys(snapshotTags).length === 0) return reply;
    const described = (await this.ec2Side(req, { Action: 'DescribeImages', 'ImageId.1': imageId })).body.toString(
      'utf8',
    );
    const snapshots = [
      ...new Set([...described.matchAll(/<snapshotId>(snap-[0-9a-f]+)<\/snapshotId>/g)].map((m) => m[1])),
    ];
    if (snapshots.length > 0) {
      const tagForm: Record<string, string> = { Action: 'CreateTags' };
      snapshots.forEach((id, i) => (tagForm[`ResourceId.${i + 1}`] = id));
      Object.entries(snapshotTags).forEach(([key, value], i) => {
        tagForm[`Tag.${i + 1}.Key`] = key;
        tagForm[`Tag.${i + 1}.Value`] = value;
      });
      await this.ec2Side(req, tagForm);
    }
    return reply;
  }

  /**
   * RevokeSecurityGroupIngress of a rule the group does not have: in a default VPC, EC2 answers
   * success and lists it in UnknownIpPermissions (moto answers InvalidPermission.NotFound, as a
   * non-default VPC does).
   */
  /**
   * TerminateInstances is idempotent on AWS: terminating an instance again succeeds. moto fails
   * the second termination of an instance launched with a network interface (it deletes the
   * interface again: InvalidNetworkInterfaceID.NotFound), so instances that are terminated
   * already are answered here and only the others reach moto. Unknown ids still fail the call,
   * and then none is terminated.
   */
  private async terminateInstances(req: IncomingMessage, body: Buffer, request: ProxyRequest): Promise<Reply> {
    const ids = instanceIdsOf(request.params);
    if (ids.length === 0 || String(request.params.DryRun) === 'true') return this.forward(req, body, request);
    const described = await this.ec2Side(req, {
      Action: 'DescribeInstances',
      ...Object.fromEntries(ids.map((id, i) => [`InstanceId.${i + 1}`, id])),
    });
    if (described.status !== 200) return this.forward(req, body, request);
    const xml = described.body.toString('utf8');
    const done = ids.filter((id) => instanceStateOf(xml, id) === 'terminated');
    if (done.length === 0) return this.forward(req, body, request);
    const rest = ids.filter((id) => !done.includes(id));
    let items = '';
    if (rest.length > 0) {
      const reply = await this.ec2Side(req, {
        Action: 'TerminateInstances',
        ...Object.fromEntries(rest.map((id, i) => [`InstanceId.${i + 1}`, id])),
      });
      if (reply.status !== 200) return reply;
      items = /<instancesSet>([\s\S]*)<\/instancesSet>/.exec(reply.body.toString('utf8'))?.[1] ?? '';
    }
    const terminated = '<code>48</code><name>terminated</name>';
    for (const id of done)
      items += `<item><instanceId>${escapeXml(id)}</instanceId><previousState>${terminated}</previousState><currentState>${terminated}</currentState></item>`;
    const out = `<?xml version="1.0" encoding="UTF-8"?>\n<TerminateInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${randomUUID()}</requestId><instancesSet>${items}</instancesSet></TerminateInstancesResponse>`;
    return { status: 200, headers: { 'content-type': 'text/xml;charset=UTF-8' }, body: Buffer.from(out, 'utf8') };
  }

  private async revokeIngress(req: IncomingMessage, body: Buffer, request: ProxyRequest): Promise<Reply> {
    const reply = await this.forward(req, body, request);
    if (reply.status !== 400 || !reply.body.toString('utf8').includes('InvalidPermission.NotFound')) return reply;
    const group = (
      await this.ec2Side(req, { Action: 'DescribeSecurityGroups', 'GroupId.1': String(request.params.GroupId ?? '') })
    ).body.toString('utf8');
    const vpcId = /<vpcId>([^<]+)<\/vpcId>/.exec(group)?.[1];
    const vpc = vpcId
      ? (await this.ec2Side(req, { Action: 'DescribeVpcs', 'VpcId.1': vpcId })).body.toString('utf8')
      : '';
    if (!/<isDefault>true<\/isDefault>/.test(vpc)) return reply;
    const p = request.params;
    const items: string[] = [];
    for (let i = 1; p[`IpPermissions.${i}.IpProtocol`] !== undefined; i++) {
      const v = (k: string) => escapeXml(String(p[`IpPermissions.${i}.${k}`] ?? ''));
      const v4 =
        p[`IpPermissions.${i}.IpRanges.1.CidrIp`] !== undefined
          ? `<ipRanges><item><cidrIp>${v('IpRanges.1.CidrIp')}</cidrIp></item></ipRanges>`
          : '<ipRanges/>';
      const v6 =
        p[`IpPermissions.${i}.Ipv6Ranges.1.CidrIpv6`] !== undefined
          ? `<ipv6Ranges><item><cidrIpv6>${v('Ipv6Ranges.1.CidrIpv6')}</cidrIpv6></item></ipv6Ranges>`
          : '<ipv6Ranges/>';
      items.push(
        `<item><ipProtocol>${v('IpProtocol')}</ipProtocol><fromPort>${v('FromPort')}</fromPort><toPort>${v('ToPort')}</toPort><groups/>${v4}${v6}<prefixListIds/></item>`,
      );
    }
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<RevokeSecurityGroupIngressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${randomUUID()}</requestId><return>true</return><unknownIpPermissionSet>${items.join('')}</unknownIpPermissionSet></RevokeSecurityGroupIngressResponse>`;
    return { status: 200, headers: { 'content-type': 'text/xml;charset=UTF-8' }, body: Buffer.from(xml, 'utf8') };
  }

  /**
   * IAM, before anything else: each authorization the request needs must be allowed by the
   * policies. EC2 answers UnauthorizedOperation (also to a DryRun), SSM and SQS
   * AccessDeniedException; a first Spot launch that may not make the service-linked role gets
   * AuthFailure.ServiceLinkedRoleCreationNotPermitted.
   */
  private async authorize(
    req: IncomingMessage,
    request: ProxyRequest,
  ): Promise<{ code: string; status: number; message: string } | undefined> {
    const asks = await authorizations(request, {
      accountId: this.accountId,
      spotRoleExists: this.spotRole,
      tagsOf: async (id) => {
        const xml = (
          await this.ec2Side(req, { Action: 'DescribeTags', 'Filter.1.Name': 'resource-id', 'Filter.1.Value.1': id })
        ).body.toString('utf8');
        const items = [...xml.matchAll(/<item>([\s\S]*?)<\/item>/g)].map((m) => m[1]);
        return Object.fromEntries(
          items.map((item) => [
            unescapeXml(/<key>([^<]*)<\/key>/.exec(item)?.[1] ?? ''),
            unescapeXml(/<value>([^<]*)<\/value>/.exec(item)?.[1] ?? ''),
          ]),
        );
      },
    });
    const denied = firstDenied(this.currentPolicies(), asks);
    if (!denied) return undefined;
    if (denied.action === 'iam:CreateServiceLinkedRole') {
      return {
        code: 'AuthFailure.ServiceLinkedRoleCreationNotPermitted',
        status: 403,
        message:
          'The provided credentials do not have permission to create the service-linked role for EC2 Spot Instances.',
      };
    }
    const message = notAuthorized(this.accountId, denied);
    if (request.service === 'ec2')
      return {
        code: 'UnauthorizedOperation',
        status: 403,
        message: `You are not authorized to perform this operation. ${message}`,
      };
    return { code: 'AccessDeniedException', status: 400, message };
  }

  /** GetSpotPlacementScores (moto has none): the region's zones, scored as `setPlacementScore` says. */
  private async spotPlacementScores(req: IncomingMessage, request: ProxyRequest): Promise<Reply> {
    const xml = (await this.ec2Side(req, { Action: 'DescribeAvailabilityZones' })).body.toString('utf8');
    const zones = [...xml.matchAll(/<item>([\s\S]*?)<\/item>/g)].flatMap((m) => {
      const zoneName = /<zoneName>([^<]+)</.exec(m[1])?.[1];
      const zoneId = /<zoneId>([^<]+)</.exec(m[1])?.[1];
      return zoneName && zoneId ? [{ zoneName, zoneId, score: this.placementScoreByZone.get(zoneName) }] : [];
    });
    const answer = placementScores(request.params, request.region ?? 'us-east-1', zones);
    if (!answer.ok) return errorReply(request, { code: answer.code, status: 400, message: answer.message });
    return { status: 200, headers: { 'content-type': 'text/xml;charset=UTF-8' }, body: Buffer.from(answer.xml) };
  }

  /** Service Quotas' GetServiceQuota for EC2's quotas (every other call of the service: UnknownOperationException). */
  private serviceQuota(request: ProxyRequest): Reply {
    const { ServiceCode, QuotaCode } = request.params as { ServiceCode?: string; QuotaCode?: string };
    if (request.action !== 'GetServiceQuota')
      return errorReply(request, {
        code: 'UnknownOperationException',
        status: 400,
        message: `the test world does not serve servicequotas:${request.action}`,
      });
    const name = EC2_QUOTA_NAMES.get(QuotaCode ?? '');
    if (ServiceCode !== 'ec2' || !name) {
      return errorReply(request, {
        code: 'NoSuchResourceException',
        status: 400,
        message: `The request failed because the specified service quota ${ServiceCode}/${QuotaCode} does not exist.`,
      });
    }
    const quota = {
      ServiceCode: 'ec2',
      ServiceName: 'Amazon Elastic Compute Cloud (Amazon EC2)',
      QuotaArn: `arn:aws:servicequotas:${request.region ?? 'us-east-1'}:${this.accountId}:ec2/${QuotaCode}`,
      QuotaCode,
      QuotaName: name,
      Value: this.quotas.get(QuotaCode ?? '') ?? DEFAULT_EC2_QUOTA,
      Unit: 'None',
      Adjustable: true,
      GlobalQuota: false,
    };
    return {
      status: 200,
      headers: { 'content-type': jsonContentType(request), 'x-amzn-requestid': randomUUID() },
      body: Buffer.from(JSON.stringify({ Quota: quota })),
    };
  }

  /** Instances launched less than `ms` ago. */
  private youngInstances(ms: number): string[] {
    const now = Date.now();
    return [...this.launchedAt].filter(([, at]) => now - at < ms).map(([id]) => id);
  }

  /** The answers AWS gives about an instance it has only just launched. */
  private notThereYet(request: ProxyRequest): { code: string; status: number; message: string } | undefined {
    const { params } = request;
    const listed = (prefix: string) =>
      Object.entries(params)
        .filter(([k]) => k.startsWith(prefix))
        .map(([, v]) => String(v));
    if (request.service === 'ec2') {
      const young = new Set(this.youngInstances(this.timing.consistencyLagMs));
      if (young.size === 0) return undefined;
      const ids =
        request.action === 'DescribeInstances' || request.action === 'DescribeInstanceStatus'
          ? listed('InstanceId.')
          : request.action === 'CreateTags'
            ? listed('ResourceId.')
            : request.action === 'AssociateAddress'
              ? [String(params.InstanceId ?? '')]
              : [];
      const hit = ids.find((id) => young.has(id));
      return hit
        ? { code: 'InvalidInstanceID.NotFound', status: 400, message: `The instance ID '${hit}' does not exist` }
        : undefined;
    }
    if (request.service === 'ssm' && request.action === 'SendCommand') {
      const unregistered = new Set(this.youngInstances(this.timing.agentRegistrationMs));
      const hit = stringArray(params.InstanceIds).find((id) => unregistered.has(id));
      return hit
        ? {
            code: 'InvalidInstanceId',
            status: 400,
            message: `Instances [[${hit}]] not in a valid state for account ${this.accountId}`,
          }
        : undefined;
    }
    return undefined;
  }

  /**
   * DescribeInstanceInformation (moto lacks it): the running instances whose agent has
   * registered, Online. Filters by `InstanceIds` and `PingStatus` (Filters or InstanceInformationFilterList).
   */
  private async describeInstanceInformation(req: IncomingMessage, request: ProxyRequest): Promise<Reply> {
    const { params } = request;
    const wanted = new Map<string, string[]>();
    for (const f of [
      ...(Array.isArray(params.Filters) ? params.Filters : []),
      ...(Array.isArray(params.InstanceInformationFilterList) ? params.InstanceInformationFilterList : []),
    ]) {
      if (!isRecord(f)) continue;
      const key = String(f.Key ?? f.key ?? '');
      wanted.set(key, stringArray(f.Values ?? f.valueSet));
    }
    const xml = (
      await this.ec2Side(req, {
        Action: 'DescribeInstances',
        'Filter.1.Name': 'instance-state-name',
        'Filter.1.Value.1': 'running',
      })
    ).body.toString('utf8');
    const unregistered = new Set(this.youngInstances(this.timing.agentRegistrationMs));
    const list: Record<string, unknown>[] = [];
    for (const m of xml.matchAll(/<instanceId>(i-[0-9a-f]+)<\/instanceId>/g)) {
      const id = m[1];
      if (unregistered.has(id)) continue;
      if (wanted.has('InstanceIds') && !wanted.get('InstanceIds')?.includes(id)) continue;
      if (wanted.has('PingStatus') && !wanted.get('PingStatus')?.includes('Online')) continue;
      list.push({
        InstanceId: id,
        PingStatus: 'Online',
        LastPingDateTime: Date.now() / 1000,
        AgentVersion: '3.3.1142.0',
        IsLatestVersion: true,
        PlatformType: 'Linux',
        PlatformName: 'Amazon Linux',
        PlatformVersion: '2023',
        ResourceType: 'EC2Instance',
      });
    }
    return {
      status: 200,
      headers: { 'content-type': jsonContentType(request), 'x-amzn-requestid': randomUUID() },
      body: Buffer.from(JSON.stringify({ InstanceInformationList: list }), 'utf8'),
    };
  }

  private matchDeath(request: ProxyRequest): LaunchDeath | undefined {
    for (const rule of this.launchDeaths) {
      if (rule.remaining !== undefined && rule.remaining <= 0) continue;
      if (rule.spec.when && !rule.spec.when(request.params, request)) continue;
      if (rule.remaining !== undefined) rule.remaining--;
      rule.fired++;
      return rule.spec;
    }
    return undefined;
  }

  /** Unsupported (type not offered in the subnet's AZ) and InvalidBlockDeviceMapping (root smaller than the snapshot). */
  private async refuseLaunch(
    req: IncomingMessage,
    request: ProxyRequest,
  ): Promise<{ code: string; status: number; message: string } | undefined> {
    const { params } = request;
    const type = String(params.InstanceType ?? 'm1.small');
    const subnetId = String(params.SubnetId ?? params['NetworkInterface.1.SubnetId'] ?? '');
    if (subnetId) {
      const { offered, azOfSubnet } = await this.placementFacts(req, subnetId);
      const az = azOfSubnet.get(subnetId);
      if (az && !offered.has(`${type}@${az}`)) {
        return {
          code: 'Unsupported',
          status: 400,
          message: `Your requested instance type (${type}) is not supported in your requested Availability Zone (${az}). Please retry your request by not specifying an Availability Zone or choosing ${[
            ...offered,
          ]
            .filter((o) => o.startsWith(`${type}@`))
            .map((o) => o.split('@')[1])
            .join(', ')}.`,
        };
      }
    }
    const imageId = String(params.ImageId ?? '');
    const snapshotGiB = this.imageRootGiB.get(imageId);
    if (snapshotGiB !== undefined) {
      for (let i = 1; params[`BlockDeviceMapping.${i}.DeviceName`] !== undefined; i++) {
        const size = Number(params[`BlockDeviceMapping.${i}.Ebs.VolumeSize`]);
        if (Number.isFinite(size) && size < snapshotGiB) {
          return {
            code: 'InvalidBlockDeviceMapping',
            status: 400,
            message: `Volume of size ${size}GB is smaller than snapshot of image ${imageId}, expect size >= ${snapshotGiB}GB`,
          };
        }
      }
    }
    return undefined;
  }

  /** moto's instance type offerings per AZ (read once) and the AZ of `subnetId` (read again for a subnet not seen yet). */
  private async placementFacts(
    req: IncomingMessage,
    subnetId: string,
  ): Promise<{ offered: Set<string>; azOfSubnet: Map<string, string> }> {
    this.placement ??= (async () => {
      const offered = new Set<string>();
      let next: string | undefined;
      do {
        const page = (
          await this.ec2Side(req, {
            Action: 'DescribeInstanceTypeOfferings',
            LocationType: 'availability-zone',
            ...(next ? { NextToken: next } : {}),
          })
        ).body.toString('utf8');
        for (const item of page.split('<item>').slice(1)) {
          const type = /<instanceType>([^<]+)<\/instanceType>/.exec(item)?.[1];
          const location = /<location>([^<]+)<\/location>/.exec(item)?.[1];
          if (type && location) offered.add(`${type}@${location}`);
        }
        next = /<nextToken>([^<]+)<\/nextToken>/.exec(page)?.[1];
      } while (next);
      return { offered, azOfSubnet: new Map<string, string>() };
    })();
    const facts = await this.placement;
    if (!facts.azOfSubnet.has(subnetId)) {
      const xml = (await this.ec2Side(req, { Action: 'DescribeSubnets' })).body.toString('utf8');
      for (const item of xml.split('<item>').slice(1)) {
        const id = /<subnetId>([^<]+)<\/subnetId>/.exec(item)?.[1];
        const az = /<availabilityZone>([^<]+)<\/availabilityZone>/.exec(item)?.[1];
        if (id && az) facts.azOfSubnet.set(id, az);
      }
    }
    return facts;
  }

  /** An EC2 call of this account straight to moto (not logged, no faults). */
  private ec2Side(req: Pick<IncomingMessage, 'headers'>, form: Record<string, string>): Promise<Reply> {
    // moto routes by the signature's service: an EC2 call made on behalf of an SSM request is signed for ec2.
    const { 'x-amz-target': _target, ...headers } = req.headers;
    void _target;
    const authorization = String(headers.authorization ?? '').replace(
      /(Credential=[^/,]+\/\d{8}\/[^/]+\/)[^/]+(\/aws4_request)/,
      '$1ec2$2',
    );
    return this.send(
      {
        method: 'POST',
        url: '/',
        headers: { ...headers, authorization, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      },
      Buffer.from(new URLSearchParams({ Version: '2016-11-15', ...form }).toString(), 'utf8'),
    );
  }

  /**
   * moto's AssociateAddress with AllowReassociation moves an Elastic IP but leaves it on the
   * previous instance's network interface too, so DescribeInstances shows both instances with
   * that address. AWS first disassociates it (the previous instance gets a new address of its
   * own, or none). Do that here, before moto sees the request.
   */
  /**
   * SSM refuses a command to an instance that is shutting down or terminated (valid states are
   * pending, running, stopping and stopped); moto takes it. The first such target, if any.
   */
  private async goneTarget(req: IncomingMessage, instanceIds: string[]): Promise<string | undefined> {
    if (instanceIds.length === 0) return undefined;
    const described = await this.ec2Side(req, {
      Action: 'DescribeInstances',
      ...Object.fromEntries(instanceIds.map((id, i) => [`InstanceId.${i + 1}`, id])),
    });
    if (described.status !== 200) return undefined;
    const xml = described.body.toString('utf8');
    return instanceIds.find((id) => ['shutting-down', 'terminated'].includes(instanceStateOf(xml, id) ?? ''));
  }

  /**
   * A terminated instance loses its Elastic IP on AWS (the address stays allocated, free for
   * another instance); moto keeps the association. Runs after a TerminateInstances through either
   * door.
   */
  private async releaseAddressesOf(req: IncomingMessage, request: ProxyRequest): Promise<void> {
    if (String(request.params.DryRun) === 'true') return;
    const ids = instanceIdsOf(request.params);
    if (ids.length === 0) return;
    const described = await this.ec2Side(req, {
      Action: 'DescribeAddresses',
      'Filter.1.Name': 'instance-id',
      ...Object.fromEntries(ids.map((id, i) => [`Filter.1.Value.${i + 1}`, id])),
    });
    if (described.status !== 200) return;
    for (const m of described.body.toString('utf8').matchAll(/<associationId>([^<]+)<\/associationId>/g))
      await this.ec2Side(req, { Action: 'DisassociateAddress', AssociationId: m[1] });
  }

  private async releaseForReassociation(req: IncomingMessage, request: ProxyRequest): Promise<void> {
    const { params } = request;
    if (String(params.AllowReassociation) !== 'true' || String(params.DryRun) === 'true') return;
    const allocationId = typeof params.AllocationId === 'string' ? params.AllocationId : undefined;
    const publicIp = typeof params.PublicIp === 'string' ? params.PublicIp : undefined;
    if (!allocationId && !publicIp) return;
    const ec2Call = (form: Record<string, string>) =>
      this.send(
        {
          method: 'POST',
          url: '/',
          headers: { ...req.headers, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        },
        Buffer.from(
          new URLSearchParams({ ...form, Version: String(params.Version ?? '2016-11-15') }).toString(),
          'utf8',
        ),
      );
    const described = await ec2Call(
      allocationId
        ? { Action: 'DescribeAddresses', 'AllocationId.1': allocationId }
        : { Action: 'DescribeAddresses', 'PublicIp.1': publicIp ?? '' },
    );
    if (described.status !== 200) return;
    const xml = described.body.toString('utf8');
    const associationId = /<associationId>([^<]+)<\/associationId>/.exec(xml)?.[1];
    const current = {
      instanceId: /<instanceId>([^<]+)<\/instanceId>/.exec(xml)?.[1],
      eni: /<networkInterfaceId>([^<]+)<\/networkInterfaceId>/.exec(xml)?.[1],
    };
    if (!associationId) return;
    const same =
      params.InstanceId !== undefined
        ? current.instanceId === params.InstanceId
        : current.eni === params.NetworkInterfaceId;
    if (same) return;
    await ec2Call({ Action: 'DisassociateAddress', AssociationId: associationId });
  }

  private async scriptCommand(request: ProxyRequest, reply: Reply): Promise<void> {
    const parsed = parseJson(reply.body.toString('utf8'));
    const command = isRecord(parsed) && isRecord(parsed.Command) ? parsed.Command : undefined;
    const commandId = command && typeof command.CommandId === 'string' ? command.CommandId : undefined;
    if (!commandId || !command) return;
    const requested = stringArray(request.params.InstanceIds);
    const instanceIds = requested.length > 0 ? requested : stringArray(command.InstanceIds);
    const parameters = isRecord(request.params.Parameters) ? request.params.Parameters : {};
    const commands = stringArray(parameters.commands);
    const documentName = typeof request.params.DocumentName === 'string' ? request.params.DocumentName : undefined;
    const sent: SentCommand = {
      commandId,
      instanceIds,
      commands,
      documentName,
      at: new Date(),
      results: new Map(),
      reads: new Map(),
    };
    this.sent.set(commandId, sent);
    for (const instanceId of instanceIds) {
      for (const handler of [...this.commandHandlers]) {
        const result = await handler({ commandId, instanceId, commands, documentName, region: request.region });
        if (result !== undefined) {
          sent.results.set(instanceId, result);
          break;
        }
      }
    }
  }

  private answerInvocation(request: ProxyRequest): Reply | undefined {
    const commandId = typeof request.params.CommandId === 'string' ? request.params.CommandId : '';
    const instanceId = typeof request.params.InstanceId === 'string' ? request.params.InstanceId : '';
    const sent = this.sent.get(commandId);
    if (!sent) return undefined;
    if (!sent.instanceIds.includes(instanceId)) {
      // moto also lists every other instance of the region as a target; SSM does not.
      return errorReply(request, {
        code: 'InvocationDoesNotExist',
        status: 400,
        message: 'An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation',
      });
    }
    const result = sent.results.get(instanceId);
    if (!result) return undefined;
    const reads = (sent.reads.get(instanceId) ?? 0) + 1;
    sent.reads.set(instanceId, reads);
    // Before the result: the invocation does not exist yet, then Pending, then InProgress (each
    // for a while after SendCommand, and at least for the first read).
    const elapsed = Date.now() - sent.at.getTime();
    const [visible, picked, ran] = this.timing.commandPreludeMs;
    const early =
      reads === 1 || elapsed < visible
        ? 'InvocationDoesNotExist'
        : elapsed < picked
          ? 'Pending'
          : elapsed < ran
            ? 'InProgress'
            : undefined;
    const final: CommandStatus = result.status ?? (result.exitCode && result.exitCode !== 0 ? 'Failed' : 'Success');
    // A command never delivered (its instance stopped running) stays Pending after the first read.
    const prelude = final === 'Pending' && reads > 1 ? undefined : early;
    if (prelude === 'InvocationDoesNotExist') {
      return errorReply(request, {
        code: 'InvocationDoesNotExist',
        status: 400,
        message: 'An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation',
      });
    }
    const status: string = prelude ?? final;
    const done = status !== 'InProgress' && status !== 'Pending';
    const exitCode = result.exitCode ?? (final === 'Success' ? 0 : final === 'Failed' ? 1 : -1);
    const start = sent.at;
    const elapsedMs = result.durationMs ?? 1000;
    const end = new Date(start.getTime() + elapsedMs);
    const document = {
      CommandId: commandId,
      InstanceId: instanceId,
      Comment: '',
      DocumentName: sent.documentName ?? 'AWS-RunShellScript',
      DocumentVersion: '$DEFAULT',
      PluginName: 'aws:runShellScript',
      ResponseCode: done ? exitCode : -1,
      ExecutionStartDateTime: start.toISOString(),
      ExecutionElapsedTime: done ? isoDuration(elapsedMs) : '',
      ExecutionEndDateTime: done ? end.toISOString() : '',
      Status: status,
      StatusDetails: status === 'TimedOut' ? 'ExecutionTimedOut' : status,
      StandardOutputContent: done ? (result.stdout ?? '').slice(0, SSM_STDOUT_LIMIT) : '',
      StandardOutputUrl: '',
      StandardErrorContent: done ? (result.stderr ?? '').slice(0, SSM_STDERR_LIMIT) : '',
      StandardErrorUrl: '',
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    };
    return {
      status: 200,
      headers: { 'content-type': jsonContentType(request), 'x-amzn-requestid': randomUUID() },
      body: Buffer.from(JSON.stringify(document), 'utf8'),
    };
  }
}

// --- helpers --------------------------------------------------------------------------------

/** The handle of a rule in force: how often it fired, and how to take it away. */
function ruleHandle(rule: { readonly fired: number }, remove: () => void): RuleHandle {
  return {
    get fired() {
      return rule.fired;
    },
    remove,
  };
}

/** StateReason messages EC2 gives for an instance that terminated during launch (API_StateReason). */
const STATE_REASON_MESSAGES: Record<string, string> = {
  'Server.InsufficientInstanceCapacity': 'Insufficient capacity to satisfy the launch request',
  'Server.InternalError': 'An internal error caused the instance to terminate during launch',
  'Client.InternalError': 'Client error on launch',
  'Client.VolumeLimitExceeded': 'The limit on the number of EBS volumes or total storage was exceeded',
  'Client.InvalidSnapshot.NotFound': 'The specified snapshot was not found',
};

/** DescribeInstances with the StateReason of instances that died in `pending`. */
export function withStateReasons(xml: string, reasons: ReadonlyMap<string, { code: string; message: string }>): string {
  let out = xml;
  for (const [id, reason] of reasons) {
    const at = out.indexOf(`<instanceId>${id}</instanceId>`);
    if (at < 0) continue;
    const start = out.lastIndexOf('<stateReason>', at);
    const end = out.indexOf('</stateReason>', start);
    if (start < 0 || end < 0 || end > at) continue;
    out = `${out.slice(0, start)}<stateReason><code>${escapeXml(reason.code)}</code><message>${escapeXml(reason.message)}</message>${out.slice(end)}`;
  }
  return out;
}

/** The instance ids of an EC2 query request (`InstanceId.1`, `InstanceId.2`, …). */
function instanceIdsOf(params: Record<string, unknown>): string[] {
  return Object.entries(params)
    .filter(([k]) => /^InstanceId\.\d+$/.test(k))
    .map(([, v]) => String(v));
}

/** The state name of one instance in a DescribeInstances answer, if it is there. */
export function instanceStateOf(xml: string, instanceId: string): string | undefined {
  const at = xml.indexOf(`<instanceId>${instanceId}</instanceId>`);
  if (at < 0) return undefined;
  const next = xml.indexOf('<instanceId>', at + 1);
  const state = /<instanceState>\s*<code>\d+<\/code>\s*<name>([^<]+)<\/name>/.exec(
    xml.slice(at, next < 0 ? undefined : next),
  );
  return state?.[1];
}

/** DescribeInstances without one instance: its reservation goes when it holds only that one. */
export function withoutInstance(xml: string, instanceId: string, options: { sharedOk?: boolean } = {}): string {
  const at = xml.indexOf(`<instanceId>${instanceId}</instanceId>`);
  if (at < 0) return xml;
  const start = xml.lastIndexOf('<item><reservationId>', at);
  const nextReservation = xml.indexOf('<item><reservationId>', at);
  const end = nextReservation >= 0 ? nextReservation : xml.indexOf('</reservationSet>', at);
  if (start < 0 || end < 0) return xml;
  const reservation = xml.slice(start, end);
  if ((reservation.match(/<instanceId>/g) ?? []).length !== 1) {
    if (options.sharedOk) return xml;
    throw new Error(`omitFromListings: ${instanceId} shares its reservation with other instances`);
  }
  return xml.slice(0, start) + xml.slice(end);
}

/** DescribeImages with the root snapshot sizes set by setImageRootSize (the image's block device mapping comes before or after its id). */
export function withRootSizes(xml: string, sizes: ReadonlyMap<string, number>): string {
  let out = xml;
  for (const [imageId, size] of sizes) {
    const at = out.indexOf(`<imageId>${imageId}</imageId>`);
    if (at < 0) continue;
    const before = out.lastIndexOf('<blockDeviceMapping>', at);
    const previousImage = out.lastIndexOf('<imageId>', at - 1);
    const nextImage = out.indexOf('<imageId>', at + 1);
    const after = out.indexOf('<blockDeviceMapping>', at);
    const mapping =
      before >= 0 && before > previousImage ? before : after >= 0 && (nextImage < 0 || after < nextImage) ? after : -1;
    if (mapping < 0) continue;
    const volume = out.indexOf('<volumeSize>', mapping);
    const end = out.indexOf('</volumeSize>', volume);
    if (volume < 0 || end > out.indexOf('</blockDeviceMapping>', mapping)) continue;
    out = `${out.slice(0, volume)}<volumeSize>${size}${out.slice(end)}`;
  }
  return out;
}

/** What SSM refuses in a SendCommand of AWS-RunShellScript, as its document's parameters define them. */
function notAuthorized(accountId: string, denied: Authorization): string {
  return `User: arn:aws:sts::${accountId}:assumed-role/ec2-gpu-migration-worker/worker is not authorized to perform: ${denied.action} on resource: ${denied.resource} because no identity-based policy allows the ${denied.action} action`;
}

function invalidParameters(request: ProxyRequest): string | undefined {
  if (
    request.service !== 'ssm' ||
    request.action !== 'SendCommand' ||
    request.params.DocumentName !== 'AWS-RunShellScript'
  )
    return undefined;
  const parameters = isRecord(request.params.Parameters) ? request.params.Parameters : {};
  for (const value of stringArray(parameters.executionTimeout)) {
    if (!EXECUTION_TIMEOUT.test(value))
      return `Parameter "executionTimeout" "${value}" failed to satisfy constraint: it must be an integer from 1 to 172800.`;
  }
  if (stringArray(parameters.commands).length === 0) return 'Parameter "commands" is required.';
  return undefined;
}

const HOP_HEADERS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'accept-encoding',
  'te',
  'trailer',
  'x-moto-account-id',
]);

function randomAccountId(): string {
  return String(randomInt(100_000_000_000, 1_000_000_000_000));
}

function readBody(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

/** Service, region and action of a request, and its parameters. */
export function identify(req: Pick<IncomingMessage, 'headers' | 'url'>, body: Buffer): ProxyRequest {
  const headers = req.headers;
  const scope = /Credential=[^/,]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(String(headers.authorization ?? ''));
  const target = String(headers['x-amz-target'] ?? '');
  const text = body.toString('utf8');
  if (target) {
    const dot = target.lastIndexOf('.');
    const prefix = target.slice(0, dot);
    const parsed = parseJson(text);
    return {
      service: scope?.[2] ?? serviceOfTargetPrefix(prefix),
      action: target.slice(dot + 1),
      region: scope?.[1],
      protocol: 'json',
      params: isRecord(parsed) ? parsed : {},
      headers,
    };
  }
  const params: Record<string, unknown> = {};
  const query = new URL(req.url ?? '/', 'http://proxy').searchParams;
  for (const [k, v] of query) params[k] = v;
  if (String(headers['content-type'] ?? '').includes('x-www-form-urlencoded')) {
    for (const [k, v] of new URLSearchParams(text)) params[k] = v;
  }
  return {
    service: scope?.[2] ?? 'unknown',
    action: typeof params.Action === 'string' ? params.Action : '(unknown)',
    region: scope?.[1],
    protocol: 'query',
    params,
    headers,
  };
}

function serviceOfTargetPrefix(prefix: string): string {
  if (prefix.startsWith('AmazonSSM')) return 'ssm';
  if (prefix.startsWith('AmazonSQS')) return 'sqs';
  return prefix.toLowerCase() || 'unknown';
}

function actionMatches(pattern: string | readonly string[], action: string): boolean {
  if (typeof pattern === 'string') return pattern === '*' || pattern === action;
  return pattern.includes('*') || pattern.includes(action);
}

function matchesFilter(call: CallRecord, filter: CallFilter): boolean {
  if (filter.service !== undefined && call.service !== filter.service) return false;
  if (filter.action !== undefined && call.action !== filter.action) return false;
  if (filter.injected !== undefined && (call.injected !== undefined) !== filter.injected) return false;
  return true;
}

function defaultMessage(code: string, req: ProxyRequest): string {
  if (code === 'InsufficientInstanceCapacity') {
    const type = typeof req.params.InstanceType === 'string' ? req.params.InstanceType : 'instance';
    return `We currently do not have sufficient ${type} capacity in the Availability Zone you requested. Our system will be working on provisioning additional capacity.`;
  }
  return `${code} (injected by the test AWS proxy)`;
}

function jsonContentType(req: ProxyRequest): string {
  const sent = String(req.headers['content-type'] ?? '');
  return sent.startsWith('application/x-amz-json') ? sent : 'application/x-amz-json-1.1';
}

/** An AWS error in the wire format of the request's protocol. */
export function errorReply(req: ProxyRequest, error: { code: string; status: number; message: string }): Reply {
  const requestId = randomUUID();
  if (req.protocol === 'json') {
    const headers: Record<string, string> = { 'content-type': jsonContentType(req), 'x-amzn-requestid': requestId };
    if (req.headers['x-amzn-query-mode'] === 'true') {
      headers['x-amzn-query-error'] = `${error.code};${error.status >= 500 ? 'Receiver' : 'Sender'}`;
    }
    return {
      status: error.status,
      headers,
      body: Buffer.from(JSON.stringify({ __type: error.code, message: error.message })),
      injected: error.code,
    };
  }
  const code = escapeXml(error.code);
  const message = escapeXml(error.message);
  const xml =
    req.service === 'ec2'
      ? `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`
      : `<?xml version="1.0"?><ErrorResponse><Error><Type>${error.status >= 500 ? 'Receiver' : 'Sender'}</Type><Code>${code}</Code><Message>${message}</Message><Detail/></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
  return {
    status: error.status,
    headers: { 'content-type': 'text/xml;charset=UTF-8' },
    body: Buffer.from(xml, 'utf8'),
    injected: error.code,
  };
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** moto's automatic instance addresses (54.214.x.y) moved onto loopback (127.214.x.y). */
export function toLoopbackAddresses(text: string): string {
  return text
    .replace(/\b54\.214\.(\d{1,3})\.(\d{1,3})\b/g, '127.214.$1.$2')
    .replace(/\bec2-54-214-(\d{1,3})-(\d{1,3})\b/g, 'ec2-127-214-$1-$2');
}

/** In an EC2 `ip-address` filter, adds moto's own form of each loopback-mapped address. */
function mapFilterAddresses(body: Buffer): Buffer {
  const text = body.toString('utf8');
  if (!text.includes('ip-address')) return body;
  const params = new URLSearchParams(text);
  const extra: [string, string][] = [];
  for (const [key, value] of params) {
    const m = /^Filter\.(\d+)\.Name$/.exec(key);
    if (!m || value !== 'ip-address') continue;
    const prefix = `Filter.${m[1]}.Value.`;
    const values = [...params].filter(([k]) => k.startsWith(prefix));
    let next = values.reduce((max, [k]) => Math.max(max, Number(k.slice(prefix.length)) || 0), 0) + 1;
    for (const [, v] of values) {
      const ip = /^127\.214\.(\d{1,3})\.(\d{1,3})$/.exec(v);
      if (ip) extra.push([`${prefix}${next++}`, `54.214.${ip[1]}.${ip[2]}`]);
    }
  }
  if (extra.length === 0) return body;
  for (const [k, v] of extra) params.append(k, v);
  return Buffer.from(params.toString(), 'utf8');
}

function isoDuration(ms: number): string {
  const seconds = Math.max(0, ms) / 1000;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.round((seconds % 60) * 1000) / 1000;
  return `PT${h ? `${h}H` : ''}${m ? `${m}M` : ''}${s || (!h && !m) ? `${s}S` : ''}`;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
