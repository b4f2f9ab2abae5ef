import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { durationMs } from '../../src/plan/duration';
import { loadPlanFile, parsePlanText, PlanError, validatePlan, type PlanProblem } from '../../src/plan/load';
import { canonicalCidr, isCidr } from '../../src/plan/cidr';
import { BAD_PLANS as cases, EXAMPLE_FILE, EXAMPLE_TEXT, badPlanText, example, minimal } from '../fixtures/bad-plans';

function problemsOf(text: string): PlanProblem[] {
  try {
    parsePlanText(text, 'case.yaml');
  } catch (err) {
    if (err instanceof PlanError) return err.problems;
    throw err;
  }
  throw new Error('the plan was accepted');
}

/** Words zod uses by default; none of them should reach a person. */
const DEFAULT_ZOD_WORDING = /Invalid input|Invalid option|Too (big|small)|Unrecognized key|received|Invalid string/;

describe('malformed plans', () => {
  it('has at least 50 distinct cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(50);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const problems = problemsOf(badPlanText(c));
    const fields = problems.map((p) => p.field).sort();
    expect(fields).toEqual([c.field, ...(c.also ?? [])].sort());
    const problem = problems.find((p) => p.field === c.field)!;
    expect(problem.expected).toMatch(c.expected);
    for (const p of problems) {
      expect(p.expected).not.toMatch(DEFAULT_ZOD_WORDING);
      expect(p.expected.length).toBeGreaterThan(8);
    }
  });
});

describe('plan errors', () => {
  it('reports every problem in one pass, cross-field ones included', () => {
    const plan = example();
    plan.region = 'tokyo';
    plan.services[1].name = 'backend';
    plan.target.subnetIds = ['subnet-1'];
    plan.ingress.adminCidrs = ['0.0.0.0/0'];
    const fields = problemsOf(stringify(plan)).map((p) => p.field);
    expect(fields).toEqual(
      expect.arrayContaining(['region', 'services[1].name', 'target.subnetIds[0]', 'ingress.adminCidrs[0]']),
    );
    expect(fields).toHaveLength(4);
  });

  it('names the line a problem is on', () => {
    const text = EXAMPLE_TEXT.replace('  subnetIds: [subnet-0123456789abcdef0]', '  subnetIds: [subnet-bad]');
    const line = text.split('\n').findIndex((l) => l.includes('subnet-bad')) + 1;
    const [problem] = problemsOf(text);
    expect(problem).toEqual(expect.objectContaining({ field: 'target.subnetIds[0]', line }));
  });

  it('says what was expected in its message, one line per problem', () => {
    const err = (() => {
      try {
        parsePlanText('name: app\nregion: 5\n', 'my-plan.yaml');
      } catch (e) {
        return e as PlanError;
      }
      throw new Error('accepted');
    })();
    expect(err).toBeInstanceOf(PlanError);
    expect(err.name).toBe('PlanError');
    expect(err.source).toBe('my-plan.yaml');
    expect(err.message).toMatch(/^invalid plan my-plan\.yaml:\n/);
    expect(err.message).toContain('  - region (line 2): expected string, got number');
    expect(err.message).toContain('  - source: expected mapping (required key is missing)');
    expect(err.message.split('\n')).toHaveLength(err.problems.length + 1);
  });

  it('validatePlan checks data that did not come from text', () => {
    expect(() => validatePlan({ ...minimal(), region: 'mars-1' })).toThrow(PlanError);
    expect(() => validatePlan('a string')).toThrow(/\(plan\): expected mapping, got string/);
  });

  it('loadPlanFile reports a file it cannot read', async () => {
    const missing = join(tmpdir(), 'ec2-gpu-migration-no-such-plan.yaml');
    await expect(loadPlanFile(missing)).rejects.toMatchObject({
      problems: [{ field: '(file)', expected: expect.stringMatching(/readable plan file \(ENOENT\)/) }],
    });
  });
});

describe('valid plans', () => {
  it('loads the example file', async () => {
    const plan = await loadPlanFile(EXAMPLE_FILE);
    expect(plan.name).toBe('video-message-app');
    expect(plan.target).toMatchObject({
      instanceType: 'g4dn.xlarge',
      market: 'spot',
      fallbackInstanceTypes: ['g4dn.2xlarge', 'g5.xlarge'],
    });
    expect(plan.services.map((s) => [s.name, s.port, s.public])).toEqual([
      ['backend', 55433, true],
      ['frontend', 55434, true],
      ['openvoice', 8001, false],
      ['voicevox', 50021, false],
    ]);
    expect(plan.checks.voiceClone).toMatchObject({
      service: 'backend',
      method: 'POST',
      maxSeconds: 2,
      body: { text: 'こんにちは', speaker: 1 },
    });
  });

  it('fills every default', () => {
    const plan = validatePlan(minimal());
    expect(plan.target.market).toBe('on-demand');
    expect(plan.target.fallbackInstanceTypes).toEqual([]);
    expect(plan.target.rootVolume).toEqual({ sizeGiB: 30, type: 'gp3' });
    expect(plan.remote).toEqual({ setup: [], deploy: [], build: [], start: [] });
    expect(plan.services).toEqual([{ name: 'web', port: 8080, healthPath: '/', public: false }]);
    expect(plan.ingress).toEqual({
      publicCidrs: ['0.0.0.0/0'],
      adminCidrs: [],
      allowSshFromAnywhere: false,
      revokeUnplanned: false,
    });
    expect(plan.checks).toEqual({ host: 'auto', requestTimeoutSeconds: 10, interval: '10s', attempts: 30 });
    expect(plan.approval).toEqual({ timeout: '7d', watchInterval: '30s', approvers: [] });
    expect(plan.spot).toEqual({
      pollInterval: '5s',
      interruptionQueueUrl: null,
      keepGoldenImages: 3,
      avoidInterruptedPoolFor: '3m',
      revertAfter: '1h',
      retryRoundAfter: '1m',
      wakeEvery: '1d',
      standby: 'none',
      standbyCheckInterval: '5m',
      poolOrder: 'placement-score',
    });
  });

  it('fills defaults inside sections that are partly written', () => {
    const data = minimal();
    data.target.rootVolume = { sizeGiB: 100 };
    data.checks = { voiceClone: { service: 'web', path: '/tts' }, latency: { service: 'web', path: '/' } };
    data.services[0].public = true;
    data.spot = { interruptionQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/spot-events' };
    const plan = validatePlan(data);
    expect(plan.target.rootVolume).toEqual({ sizeGiB: 100, type: 'gp3' });
    expect(plan.checks.voiceClone).toEqual({ service: 'web', path: '/tts', method: 'POST', body: {}, maxSeconds: 2 });
    expect(plan.checks.latency).toEqual({ service: 'web', path: '/', samples: 5, maxAverageMs: 50 });
    expect(plan.spot.pollInterval).toBe('5s');
  });

  it('reads JSON plans', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plan-'));
    try {
      const file = join(dir, 'plan.json');
      await writeFile(file, JSON.stringify(example(), null, 2));
      const fromJson = await loadPlanFile(file);
      expect(fromJson).toEqual(parsePlanText(EXAMPLE_TEXT));
      expect(parsePlanText(JSON.stringify(minimal())).name).toBe('app');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('accepts SSH from anywhere when asked for on purpose, and private-network admin CIDRs', () => {
    const data = minimal();
    data.ingress = { adminCidrs: ['0.0.0.0/0', '10.0.0.0/8'], allowSshFromAnywhere: true };
    expect(validatePlan(data).ingress.adminCidrs).toEqual(['0.0.0.0/0', '10.0.0.0/8']);
  });

  it('accepts an SSM parameter, an instance profile ARN and a host name for checks', () => {
    const data = minimal();
    delete data.target.imageId;
    data.target.imageParameter = '/golden/app/ami-id';
    data.target.iamInstanceProfile = 'arn:aws:iam::123456789012:instance-profile/app-ssm';
    data.checks = { host: 'app.example.com' };
    expect(validatePlan(data).target.imageParameter).toBe('/golden/app/ami-id');
  });

  it('returns plain data that survives a JSON round trip (workflow input)', () => {
    const plan = parsePlanText(EXAMPLE_TEXT);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });
});

describe('helpers', () => {
  it('isCidr', () => {
    for (const ok of ['0.0.0.0/0', '203.0.113.0/24', '10.0.0.1/32', '255.255.255.255/32'])
      expect(isCidr(ok)).toBe(true);
    for (const bad of [
      '10.0.0.0/33',
      '300.1.1.1/8',
      '10.0.0.0',
      '10.0.0/8',
      '010.0.0.0/8',
      '10.0.0.0/08',
      ' 10.0.0.0/8',
      '::/0',
    ])
      expect(isCidr(bad)).toBe(false);
  });

  it('canonicalCidr', () => {
    expect(canonicalCidr('10.1.2.3/8')).toBe('10.0.0.0/8');
    expect(canonicalCidr('203.0.113.77/28')).toBe('203.0.113.64/28');
    expect(canonicalCidr('255.255.255.255/0')).toBe('0.0.0.0/0');
    expect(canonicalCidr('192.0.2.1/32')).toBe('192.0.2.1/32');
  });

  it('durationMs', () => {
    expect(durationMs('500ms')).toBe(500);
    expect(durationMs('5s')).toBe(5_000);
    expect(durationMs('10m')).toBe(600_000);
    expect(durationMs('2h')).toBe(7_200_000);
    expect(durationMs('7d')).toBe(604_800_000);
    expect(() => durationMs('7 days')).toThrow(TypeError);
  });
});

describe('examples', () => {
  const dir = join(__dirname, '..', '..', 'examples');
  it.each(readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)))('%s is a valid plan', async (file) => {
    const plan = await loadPlanFile(join(dir, file));
    expect(plan.name).toMatch(/^[a-z0-9-]+$/);
  });

  it('the JSON example gets the on-demand defaults', async () => {
    const plan = await loadPlanFile(join(dir, 'minimal-on-demand.json'));
    expect(plan.target.market).toBe('on-demand');
    expect(plan.remote.deploy).toEqual([]);
    expect(plan.ingress.adminCidrs).toEqual([]);
  });
});
