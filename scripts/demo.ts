/**
 * `npm run demo`: the whole job on this machine, nothing from outside. A local Temporal dev
 * server with its Web UI, a local AWS (moto) with the "old" t3.large running the reference app
 * and holding an Elastic IP, the app's stand-ins and a worker; then the migration of
 * examples/video-message-app.yaml onto Spot, a person's approval (Web UI or CLI, or
 * --auto-approve), a Spot interruption warning through the SQS path, the guardian's recovery,
 * and the report.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { DescribeAddressesCommand } from '@aws-sdk/client-ec2';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { followMigration, plainChanges } from '../src/cli/follow';
import { main as cli } from '../src/client';
import { validatePlan } from '../src/plan/load';
import type { PlanInput } from '../src/plan/schema';
import { guardianWorkflowId, migrationWorkflowId } from '../src/shared/constants';
import { decideUpdate, statusQuery, type MigrationStatus } from '../src/shared/migration';
import { renderReportMarkdown, type MigrationReport } from '../src/shared/report';
import { guardianStatusQuery } from '../src/shared/spot';
import { describeLedger, ledgerAt } from '../src/shared/ledger';
import { createMigrationWorkers } from '../src/worker';
import { readConfig } from '../src/config';
import { AwsProxy } from '../test/harness/aws-proxy';
import { startMoto } from '../test/harness/moto';
import { seedSource } from '../test/harness/seed';
import { createQueue, putMessage, spotEvent } from '../test/harness/spot';
import { toolPaths } from '../test/harness/tools';
import { AppWorld, REFERENCE_SERVICES, START_MARKER } from '../test/harness/world';
import { AWAITING_APPROVAL_QUERY, SEARCH_ATTRIBUTE_KEYS } from '../src/shared/search-attributes';

const root = resolve(__dirname, '..');
const args = new Set(process.argv.slice(2));
for (const a of args) {
  if (!['--auto-approve', '--keep-running', '--help'].includes(a)) {
    process.stderr.write(`demo: unknown argument '${a}' (expected --auto-approve, --keep-running)\n`);
    process.exit(2);
  }
}
if (args.has('--help')) {
  process.stdout.write('npm run demo [-- --auto-approve] [-- --keep-running]\n');
  process.exit(0);
}
const autoApprove = args.has('--auto-approve');
const say = (s = '') => process.stdout.write(`${s}\n`);
const step = (s: string) => say(`\n\x1b[1m== ${s}\x1b[0m`);

function portFree(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const s = createServer();
    s.once('error', () => ok(false));
    s.listen(port, '0.0.0.0', () => s.close(() => ok(true)));
  });
}
async function pickPort(preferred: number): Promise<number> {
  if (await portFree(preferred)) return preferred;
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
  });
}

async function main(): Promise<void> {
  const cleanups: (() => Promise<unknown>)[] = [];
  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    step('Shutting down');
    for (const c of cleanups.reverse()) await c().catch((err: Error) => say(`  (while stopping: ${err.message})`));
    say('  everything stopped');
  };
  process.once('SIGINT', () => void shutdown().then(() => process.exit(130)));
  process.once('SIGTERM', () => void shutdown().then(() => process.exit(143)));

  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    const tools = toolPaths();

    step('Starting the local stack');
    const temporalPort = await pickPort(7233);
    const uiPort = await pickPort(8233);
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: tools.temporalBin },
        ip: '127.0.0.1',
        port: temporalPort,
        ui: true,
        uiPort,
        searchAttributes: [...SEARCH_ATTRIBUTE_KEYS],
        namespace: 'default',
      },
    });
    cleanups.push(() => env.teardown());
    const address = `127.0.0.1:${temporalPort}`;
    const ui = `http://127.0.0.1:${uiPort}`;
    process.env.TEMPORAL_ADDRESS = address;
    process.env.TEMPORAL_UI_URL = ui;
    say(`  Temporal dev server ${address}, Web UI ${ui}`);

    const moto = await startMoto({ python: tools.motoPython });
    cleanups.push(() => moto.stop());
    const proxy = await AwsProxy.start({ target: moto.endpoint });
    cleanups.push(() => proxy.close());
    say(`  local AWS (moto) at ${moto.endpoint}`);

    const planFile = resolve(root, 'examples/video-message-app.yaml');
    const example = parseYaml(await readFile(planFile, 'utf8')) as PlanInput & {
      remote: Record<'setup' | 'deploy' | 'build' | 'start', string[]>;
      services: { name: string; port: number }[];
    };
    const region = example.region;
    const services = await Promise.all(
      REFERENCE_SERVICES.map(async (s) => {
        const real = (example.services as { name: string; port: number }[]).find((x) => x.name === s.name)?.port;
        return { ...s, port: real && (await portFree(real)) ? real : undefined };
      }),
    );
    const world = await AppWorld.start({ proxy, region, services });
    cleanups.push(() => world.close());
    const direct = proxy.clients({ bypass: true, maxAttempts: 3 });
    const source = await seedSource(direct, { region, world, name: example.name });
    const queueUrl = await createQueue(direct, region);
    say(`  the old service: ${source.instanceType} ${source.instanceId} in ${region}, Elastic IP ${source.publicIp}`);
    say(`  the app answers at http://${source.publicIp}:${world.ports.backend}/health`);

    // The example plan with the ids of this local AWS.
    const plan = validatePlan(
      {
        ...example,
        source: { instanceId: source.instanceId },
        elasticIp: { allocationId: source.allocationId },
        target: {
          ...example.target,
          imageParameter: undefined,
          imageId: source.imageId,
          subnetIds: [source.subnetId],
          securityGroupIds: [source.securityGroupId],
          iamInstanceProfile: undefined,
        },
        remote: {
          ...example.remote,
          start: [...example.remote.start.slice(0, -1), `cd /opt/app/video-message-app && ${START_MARKER}`],
        },
        services: (example.services as { name: string }[]).map((s) => ({ ...s, port: world.ports[s.name] })),
        spot: { pollInterval: '2s', interruptionQueueUrl: queueUrl },
      },
      'demo plan',
    );
    // The worker may do exactly what `migration iam-policy --plan` allows.
    proxy.grantPlan(plan);
    const workDir = join(root, '.demo');
    await mkdir(workDir, { recursive: true });
    const demoPlan = join(workDir, 'video-message-app.yaml');
    await writeFile(demoPlan, toYaml(plan));

    const connection = await NativeConnection.connect({ address });
    const worker = await createMigrationWorkers({
      connection,
      namespace: 'default',
      aws: proxy.clients({ maxAttempts: 3 }),
      pollIntervalMs: 200,
      // With MIGRATION_NOTIFY_URLS set they are posted; without, shown here as they would be sent.
      notify: {
        targets: readConfig().notifyTargets,
        uiBase: ui,
        print: (text) =>
          say(`  ✉ notification (set MIGRATION_NOTIFY_URLS to send it): ${text.replace(/\n/g, '\n      ')}`),
      },
    });
    const running = worker.run();
    cleanups.push(async () => {
      worker.shutdown();
      await running;
      await connection.close();
    });
    say(`  a worker polls the task queues ${worker.taskQueues.join(' and ')} (guardians and routers on the second)`);

    step(`Migrating ${plan.name}: ${source.instanceType} → ${plan.target.instanceType} (${plan.target.market})`);
    say(`  $ npm run migration -- start --plan ${demoPlan}`);
    const code = await cli(['start', '--plan', demoPlan], {
      out: (s) => process.stdout.write(`  ${s}`),
      err: (s) => process.stderr.write(s),
      isTTY: false,
      client: async () => env.client,
    });
    if (code !== 0) throw new Error(`start exited ${code}`);
    const client = env.client;
    const workflowId = migrationWorkflowId(plan.name);
    const handle = client.workflow.getHandle(workflowId);

    // Follow until a person is asked.
    let prev: MigrationStatus | undefined;
    for (;;) {
      const s = await handle.query(statusQuery).catch(() => undefined);
      if (s) {
        for (const line of plainChanges(prev, s)) say(`  ${line}`);
        prev = s;
        if (['awaiting-approval', 'completed', 'rolled-back', 'failed'].includes(s.phase)) break;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    if (prev?.phase === 'awaiting-approval') {
      step('Waiting for a person');
      say(`  Every check passed; the Elastic IP is on ${prev.newInstanceId}. The old instance still runs.`);
      say(
        `  The Web UI lists what waits for approval (save it as a view): ${ui}/namespaces/default/workflows?query=${encodeURIComponent(AWAITING_APPROVAL_QUERY)}`,
      );
      say(`  Approve in the Web UI: ${ui}/namespaces/default/workflows/${workflowId}`);
      say('    → "More Actions" → "Send a Signal" → approve, with the payload {"by": "your name"}');
      say(
        `  or with the CLI:  TEMPORAL_ADDRESS=${address} npm run migration -- approve ${workflowId} --by "your name"`,
      );
      say(
        `  (reject:          TEMPORAL_ADDRESS=${address} npm run migration -- reject ${workflowId} --by "your name" --reason "why")`,
      );
      if (autoApprove) {
        const d = await handle.executeUpdate(decideUpdate, {
          args: [{ decision: 'approve', by: 'demo (--auto-approve)', comment: 'unattended demo run' }],
        });
        say(`  ${d.decision} by ${d.by}`);
      }
    }
    await followMigration(handle, { tty: false, since: prev, write: (s) => process.stdout.write(`  ${s}`) });
    let report: MigrationReport;
    try {
      report = (await handle.result()) as MigrationReport;
    } catch (err) {
      const details = (err as { cause?: { details?: unknown[] } }).cause?.details;
      if (details?.[0]) say(renderReportMarkdown(details[0] as MigrationReport));
      throw err;
    }

    if (report.guardianWorkflowId) {
      step('A Spot interruption warning arrives');
      const guardian = client.workflow.getHandle(guardianWorkflowId(plan.name));
      let g = await guardian.query(guardianStatusQuery).catch(() => undefined);
      for (let i = 0; (!g || g.state !== 'guarding') && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 200));
        g = await guardian.query(guardianStatusQuery).catch(() => undefined);
      }
      if (!g) throw new Error('the Spot guardian did not start');
      const interrupted = g.instanceId;
      say(`  the guardian ${guardian.workflowId} watches ${interrupted}`);
      say(`  EventBridge → SQS: "EC2 Spot Instance Interruption Warning" for ${interrupted} (two minutes left)`);
      await putMessage(direct, region, queueUrl, spotEvent('interruption', interrupted, region));
      for (;;) {
        g = await guardian.query(guardianStatusQuery);
        if (g.replacements >= 1 && g.state === 'guarding') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const e = g.events[g.events.length - 1];
      const holder = (
        await direct.ec2(region).send(new DescribeAddressesCommand({ AllocationIds: [plan.elasticIp.allocationId] }))
      ).Addresses?.[0]?.InstanceId;
      say(
        `  recovered: ${e.oldInstanceId} → ${e.newInstanceId} (${e.instanceType}@${e.availabilityZone ?? '?'}, ${e.market}), ${e.outcome}`,
      );
      if (e.pools?.skipped.length) say(`  skipped, as just interrupted: ${e.pools.skipped.join(', ')}`);
      say(
        `  notice ${e.noticeAt} · running ${e.runningAt} · agent online ${e.agentOnlineAt ?? '–'} · started ${e.startedAt} · checked ${e.healthyAt} · Elastic IP moved ${e.eipMovedAt}`,
      );
      if (g.ledgerBook) say(`  ledger: ${describeLedger(ledgerAt(g.ledgerBook, Date.now()))}`);
      say(
        `  recovery took ${((e.recoveryMs ?? 0) / 1000).toFixed(2)} s (measured, local AWS answers at once); the Elastic IP ${source.publicIp} is on ${holder}`,
      );
      const res = await fetch(`http://${source.publicIp}:${world.ports.backend}/health`);
      say(`  GET http://${source.publicIp}:${world.ports.backend}/health → ${res.status}`);
    }

    step('The report');
    say(renderReportMarkdown(report));
    if (args.has('--keep-running')) {
      say(`The servers keep running: Web UI ${ui}. Press Ctrl-C to stop them.`);
      await new Promise(() => undefined);
    }
  } finally {
    await shutdown();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
