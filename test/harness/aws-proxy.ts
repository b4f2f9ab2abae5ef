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
import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { createAwsClients, type AwsClients } from '../../src/aws/clients';

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

export type CommandStatus = 'Success' | 'Failed' | 'TimedOut' | 'InProgress';

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

export type CommandHandler = (cmd: CommandInvocation) => ScriptedResult | undefined | Promise<ScriptedResult | undefined>;

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
}

export interface ProxyClientOptions {
  /** SDK attempts per call; default 1, so a test sees every injected error. */
  maxAttempts?: number;
  /** Use the side door: not logged, no faults, no latency, no hooks (for test setup and checks). */
  bypass?: boolean;
}

/** Maximum SSM keeps of a command's output in GetCommandInvocation. */
const SSM_OUTPUT_LIMIT = 24_000;
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
  private latencies: ActiveLatency[] = [];
  private unregistered: NotRegisteredRule[] = [];
  private readonly commandHandlers: CommandHandler[] = [];
  private readonly afterHooks: { action: string; hook: AfterHook }[] = [];
  private readonly ec2ChangeListeners = new Set<(action: string) => void>();
  private readonly sent = new Map<string, SentCommand>();

  private constructor(
    private readonly servers: Server[],
    options: AwsProxyOptions,
    accountId: string,
  ) {
    this.accountId = accountId;
    this.target = new URL(options.target);
    this.rewriteIps = options.publicIpsOnLoopback ?? true;
    this.fixReassociation = options.fixReassociation ?? true;
    const [main, side] = servers.map((s) => (s.address() as AddressInfo).port);
    this.endpoint = `http://127.0.0.1:${main}`;
    this.bypassEndpoint = `http://127.0.0.1:${side}`;
  }

  static async start(options: AwsProxyOptions): Promise<AwsProxy> {
    const accountId = options.accountId ?? randomAccountId();
    if (!/^\d{12}$/.test(accountId)) throw new Error(`accountId must be 12 digits, got '${accountId}'`);
    const servers = [createServer(), createServer()];
    await Promise.all(servers.map((s) => new Promise<void>((ok, fail) => s.once('error', fail).listen(0, '127.0.0.1', () => ok()))));
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
      if (status === 503) return { code: req.service === 'ec2' ? 'Unavailable' : 'ServiceUnavailable', status, message: 'The server is overloaded and can not handle the request.' };
      return { code: req.service === 'ssm' ? 'InternalServerError' : 'InternalError', status, message: 'An internal error has occurred.' };
    });
  }

  /** Delay matching calls before they are forwarded (or answered with an injected error). */
  latency(rule: LatencyRule): RuleHandle {
    const active: ActiveLatency = { spec: rule, remaining: rule.times, fired: 0 };
    this.latencies.push(active);
    return {
      get fired() {
        return active.fired;
      },
      remove: () => {
        this.latencies = this.latencies.filter((l) => l !== active);
      },
    };
  }

  /**
   * SendCommand to `instanceId` (or any instance with '*') answers `InvalidInstanceId` (400)
   * `times` times, as SSM does while the instance's agent has not registered yet.
   */
  notRegistered(instanceId: string, times = 1): RuleHandle {
    const rule: NotRegisteredRule = { instanceId, remaining: times, fired: 0 };
    this.unregistered.push(rule);
    return {
      get fired() {
        return rule.fired;
      },
      remove: () => {
        this.unregistered = this.unregistered.filter((r) => r !== rule);
      },
    };
  }

  /** Removes every fault, latency and not-registered rule. Handlers and hooks stay. */
  reset(): void {
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
    return [...this.sent.values()].map(({ commandId, instanceIds, commands, at }) => ({ commandId, instanceIds, commands, at }));
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
    if (spec.rate !== undefined && !(spec.rate >= 0 && spec.rate <= 1)) throw new Error(`rate must be within 0..1, got ${spec.rate}`);
    const active: ActiveFault = {
      spec,
      remaining: spec.times,
      random: spec.rate !== undefined ? mulberry32(spec.seed ?? 1) : undefined,
      fired: 0,
      error,
    };
    this.faults.push(active);
    return {
      get fired() {
        return active.fired;
      },
      remove: () => {
        this.faults = this.faults.filter((f) => f !== active);
      },
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse, bypass: boolean): Promise<void> {
    const started = Date.now();
    let request: ProxyRequest | undefined;
    let reply: Reply;
    try {
      const body = await readBody(req);
      request = identify(req, body);
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
      reply = { status: 502, headers: { 'content-type': 'text/plain' }, body: Buffer.from(`aws proxy: ${String(err)}`) };
    }

    if (request?.service === 'ec2' && reply.status === 200 && !reply.injected && !/^(Describe|Get|List)/.test(request.action)) {
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
          reply = { status: 500, headers: { 'content-type': 'text/plain' }, body: Buffer.from(`aws proxy: onAfter(${action}) hook failed: ${String(err)}`) };
          call.status = 500;
        }
      }
    }
    if (res.destroyed) return;
    res.writeHead(reply.status, { ...reply.headers, 'content-length': String(reply.body.length) });
    res.end(reply.body);
  }

  private async process(req: IncomingMessage, body: Buffer, request: ProxyRequest): Promise<Reply> {
    const waitMs = this.matchLatency(request);
    if (waitMs > 0) await delay(waitMs, undefined, { signal: this.closing.signal });

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

    if (request.service === 'ssm' && request.action === 'GetCommandInvocation') {
      const answered = this.answerInvocation(request);
      if (answered) return answered;
    }
    const reply = await this.forward(req, body, request);
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
   * moto's AssociateAddress with AllowReassociation moves an Elastic IP but leaves it on the
   * previous instance's network interface too, so DescribeInstances shows both instances with
   * that address. AWS first disassociates it (the previous instance gets a new address of its
   * own, or none). Do that here, before moto sees the request.
   */
  private async releaseForReassociation(req: IncomingMessage, request: ProxyRequest): Promise<void> {
    const { params } = request;
    if (String(params.AllowReassociation) !== 'true' || String(params.DryRun) === 'true') return;
    const allocationId = typeof params.AllocationId === 'string' ? params.AllocationId : undefined;
    const publicIp = typeof params.PublicIp === 'string' ? params.PublicIp : undefined;
    if (!allocationId && !publicIp) return;
    const ec2Call = (form: Record<string, string>) =>
      this.send(
        { method: 'POST', url: '/', headers: { ...req.headers, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' } },
        Buffer.from(new URLSearchParams({ ...form, Version: String(params.Version ?? '2016-11-15') }).toString(), 'utf8'),
      );
    const described = await ec2Call(
      allocationId ? { Action: 'DescribeAddresses', 'AllocationId.1': allocationId } : { Action: 'DescribeAddresses', 'PublicIp.1': publicIp ?? '' },
    );
    if (described.status !== 200) return;
    const xml = described.body.toString('utf8');
    const associationId = /<associationId>([^<]+)<\/associationId>/.exec(xml)?.[1];
    const current = {
      instanceId: /<instanceId>([^<]+)<\/instanceId>/.exec(xml)?.[1],
      eni: /<networkInterfaceId>([^<]+)<\/networkInterfaceId>/.exec(xml)?.[1],
    };
    if (!associationId) return;
    const same = params.InstanceId !== undefined ? current.instanceId === params.InstanceId : current.eni === params.NetworkInterfaceId;
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
    const sent: SentCommand = { commandId, instanceIds, commands, documentName, at: new Date(), results: new Map() };
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
    const status = result.status ?? (result.exitCode && result.exitCode !== 0 ? 'Failed' : 'Success');
    const done = status !== 'InProgress';
    const exitCode = result.exitCode ?? (status === 'Success' ? 0 : status === 'Failed' ? 1 : -1);
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
      ResponseCode: exitCode,
      ExecutionStartDateTime: start.toISOString(),
      ExecutionElapsedTime: done ? isoDuration(elapsedMs) : '',
      ExecutionEndDateTime: done ? end.toISOString() : '',
      Status: status,
      StatusDetails: status === 'TimedOut' ? 'ExecutionTimedOut' : status,
      StandardOutputContent: (result.stdout ?? '').slice(0, SSM_OUTPUT_LIMIT),
      StandardOutputUrl: '',
      StandardErrorContent: (result.stderr ?? '').slice(0, SSM_OUTPUT_LIMIT),
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

const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'accept-encoding', 'te', 'trailer', 'x-moto-account-id']);

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
    return { status: error.status, headers, body: Buffer.from(JSON.stringify({ __type: error.code, message: error.message })), injected: error.code };
  }
  const code = escapeXml(error.code);
  const message = escapeXml(error.message);
  const xml =
    req.service === 'ec2'
      ? `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`
      : `<?xml version="1.0"?><ErrorResponse><Error><Type>${error.status >= 500 ? 'Receiver' : 'Sender'}</Type><Code>${code}</Code><Message>${message}</Message><Detail/></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
  return { status: error.status, headers: { 'content-type': 'text/xml;charset=UTF-8' }, body: Buffer.from(xml, 'utf8'), injected: error.code };
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** moto's automatic instance addresses (54.214.x.y) moved onto loopback (127.214.x.y). */
export function toLoopbackAddresses(text: string): string {
  return text.replace(/\b54\.214\.(\d{1,3})\.(\d{1,3})\b/g, '127.214.$1.$2').replace(/\bec2-54-214-(\d{1,3})-(\d{1,3})\b/g, 'ec2-127-214-$1-$2');
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

/** A small seeded generator: the same seed gives the same sequence, so "30 %" tests repeat. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
