import { ApplicationFailure } from '@temporalio/activity';
import type { ServiceSpec } from '../plan/schema';
import {
  specOf,
  type ChecksInput,
  type ChecksSpec,
  type GpuFacts,
  type HttpTestInput,
  type LatencyResult,
  type PlanChecksInput,
  type PlanHttpTestInput,
  type ServiceCheck,
  type SynthesisResult,
} from '../shared/checks';
import { ErrorType } from '../shared/errors';
import type { Figure } from '../shared/migration';
import { attempt, percentile, withHeartbeat } from './util';
import type { createRemoteRunner } from './remote';

type Fetch = typeof fetch;
type Remote = ReturnType<typeof createRemoteRunner>;

/** The curl the instance runs to check a private service; prints the HTTP status code. */
export function privateCheckCommand(service: ServiceSpec, timeoutSeconds: number): string {
  return `curl -sS -o /dev/null -m ${Math.ceil(timeoutSeconds)} -w '%{http_code}' http://127.0.0.1:${service.port}${service.healthPath}`;
}

export const GPU_FACTS_COMMAND =
  "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nvidia-smi | grep -o -m1 'CUDA Version: [0-9.]*' || true";

const NOT_REPORTED: Figure = { value: null, source: 'not reported by the instance' };

/** Reads GPU facts from nvidia-smi output; what the output does not hold is "not reported". */
export function parseGpuFacts(stdout: string): GpuFacts {
  const facts: GpuFacts = { name: NOT_REPORTED, memory: NOT_REPORTED, driver: NOT_REPORTED, cuda: NOT_REPORTED };
  for (const line of stdout.split('\n')) {
    const fields = line.split(',').map((f) => f.trim());
    const mem = fields[1] ? /^(\d+)\s*MiB$/.exec(fields[1]) : null;
    if (fields.length >= 3 && fields[0] && mem && facts.name.value === null) {
      facts.name = { value: fields[0], source: 'measured' };
      facts.memory = { value: Number(mem[1]), unit: 'MiB', source: 'measured' };
      if (/^\d+(\.\d+)+$/.test(fields[2])) facts.driver = { value: fields[2], source: 'measured' };
      if (fields[3] && /^\d+\.\d+$/.test(fields[3])) facts.cuda = { value: fields[3], source: 'measured' };
    }
    const cuda = /CUDA Version:\s*(\d+\.\d+)/.exec(line);
    if (cuda) facts.cuda = { value: cuda[1], source: 'measured' };
  }
  return facts;
}

export function createCheckActivities(remote: Remote, http: Fetch) {
  async function timedRequest(
    url: string,
    init: RequestInit,
    timeoutSeconds: number,
  ): Promise<{ status: number; ms: number; bytes: number }> {
    const started = performance.now();
    const res = await http(url, { ...init, signal: AbortSignal.timeout(timeoutSeconds * 1000) });
    const body = await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started, bytes: body.byteLength };
  }

  async function checkPublic(plan: ChecksSpec, host: string, s: ServiceSpec): Promise<ServiceCheck> {
    const base = { service: s.name, port: s.port, public: true, via: 'http' as const };
    try {
      const r = await timedRequest(
        `http://${host}:${s.port}${s.healthPath}`,
        { method: 'GET' },
        plan.checks.requestTimeoutSeconds,
      );
      return { ...base, ok: r.status >= 200 && r.status < 400, status: r.status, ms: r.ms };
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      return { ...base, ok: false, error: cause ?? (err as Error).message };
    }
  }

  async function checkPrivate(plan: ChecksSpec, instanceId: string, s: ServiceSpec): Promise<ServiceCheck> {
    const base = { service: s.name, port: s.port, public: false, via: 'ssm' as const };
    const out = await remote.run({
      region: plan.region,
      instanceId,
      label: `check ${s.name}`,
      commands: [privateCheckCommand(s, plan.checks.requestTimeoutSeconds)],
      timeoutSeconds: Math.ceil(plan.checks.requestTimeoutSeconds) + 30,
      resume: false,
    });
    const status = Number(out.stdoutTail.trim());
    const ok = out.exitCode === 0 && status >= 200 && status < 400;
    return {
      ...base,
      ok,
      status: Number.isFinite(status) && status > 0 ? status : undefined,
      ms: out.durationMs,
      error: ok ? undefined : out.stderrTail || `exit code ${out.exitCode}`,
    };
  }

  /** Phases 5 and 8: every service answers (public ones over HTTP, private ones via SSM). */
  async function checkServices(
    input: ChecksInput | PlanChecksInput,
  ): Promise<{ results: ServiceCheck[]; attempt: number }> {
    const plan = specOf(input);
    const services = plan.services.filter((s) => s.public || input.scope === 'all');
    const results = await Promise.all(
      services.map((s) => (s.public ? checkPublic(plan, input.host, s) : checkPrivate(plan, input.instanceId, s))),
    );
    const failed = results.filter((r) => !r.ok);
    if (failed.length > 0) {
      throw ApplicationFailure.create({
        type: ErrorType.ServiceCheckFailed,
        message: `not healthy at ${input.host}: ${failed.map((f) => `${f.service} (:${f.port}, ${f.via}) ${f.status ?? f.error}`).join('; ')}`,
        details: [results],
      });
    }
    return { results, attempt: attempt() };
  }

  /** Phase 2's facts: GPU name, memory, driver and CUDA version, never failing the phase. */
  async function readGpuFacts(input: { region: string; instanceId: string }): Promise<GpuFacts & { raw: string }> {
    try {
      const out = await remote.run({
        ...input,
        label: 'read GPU facts',
        commands: [GPU_FACTS_COMMAND],
        timeoutSeconds: 60,
        agentWaitSeconds: 60,
      });
      return { ...parseGpuFacts(out.stdoutTail), raw: out.stdoutTail };
    } catch (err) {
      return { ...parseGpuFacts(''), raw: `(could not read: ${(err as Error).message})` };
    }
  }

  /** Phase 6: the configured synthesis request, timed; over its limit fails (retryably). */
  async function voiceCloneTest(input: HttpTestInput | PlanHttpTestInput): Promise<SynthesisResult> {
    const plan = specOf(input);
    const check = plan.checks.voiceClone;
    if (!check) throw notConfigured('checks.voiceClone');
    const port = plan.services.find((s) => s.name === check.service)?.port;
    const init: RequestInit = { method: check.method, headers: { 'content-type': 'application/json' } };
    if (check.method !== 'GET') init.body = JSON.stringify(check.body ?? {});
    let r: { status: number; ms: number; bytes: number };
    try {
      r = await timedRequest(
        `http://${input.host}:${port}${check.path}`,
        init,
        Math.max(check.maxSeconds * 5, plan.checks.requestTimeoutSeconds),
      );
    } catch (err) {
      throw ApplicationFailure.create({
        type: ErrorType.ServiceCheckFailed,
        message: `synthesis request to ${input.host}:${port}${check.path} failed: ${(err as Error).message}`,
      });
    }
    const seconds = r.ms / 1000;
    if (r.status < 200 || r.status >= 300) {
      throw ApplicationFailure.create({
        type: ErrorType.ServiceCheckFailed,
        message: `synthesis answered HTTP ${r.status}`,
        details: [{ seconds, status: r.status }],
      });
    }
    if (seconds > check.maxSeconds) {
      throw ApplicationFailure.create({
        type: ErrorType.LimitExceeded,
        message: `synthesis took ${seconds.toFixed(2)} s, over the limit of ${check.maxSeconds} s`,
        details: [{ seconds, status: r.status }],
      });
    }
    return { seconds, status: r.status, bytes: r.bytes, attempt: attempt() };
  }

  /** Phase 10: latency samples against the plan's limits. */
  async function latencyTest(input: HttpTestInput | PlanHttpTestInput): Promise<LatencyResult> {
    const plan = specOf(input);
    const check = plan.checks.latency;
    if (!check) throw notConfigured('checks.latency');
    const port = plan.services.find((s) => s.name === check.service)?.port;
    const samples: number[] = [];
    for (let i = 0; i < check.samples; i++) {
      let r: { status: number; ms: number };
      try {
        r = await timedRequest(
          `http://${input.host}:${port}${check.path}`,
          { method: 'GET' },
          plan.checks.requestTimeoutSeconds,
        );
      } catch (err) {
        throw ApplicationFailure.create({
          type: ErrorType.ServiceCheckFailed,
          message: `latency sample ${i + 1} to ${input.host}:${port}${check.path} failed: ${(err as Error).message}`,
        });
      }
      if (r.status < 200 || r.status >= 400)
        throw ApplicationFailure.create({
          type: ErrorType.ServiceCheckFailed,
          message: `latency sample ${i + 1} answered HTTP ${r.status}`,
        });
      samples.push(Math.round(r.ms * 100) / 100);
    }
    const sorted = [...samples].sort((a, b) => a - b);
    const round = (n: number) => Math.round(n * 100) / 100;
    const ms = (value: number): Figure => ({ value: round(value), unit: 'ms', source: 'measured' });
    const average = samples.reduce((a, b) => a + b, 0) / samples.length;
    const figures = {
      averageMs: ms(average),
      p50Ms: ms(percentile(sorted, 50)),
      p95Ms: ms(percentile(sorted, 95)),
      maxMs: ms(sorted[sorted.length - 1]),
      minMs: ms(sorted[0]),
    };
    const over: string[] = [];
    if (average > check.maxAverageMs) over.push(`average ${round(average)} ms > ${check.maxAverageMs} ms`);
    if (check.maxP95Ms !== undefined && percentile(sorted, 95) > check.maxP95Ms)
      over.push(`p95 ${round(percentile(sorted, 95))} ms > ${check.maxP95Ms} ms`);
    if (over.length > 0) {
      throw ApplicationFailure.create({
        type: ErrorType.LimitExceeded,
        message: `latency over the plan's limits: ${over.join(', ')}`,
        details: [{ samples, figures }],
      });
    }
    return { samples, figures, attempt: attempt() };
  }

  /** A check heartbeats for as long as it runs: a worker that dies in one is noticed within the checks' heartbeat timeout. */
  const beating =
    <I, R>(check: (input: I) => Promise<R>) =>
    (input: I): Promise<R> =>
      withHeartbeat(() => check(input));
  return {
    checkServices: beating(checkServices),
    readGpuFacts,
    voiceCloneTest: beating(voiceCloneTest),
    latencyTest: beating(latencyTest),
  };
}

/** Asked for a check the plan does not configure: no retry can help. */
function notConfigured(field: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.NotConfigured,
    message: `${field} is not set`,
    nonRetryable: true,
  });
}
