/**
 * The baseline of the migration-overhead benchmark: the same migration as migrateToGpu's path to
 * "completed" on on-demand (same activity code, so the same AWS calls and HTTP checks, in the
 * same order), as a plain sequential script: no Temporal server, no workflow, no retries.
 * The activity functions run in a MockActivityEnvironment, which only gives them the context
 * they read (attempt 1, heartbeats that go nowhere).
 *
 * A process of its own, like the worker it is compared with. It reads one JSON line per
 * migration on stdin (`{ "id", "plan" }`) and answers one line on stdout
 * (`{ "id", "totalMs", "calls": [{ "name", "ms" }] }` or `{ "id", "error" }`).
 *
 * Environment: AWS_ENDPOINT_URL (required), SSM_POLL_MS (default 2000), AWS_MAX_ATTEMPTS (default 3).
 */
import { createInterface } from 'node:readline';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../src/activities';
import { createAwsClients } from '../src/aws/clients';
import type { Plan } from '../src/plan/schema';
import { checksSpec } from '../src/shared/checks';
import { launchSpec } from '../src/shared/launch';
import { ingressPlan, planRef } from '../src/shared/plan-slices';

const endpoint = process.env.AWS_ENDPOINT_URL;
if (!endpoint) throw new Error('AWS_ENDPOINT_URL is not set');
const acts = createActivities({
  aws: createAwsClients({
    endpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: Number(process.env.AWS_MAX_ATTEMPTS || 3),
  }),
  pollIntervalMs: Number(process.env.SSM_POLL_MS || 2000),
});
type Acts = typeof acts;

export async function migrate(
  plan: Plan,
  workflowId: string,
): Promise<{ totalMs: number; calls: { name: string; ms: number }[] }> {
  const calls: { name: string; ms: number }[] = [];
  const call = async <K extends keyof Acts>(
    name: K,
    ...args: Parameters<Acts[K]>
  ): Promise<Awaited<ReturnType<Acts[K]>>> => {
    const t = performance.now();
    const env = new MockActivityEnvironment({ activityType: name });
    const fn = acts[name] as unknown as (...a: unknown[]) => Promise<unknown>;
    const out = (await env.run<unknown[], unknown, typeof fn>(fn, ...(args as unknown[]))) as Awaited<
      ReturnType<Acts[K]>
    >;
    calls.push({ name, ms: performance.now() - t });
    return out;
  };
  const started = performance.now();
  const region = plan.region;
  const stamp = new Date().toISOString().slice(0, 10);

  const preflight = await call('preflight', { plan });
  const launched = await call('launchInstance', {
    spec: launchSpec(plan),
    workflowId,
    runId: workflowId,
    step: 'launch',
    imageId: preflight.imageId,
  });
  const instanceId = launched.instanceId;
  const spec = checksSpec(plan);
  await call('applyIngress', { plan: ingressPlan(plan) });
  const newHost = launched.publicIp as string;
  const remote = (label: string, commands: string[], timeoutSeconds: number) =>
    commands.length ? call('runRemote', { region, instanceId, label, commands, timeoutSeconds }) : undefined;
  await remote('setup', plan.remote.setup, 3 * 3600);
  await call('readGpuFacts', { region, instanceId });
  await remote('source', plan.remote.deploy, 3 * 3600);
  await remote('build', plan.remote.build, 3 * 3600);
  await remote('start', plan.remote.start, 3600);
  await call('checkServices', { spec, instanceId, host: newHost, scope: 'all' });
  if (plan.checks.voiceClone) await call('voiceCloneTest', { spec, host: newHost });
  await call('checkServices', { spec, instanceId, host: newHost, scope: 'public' });
  const moved = await call('associateAddress', { region, allocationId: plan.elasticIp.allocationId, instanceId });
  const served = moved.publicIp as string;
  await call('checkServices', { spec, instanceId, host: served, scope: 'public' });
  if (plan.checks.latency) await call('latencyTest', { spec, host: served });
  if (plan.checks.voiceClone) await call('voiceCloneTest', { spec, host: served });
  // (Approval: a person's decision; the benchmark leaves its wait out of both figures.)
  await call('stopInstance', { region, instanceId: plan.source.instanceId });
  await call('createImage', {
    plan: planRef(plan),
    workflowId,
    step: 'backup',
    instanceId: plan.source.instanceId,
    stamp,
  });
  await remote('sync before the golden image', ['sync'], 600);
  await call('createImage', { plan: planRef(plan), workflowId, step: 'golden', instanceId, stamp });
  await call('getInstance', { region, instanceId });
  await call('prices', {
    region,
    instanceTypes: [preflight.source.instanceType, launched.instanceType].filter(Boolean),
  });
  return { totalMs: performance.now() - started, calls };
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const { id, plan } = JSON.parse(line) as { id: string; plan: Plan };
  migrate(plan, `script-${plan.name}`).then(
    (r) => process.stdout.write(`${JSON.stringify({ id, ...r })}\n`),
    (err: unknown) =>
      process.stdout.write(`${JSON.stringify({ id, error: err instanceof Error ? err.message : String(err) })}\n`),
  );
});
process.stdout.write('sequential-migration ready\n');
