/**
 * The CLI contract (DESIGN.md "Interfaces") against the real Temporal dev server and moto:
 * bad plans and bad arguments exit 2 before anything is touched, `plan` only reads the file,
 * and a whole migration driven through start / status --json / approve / report, also with
 * `start --follow` on a pipe.
 */
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { WorkflowNotFoundError } from '@temporalio/client';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { PHASES, statusQuery, type MigrationStatus, type PhaseState } from '../../src/shared/migration';
import type { MigrationReport } from '../../src/shared/report';
import { AwsProxy } from '../harness/aws-proxy';
import { REPO_ROOT, runCli, setEnv, spawnCli } from '../harness/cli';
import { connectClient, motoEndpoint, temporalAddress, temporalNamespace, type ConnectedClient } from '../harness/env';
import { aliveInstancesOfPlan, instance, waitForPhase } from '../harness/migration';
import { pollUntil } from '../harness/net';
import { startScenario, type Scenario } from '../harness/scenario';
import { startWorker, type TestWorker } from '../harness/worker';

const EXAMPLE = join(REPO_ROOT, 'examples', 'video-message-app.yaml');

let temporal: ConnectedClient;
let dir: string;
/** The AWS every CLI run of this file would reach through the SDK's default chain. */
let proxy: AwsProxy;
let restoreEnv: () => void;
/** What a spawned CLI gets: the same as the in-process one. */
let cliEnv: Record<string, string>;
const open: { close(): Promise<void> }[] = [];
const started: string[] = [];

beforeAll(async () => {
  temporal = await connectClient();
  dir = await mkdtemp(join(tmpdir(), 'migration-cli-'));
  proxy = await AwsProxy.start({ target: motoEndpoint() });
  cliEnv = {
    TEMPORAL_ADDRESS: temporalAddress(),
    TEMPORAL_NAMESPACE: temporalNamespace(),
    AWS_ENDPOINT_URL: proxy.endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
  };
  restoreEnv = setEnv({
    ...cliEnv,
    TEMPORAL_PROFILE: undefined,
    TEMPORAL_API_KEY: undefined,
    TEMPORAL_UI_URL: undefined,
    AWS_PROFILE: undefined,
  });
});
afterEach(async () => {
  // A run the CLI started and a test left open must not outlive the test.
  while (started.length) {
    await temporal.client.workflow
      .getHandle(started.pop() as string)
      .terminate('test over')
      .catch(() => undefined);
  }
  while (open.length) await open.pop()?.close();
});
afterAll(async () => {
  restoreEnv?.();
  await proxy?.close();
  await temporal?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function notStarted(workflowId: string): Promise<boolean> {
  try {
    await temporal.client.workflow.getHandle(workflowId).describe();
    return false;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return true;
    throw err;
  }
}

// --- bad plans --------------------------------------------------------------------------------

type PlanData = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface BadPlan {
  what: string;
  /** A change to the example plan, written back as YAML (or JSON with `json`). */
  edit?: (plan: PlanData) => void;
  /** The file's text instead, given the valid YAML of the plan. */
  text?: (validYaml: string) => string;
  json?: boolean;
  /** No file at all. */
  missing?: boolean;
  field: string;
  expected: RegExp;
}

const BAD_PLANS: BadPlan[] = [
  {
    what: 'an unknown top-level key',
    edit: (p) => (p.colour = 'blue'),
    field: 'colour',
    expected: /a known key.*unknown keys are errors/,
  },
  {
    what: 'a misspelt nested key',
    edit: (p) => ((p.target.instanceTyp = p.target.instanceType), delete p.target.instanceType),
    field: 'target.instanceTyp',
    expected: /did you mean 'instanceType'/,
  },
  {
    what: 'a string where a number belongs',
    edit: (p) => (p.target.rootVolume.sizeGiB = 'thirty'),
    field: 'target.rootVolume.sizeGiB',
    expected: /number, got string/,
  },
  {
    what: 'a mapping where a list belongs (JSON)',
    json: true,
    edit: (p) => (p.services = { backend: 55433 }),
    field: 'services',
    expected: /list, got mapping/,
  },
  {
    what: 'a malformed subnet id',
    edit: (p) => (p.target.subnetIds = ['subnet-xyz']),
    field: 'target.subnetIds[0]',
    expected: /a subnet id like subnet-0123456789abcdef0/,
  },
  {
    what: 'a malformed instance id',
    edit: (p) => (p.source.instanceId = 'i-123'),
    field: 'source.instanceId',
    expected: /an instance id like i-/,
  },
  {
    what: 'a malformed Elastic IP allocation id',
    edit: (p) => (p.elasticIp.allocationId = 'eip-0123456789abcdef0'),
    field: 'elasticIp.allocationId',
    expected: /an Elastic IP allocation id like eipalloc-/,
  },
  {
    what: 'a malformed security group id',
    edit: (p) => (p.target.securityGroupIds = ['sg-0123456789abcdef0', 'default']),
    field: 'target.securityGroupIds[1]',
    expected: /a security group id like sg-/,
  },
  {
    what: 'no subnet at all',
    edit: (p) => (p.target.subnetIds = []),
    field: 'target.subnetIds',
    expected: /at least one subnet id/,
  },
  {
    what: 'a CIDR prefix over 32',
    edit: (p) => (p.ingress.publicCidrs = ['10.0.0.0/33']),
    field: 'ingress.publicCidrs[0]',
    expected: /an IPv4 CIDR block/,
  },
  {
    what: 'a CIDR with host bits set',
    edit: (p) => (p.ingress.publicCidrs = ['203.0.113.7/24']),
    field: 'ingress.publicCidrs[0]',
    expected: /203\.0\.113\.0\/24 \(host bits are set\)/,
  },
  {
    what: 'SSH open to the internet without saying so',
    edit: (p) => (p.ingress.adminCidrs = ['0.0.0.0/0']),
    field: 'ingress.adminCidrs[0]',
    expected: /narrower than 0\.0\.0\.0\/0 for SSH/,
  },
  {
    what: 'two services on one port',
    edit: (p) => (p.services[1].port = p.services[0].port),
    field: 'services[1].port',
    expected: /a unique port \(55433 is also services\[0\]\)/,
  },
  {
    what: 'two services with one name',
    edit: (p) => (p.services[3].name = 'openvoice'),
    field: 'services[3].name',
    expected: /a unique service name/,
  },
  {
    what: 'a port out of range',
    edit: (p) => (p.services[2].port = 70000),
    field: 'services[2].port',
    expected: /a port number from 1 to 65535/,
  },
  {
    what: 'a private service used for a check from outside',
    edit: (p) => (p.checks.voiceClone.service = 'openvoice'),
    field: 'checks.voiceClone.service',
    expected: /a public service \('openvoice' is private/,
  },
  {
    what: 'a check of a service the plan does not have',
    edit: (p) => (p.checks.latency.service = 'api'),
    field: 'checks.latency.service',
    expected: /the name of a service in services .*got 'api'/,
  },
  {
    what: 'an unknown market',
    edit: (p) => (p.target.market = 'cheap'),
    field: 'target.market',
    expected: /one of "spot", "on-demand"/,
  },
  {
    what: 'both imageId and imageParameter',
    edit: (p) => (p.target.imageId = 'ami-0123456789abcdef0'),
    field: 'target.imageParameter',
    expected: /only one of imageId and imageParameter/,
  },
  {
    what: 'neither imageId nor imageParameter',
    edit: (p) => delete p.target.imageParameter,
    field: 'target.imageId',
    expected: /an AMI id in imageId, or an SSM parameter name/,
  },
  {
    what: 'a missing required key',
    edit: (p) => delete p.region,
    field: 'region',
    expected: /required key is missing/,
  },
  {
    what: 'a region that is not one',
    edit: (p) => (p.region = 'tokyo'),
    field: 'region',
    expected: /an AWS region such as ap-northeast-1/,
  },
  {
    what: 'a duration without a unit',
    edit: (p) => (p.approval.timeout = '7 days'),
    field: 'approval.timeout',
    expected: /a duration such as 5s/,
  },
  {
    what: 'a Spot poll interval under 1s',
    edit: (p) => (p.spot.pollInterval = '500ms'),
    field: 'spot.pollInterval',
    expected: /a poll interval from 1s to 2m/,
  },
  {
    what: 'a fallback type equal to the main type',
    edit: (p) => (p.target.fallbackInstanceTypes = ['g4dn.xlarge']),
    field: 'target.fallbackInstanceTypes[0]',
    expected: /an instance type other than target\.instanceType/,
  },
  {
    what: 'an event queue in another region',
    edit: (p) => (p.spot.interruptionQueueUrl = 'https://sqs.us-east-1.amazonaws.com/123456789012/spot-events'),
    field: 'spot.interruptionQueueUrl',
    expected: /a queue in the plan's region ap-northeast-1/,
  },
  {
    what: 'a key written twice',
    text: (y) => `${y}region: us-west-2\n`,
    field: 'region',
    expected: /each key once in a mapping/,
  },
  {
    what: 'YAML that does not parse',
    text: (y) => y.replace(/^region: .*$/m, 'region: [ap-northeast-1'),
    field: '(plan)',
    expected: /valid YAML or JSON/,
  },
  {
    what: 'a list instead of a plan',
    text: () => '- name: x\n- region: y\n',
    field: '(plan)',
    expected: /a mapping of plan keys .*got list/,
  },
  { what: 'an empty file', text: () => '', field: '(plan)', expected: /got an empty document/ },
  { what: 'a file that does not exist', missing: true, field: '(file)', expected: /a readable plan file \(ENOENT\)/ },
];

const exampleData = async (): Promise<PlanData> => parse(await readFile(EXAMPLE, 'utf8')) as PlanData;

/** Writes the bad plan; returns its path and the workflow id a good plan of that name would get. */
async function writeBadPlan(c: BadPlan, i: number): Promise<{ file: string; workflowId: string }> {
  const plan = await exampleData();
  const name = `cli-bad-${process.pid}-${i}`;
  plan.name = name;
  const file = join(dir, `bad-${i}.${c.json ? 'json' : 'yaml'}`);
  if (!c.missing) {
    c.edit?.(plan);
    const text = c.text ? c.text(stringify(plan)) : c.json ? JSON.stringify(plan, null, 2) : stringify(plan);
    await writeFile(file, text);
  }
  return { file, workflowId: `migrate-${name}` };
}

describe('start with a bad plan exits 2, names the field, and touches nothing', () => {
  test('the CLI reaches this AWS through the default chain (so an empty call log means something)', async () => {
    const ec2 = new EC2Client({});
    try {
      await ec2.send(new DescribeInstancesCommand({}));
    } finally {
      ec2.destroy();
    }
    expect(proxy.count('DescribeInstances')).toBe(1);
    proxy.clearLog();
  });

  test.each(BAD_PLANS.map((c, i) => [c.what, c, i] as const))('%s', async (_what, c, i) => {
    const { file, workflowId } = await writeBadPlan(c, i);
    const r = await runCli(['start', '--plan', file]);

    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const line = r.stderr
      .split('\n')
      .find((l) => l.startsWith(`  - ${c.field}:`) || l.startsWith(`  - ${c.field} (line`));
    expect({ line, stderr: r.stderr }).toMatchObject({ line: expect.stringMatching(/: expected /) });
    expect(line).toMatch(c.expected);
    expect(r.stderr).toContain('Nothing was started.');
    expect(r.connected).toBe(false);
    expect(proxy.calls()).toEqual([]);
    expect(await notStarted(workflowId)).toBe(true);
  });

  test('as real processes: exit code 2 and the field on stderr', async () => {
    const cases = [
      BAD_PLANS.findIndex((c) => c.field === 'target.subnetIds[0]'),
      BAD_PLANS.findIndex((c) => c.missing),
      BAD_PLANS.findIndex((c) => c.text && c.field === '(plan)'),
    ];
    for (const i of cases) {
      const c = BAD_PLANS[i];
      const { file, workflowId } = await writeBadPlan(c, 100 + i);
      const r = await spawnCli(['start', '--plan', file], cliEnv);
      expect({ code: r.code, signal: r.signal, stdout: r.stdout }).toEqual({ code: 2, signal: null, stdout: '' });
      expect(r.stderr).toContain(`  - ${c.field}`);
      expect(r.stderr).toMatch(c.expected);
      expect(await notStarted(workflowId)).toBe(true);
    }
    expect(proxy.calls()).toEqual([]);
  });
});

describe('bad arguments exit 2 without connecting', () => {
  test.each([
    ['start without --plan', ['start'], /required option '--plan <file>' not specified/],
    ['an unknown option', ['start', '--plan', EXAMPLE, '--frobnicate'], /unknown option '--frobnicate'/],
    ['an unknown command', ['migrate-everything'], /unknown command 'migrate-everything'/],
    [
      'report --format xml',
      ['report', 'migrate-x', '--format', 'xml'],
      /argument 'xml' is invalid\. Allowed choices are md, json/,
    ],
    ['approve without --by', ['approve', 'migrate-x'], /required option '--by <name>' not specified/],
    [
      'report --out into a folder that does not exist',
      ['report', 'migrate-x', '--out', '/nonexistent-dir/r.md'],
      /--out \/nonexistent-dir\/r\.md: the folder \/nonexistent-dir does not exist/,
    ],
    [
      'start --report-out without --follow',
      ['start', '--plan', EXAMPLE, '--report-out', 'r.md'],
      /--report-out needs --follow/,
    ],
    [
      'approve --by with a blank name',
      ['approve', 'migrate-x', '--by', '  '],
      /--by: expected the name of the person deciding/,
    ],
    [
      'reject without --reason',
      ['reject', 'migrate-x', '--by', 'bob'],
      /required option '--reason <text>' not specified/,
    ],
    ['reject with a blank reason', ['reject', 'migrate-x', '--by', 'bob', '--reason', ' '], /--reason: expected why/],
    [
      'approve with an invalid id',
      ['approve', 'migrate x!', '--by', 'alice'],
      /ID: expected a workflow id .* \(got 'migrate x!'\)/,
    ],
    ['status with an invalid id', ['status', '../etc/passwd'], /ID: expected a workflow id/],
    ['report with an invalid id', ['report', 'migrate-x y'], /ID: expected a workflow id/],
    ['status without an id', ['status'], /missing required argument 'id'/],
    [
      'worker --only with a queue that does not exist',
      ['worker', '--only', 'guardians'],
      /argument 'guardians' is invalid\. Allowed choices are migration, spot/,
    ],
  ])('%s', async (_what, args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.connected).toBe(false);
  });

  test('as real processes', async () => {
    for (const args of [
      ['start'],
      ['report', 'migrate-x', '--format', 'xml'],
      ['approve', 'migrate-x'],
      ['approve', 'not an id', '--by', 'alice'],
    ]) {
      const r = await spawnCli(args, cliEnv);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(/^error: /m);
    }
  });

  test('a workflow that does not exist: exit 2, and the id is named', async () => {
    const r = await runCli(['status', 'migrate-nothing-by-this-name', '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('migrate-nothing-by-this-name');
  });
});

test('plan FILE prints the phases and the internet-facing rules, and touches nothing', async () => {
  proxy.clearLog();
  const r = await runCli(['plan', EXAMPLE]);
  expect(r.code).toBe(0);
  expect(r.stderr).toBe('');
  const headings = r.stdout.split('\n').filter((l) => /^\d+(-\d+)?\. /.test(l));
  expect(headings.map((l) => l.split(' ')[0])).toEqual(['0.', '1.', '2-5.', '6.', '7.', '8.', '9.', '10.', '11.']);
  for (const title of [
    'Preflight',
    'Launch GPU instance',
    'Environment setup',
    'Source migration',
    'Docker image build',
    'Service start check',
    'Voice clone test',
    'Security group',
    'External connectivity',
    'Elastic IP switch',
    'Performance test',
    'Stop old instance',
  ]) {
    expect(r.stdout).toContain(title);
  }
  const facing = r.stdout.slice(r.stdout.indexOf('Rules that face the internet'));
  expect(facing).toMatch(
    /^Rules that face the internet: 2\n {5}- tcp 55433 from 0\.0\.0\.0\/0 \(backend\)\n {5}- tcp 55434 from 0\.0\.0\.0\/0 \(frontend\)\n/,
  );
  expect(r.stdout).toContain('Private services get no rule: openvoice (port 8001), voicevox (port 50021).');
  expect(r.connected).toBe(false);
  expect(proxy.calls()).toEqual([]);
});

test('status against an unreachable Temporal exits 1 and names the address', async () => {
  const r = await spawnCli(['status', 'migrate-x'], { ...cliEnv, TEMPORAL_ADDRESS: '127.0.0.1:1' });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/cannot reach Temporal at 127\.0\.0\.1:1\b/);
  expect(r.stdout).toBe('');
});

test('status of a run no worker polls for exits 1 at once and names the task queue', async () => {
  const s = await startScenario();
  open.push(s);
  const file = join(dir, `${s.plan.name}.yaml`);
  await writeFile(file, stringify(s.plan));
  const workflowId = `migrate-${s.plan.name}`;
  started.push(workflowId);
  const taskQueue = `nobody-${s.plan.name}`;
  expect((await runCli(['start', '--plan', file, '--task-queue', taskQueue])).code).toBe(0);

  const startedAt = Date.now();
  const r = await runCli(['status', workflowId, '--json']);
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  expect(r.stderr).toContain(`no worker polls task queue ${taskQueue}`);
  expect(r.stderr).toContain(`migration worker --task-queue ${taskQueue}`);
  // Said at once, not after the query's own timeout.
  expect(Date.now() - startedAt).toBeLessThan(5_000);
});

// --- whole migrations ---------------------------------------------------------------------------

async function setup(): Promise<{ s: Scenario; w: TestWorker; file: string; workflowId: string }> {
  const s = await startScenario({ maxAttempts: 3 });
  open.push(s);
  const w = await startWorker({ clients: s.clients });
  open.push({ close: () => w.stop() });
  const file = join(dir, `${s.plan.name}.yaml`);
  await writeFile(file, stringify(s.plan));
  const workflowId = `migrate-${s.plan.name}`;
  started.push(workflowId);
  return { s, w, file, workflowId };
}

async function statusJson(workflowId: string): Promise<MigrationStatus> {
  const r = await runCli(['status', workflowId, '--json']);
  if (r.code !== 0) throw new Error(`status exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as MigrationStatus;
}

/** The "phases of …" block `start --follow` ends with on a pipe: [name, state] in order. */
function summaryOf(stdout: string, workflowId: string): { phase: string; rows: [string, PhaseState][] } {
  const lines = stdout.split('\n');
  const at = lines.findIndex((l) => l.startsWith(`phases of ${workflowId} (`));
  if (at < 0) throw new Error(`no phase summary in:\n${stdout}`);
  const phase = /\((.+)\):$/.exec(lines[at])?.[1] ?? '';
  const rows = lines
    .slice(at + 1, at + 1 + PHASES.length)
    .map((l) => /^\s+\d+ (\S+)\s+(\S+)/.exec(l))
    .map((m) => [m?.[1], m?.[2]] as [string, PhaseState]);
  return { phase, rows };
}

test('a migration through the CLI: start, status --json, approve, approve again, report', async () => {
  const { s, w, file, workflowId } = await setup();

  const start = await runCli(['start', '--plan', file, '--task-queue', w.taskQueue]);
  expect(start).toMatchObject({ code: 0, stderr: '' });
  expect(start.stdout).toContain(`started ${workflowId}\n`);
  const [, port] = temporalAddress().split(':');
  expect(start.stdout).toContain(
    `Web UI: http://127.0.0.1:${Number(port) + 1000}/namespaces/${temporalNamespace()}/workflows/${workflowId}\n`,
  );

  // Started again while it runs: the same run, not a second one.
  const again = await runCli(['start', '--plan', file, '--task-queue', w.taskQueue]);
  expect(again.code).toBe(0);
  expect(again.stdout).toMatch(
    new RegExp(`${workflowId} is already running \\(since [^,]+, phase: [a-z-]+\\); not starting another\n`),
  );

  const waiting = await pollUntil(
    'status --json says awaiting-approval',
    async () => {
      const st = await statusJson(workflowId);
      return st.phase === 'awaiting-approval' ? st : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 200 },
  );
  expect(waiting.workflowId).toBe(workflowId);
  expect(waiting.phases.map((p) => p.name)).toEqual(PHASES.map((p) => p.name));
  expect(waiting.phases.filter((p) => p.state !== 'succeeded').map((p) => p.name)).toEqual(['stop-old']);
  expect(waiting.newInstanceId).toMatch(/^i-/);

  // The plan name stands for its migration.
  const human = await runCli(['status', s.plan.name]);
  expect(human.code).toBe(0);
  expect(human.stdout).toContain(`${workflowId}: awaiting-approval`);
  expect(human.stdout).toContain(`migration approve ${workflowId} --by NAME`);

  const approve = await runCli(['approve', workflowId, '--by', 'alice', '--comment', 'synthesis is fast now']);
  expect(approve).toMatchObject({ code: 0, stderr: '' });
  expect(approve.stdout).toMatch(/^approved by alice at \d{4}-\d\d-\d\dT/);

  const twice = await runCli(['approve', workflowId, '--by', 'bob']);
  expect(twice.code).toBe(2);
  expect(twice.stderr).toMatch(/^refused: (already approved by alice at |migrate-\S+ has already ended)/);
  expect(twice.stderr).toContain('Nothing changed.');

  const report = await temporal.client.workflow.getHandle(workflowId).result();
  expect((report as MigrationReport).outcome).toBe('completed');

  // After the run ended the answer is still a refusal, not "no such workflow".
  const late = await runCli(['reject', workflowId, '--by', 'bob', '--reason', 'too late']);
  expect(late.code).toBe(2);
  expect(late.stderr).toMatch(/^refused: .*has already ended \(completed\)/);

  const md = await runCli(['report', workflowId, '--format', 'md']);
  expect(md.code).toBe(0);
  for (const section of [
    'Before and after',
    'Phases',
    'Measured performance',
    'GPU',
    'Security group',
    'Cost per month',
    'Approval',
  ]) {
    expect(md.stdout).toMatch(new RegExp(`^## ${section}$`, 'm'));
  }
  expect(md.stdout).toContain('- Outcome: **completed**');
  expect(md.stdout).toMatch(/^\| type \| t3\.large \| g4dn\.xlarge \|$/m);
  expect(md.stdout).toMatch(/^\| vCPU \| 2 \| 4 \|$/m);
  expect(md.stdout).toMatch(/\| name \| Tesla T4 \(measured\) \|/);
  expect(md.stdout).toMatch(
    /Speech synthesis \(voice clone request\): [\d.]+ s \(measured\); limit 2 s \(configured\)/,
  );
  expect(md.stdout).toMatch(/\| averageMs \| [\d.]+ ms \(measured\) \| 50 ms \(configured\) \|/);
  expect(md.stdout).toMatch(
    /\| after \| g4dn\.xlarge \| on-demand \| [\d.]+ USD\/h .*\(price table\) \| [\d.]+ USD \(price table\) \|/,
  );
  expect(md.stdout).toContain('- Decision: **approved** by alice');
  expect(md.stdout).toContain('- Comment: synthesis is fast now');

  // Saved outside Temporal, as the terminal shows it.
  const saved = join(await mkdtemp(join(tmpdir(), 'report-')), 'migration.md');
  const out = await runCli(['report', workflowId, '--out', saved]);
  expect(out.code).toBe(0);
  expect(out.stdout).toContain(`report (md, outcome completed) written to ${saved}`);
  expect(await readFile(saved, 'utf8')).toBe(md.stdout);

  const json = await runCli(['report', s.plan.name, '--format', 'json']);
  expect(json.code).toBe(0);
  const parsed = JSON.parse(json.stdout) as MigrationReport;
  expect(parsed).toMatchObject({
    workflowId,
    outcome: 'completed',
    approval: { decision: 'approved', by: 'alice', via: 'update' },
  });
  expect(parsed.after.instanceId).toBe(waiting.newInstanceId);
  expect(parsed.gpu?.name).toEqual({ value: 'Tesla T4', source: 'measured' });

  // What the CLI reported is what AWS holds.
  expect((await aliveInstancesOfPlan(s.direct, s.plan)).map((i) => i.InstanceId)).toEqual([waiting.newInstanceId]);
  expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('stopped');
});

test('start --follow on a pipe lists every phase in order with its final state', async () => {
  const { w, file, workflowId } = await setup();
  let sawWaiting: () => void = () => undefined;
  const waitingShown = new Promise<void>((resolve) => (sawWaiting = resolve));
  const reportFile = join(await mkdtemp(join(tmpdir(), 'report-')), 'report.json');
  const following = runCli(
    ['start', '--plan', file, '--task-queue', w.taskQueue, '--follow', '--report-out', reportFile],
    {
      onOut: (soFar) => {
        if (/ status awaiting-approval\n/.test(soFar)) sawWaiting();
      },
    },
  );

  // Approve once the follower has shown the wait, through the CLI as a person would.
  await Promise.race([
    waitingShown,
    following.then((r) => Promise.reject(new Error(`follow ended early: ${r.stdout}${r.stderr}`))),
  ]);
  expect((await runCli(['approve', workflowId, '--by', 'alice'])).code).toBe(0);
  const handle = temporal.client.workflow.getHandle(workflowId);

  const r = await following;
  expect(r.code).toBe(0);
  expect(r.stdout).not.toMatch(/\x1b\[/); // eslint-disable-line no-control-regex
  const final = await handle.query(statusQuery);
  const summary = summaryOf(r.stdout, workflowId);
  expect(summary.phase).toBe('completed');
  expect(summary.rows).toEqual(final.phases.map((p) => [p.name, p.state]));
  expect(summary.rows.map(([, state]) => state)).toEqual(PHASES.map(() => 'succeeded'));
  expect(r.stdout.trimEnd().split('\n').slice(-2)).toEqual([
    `${workflowId}: completed`,
    `report written to ${reportFile}`,
  ]);
  // The report, as JSON (by the file's extension), saved when the run ended.
  const saved = JSON.parse(await readFile(reportFile, 'utf8')) as MigrationReport;
  expect(saved).toMatchObject({ workflowId, outcome: 'completed', approval: { decision: 'approved', by: 'alice' } });

  // The change lines before it: each phase succeeded once, in phase order, with the wait between.
  const changes = r.stdout.split('\n').filter((l) => /^\d\d:\d\d:\d\d /.test(l));
  const succeeded = changes
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'succeeded')
    .map((f) => f[1]);
  expect(succeeded).toEqual(PHASES.map((p) => p.name));
  const awaiting = changes.findIndex((l) => l.endsWith('status awaiting-approval'));
  expect(awaiting).toBeGreaterThan(changes.findIndex((l) => / performance succeeded/.test(l)));
  expect(awaiting).toBeLessThan(changes.findIndex((l) => / stop-old succeeded/.test(l)));
});

test('start --follow of a rejected migration exits 1 and shows what was rolled back', async () => {
  const { s, w, file, workflowId } = await setup();
  const following = runCli(['start', '--plan', file, '--task-queue', w.taskQueue, '--follow']);
  const handle = temporal.client.workflow.getHandle(workflowId);
  await pollUntil(
    'the run to exist',
    () =>
      handle.describe().then(
        () => true,
        () => undefined,
      ),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  await waitForPhase(handle, 'awaiting-approval');

  const reject = await runCli(['reject', workflowId, '--by', 'carol', '--reason', 'not today']);
  expect(reject).toMatchObject({ code: 0, stderr: '' });
  expect(reject.stdout).toMatch(/^rejected by carol at /);

  const r = await following;
  expect(r.code).toBe(1);
  const summary = summaryOf(r.stdout, workflowId);
  expect(summary.phase).toBe('rolled-back');
  expect(Object.fromEntries(summary.rows)).toEqual({
    preflight: 'succeeded',
    launch: 'compensated',
    setup: 'succeeded',
    source: 'succeeded',
    build: 'succeeded',
    start: 'succeeded',
    'voice-test': 'succeeded',
    'security-group': 'compensated',
    connectivity: 'succeeded',
    'eip-switch': 'compensated',
    performance: 'succeeded',
    'stop-old': 'pending',
  });
  expect(r.stdout).toMatch(/rollback move the Elastic IP back to i-\S+: done/);
  expect(r.stdout.trimEnd().split('\n').pop()).toBe(`${workflowId}: failed`);

  const md = await runCli(['report', workflowId]);
  expect(md.code).toBe(1);
  expect(md.stdout).toContain('- Outcome: **rolled back**');
  expect(md.stdout).toContain('- Decision: **rejected** by carol');
  expect(md.stdout).toMatch(/^## Rollback$/m);
  expect(await aliveInstancesOfPlan(s.direct, s.plan)).toEqual([]);
});
