import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { onDemandTable } from '../../src/activities/pricing';
import { launchChoices } from '../../src/shared/launch';
import { describePlan, humanDuration } from '../../src/plan/describe';
import { facesInternet, plannedIngress } from '../../src/plan/ingress';
import { validatePlan } from '../../src/plan/load';
import type { Plan } from '../../src/plan/schema';
import { minimal } from '../fixtures/bad-plans';

type PlanData = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const exampleData = (): PlanData =>
  parse(readFileSync(join(__dirname, '..', '..', 'examples', 'video-message-app.yaml'), 'utf8')) as PlanData;
const planWith = (edit: (p: PlanData) => void = () => undefined): Plan => {
  const data = exampleData();
  edit(data);
  return validatePlan(data);
};

describe('plannedIngress', () => {
  it('opens each public port to each public CIDR, and nothing for private services or SSH by default', () => {
    expect(plannedIngress(planWith())).toEqual([
      { protocol: 'tcp', port: 55433, cidr: '0.0.0.0/0', service: 'backend', facesInternet: true },
      { protocol: 'tcp', port: 55434, cidr: '0.0.0.0/0', service: 'frontend', facesInternet: true },
    ]);
  });

  it('crosses several public CIDRs with the public ports and adds SSH per admin CIDR', () => {
    const plan = planWith((p) => {
      p.ingress = { publicCidrs: ['203.0.113.0/24', '10.0.0.0/8'], adminCidrs: ['198.51.100.7/32', '192.168.1.0/24'] };
    });
    expect(plannedIngress(plan)).toEqual([
      { protocol: 'tcp', port: 55433, cidr: '203.0.113.0/24', service: 'backend', facesInternet: true },
      { protocol: 'tcp', port: 55433, cidr: '10.0.0.0/8', service: 'backend', facesInternet: false },
      { protocol: 'tcp', port: 55434, cidr: '203.0.113.0/24', service: 'frontend', facesInternet: true },
      { protocol: 'tcp', port: 55434, cidr: '10.0.0.0/8', service: 'frontend', facesInternet: false },
      { protocol: 'tcp', port: 22, cidr: '198.51.100.7/32', service: 'ssh', facesInternet: true },
      { protocol: 'tcp', port: 22, cidr: '192.168.1.0/24', service: 'ssh', facesInternet: false },
    ]);
  });

  it('makes no rule at all when every service is private and no admin CIDR is set', () => {
    const plan = planWith((p) => {
      for (const s of p.services) s.public = false;
      delete p.checks.voiceClone;
      delete p.checks.latency;
    });
    expect(plannedIngress(plan)).toEqual([]);
  });
});

describe('facesInternet', () => {
  it.each([
    ['0.0.0.0/0', true],
    ['203.0.113.0/24', true],
    ['8.0.0.0/7', true],
    ['0.0.0.0/1', true],
    ['10.0.0.0/8', false],
    ['10.20.0.0/16', false],
    ['172.16.0.0/12', false],
    ['172.31.5.0/24', false],
    ['172.32.0.0/16', true],
    ['192.168.0.0/16', false],
    ['100.64.0.0/10', false],
    ['127.0.0.1/32', false],
    ['169.254.169.254/32', false],
    ['10.0.0.0/7', true],
  ])('%s → %s', (cidr, expected) => {
    expect(facesInternet(cidr)).toBe(expected);
  });
});

describe('describePlan', () => {
  const text = describePlan(planWith());
  const lines = text.split('\n');

  it('walks through every phase in order', () => {
    const headings = [
      '0. Preflight',
      '1. Launch GPU instance',
      '2. Environment setup',
      '3. Source migration',
      '4. Docker image build',
      '5. Service start check',
      '6. Voice clone test',
      '7. Security group',
      '8. External connectivity',
      '9. Elastic IP switch',
      '10. Performance test',
      'Approval',
      '11. Stop old instance (only after approval)',
      'Spot guarding',
    ];
    const positions = headings.map((h) => text.indexOf(h));
    for (const [i, pos] of positions.entries())
      expect({ heading: headings[i], found: pos >= 0 }).toEqual({ heading: headings[i], found: true });
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });

  it('names the workflow and what the launch uses', () => {
    expect(text).toContain('Workflow id migrate-video-message-app.');
    expect(text).toContain('instance type: g4dn.xlarge; without capacity, then g4dn.2xlarge, g5.xlarge');
    expect(text).toMatch(/market: Spot; if no Spot capacity .* on-demand/);
    expect(text).toContain('subnets, tried in order: subnet-0123456789abcdef0');
    expect(text).toContain(
      'SSM parameter /aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id',
    );
    expect(text).toContain('root volume: 30 GiB gp3');
    expect(text).toContain('DryRun');
  });

  it('lists every remote command', () => {
    const plan = planWith();
    for (const command of [...plan.remote.setup, ...plan.remote.deploy, ...plan.remote.build, ...plan.remote.start]) {
      expect(lines).toContainEqual(
        expect.stringMatching(new RegExp(`^\\s+\\$ ${command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`)),
      );
    }
  });

  it('says how each service is checked', () => {
    expect(text).toContain('a failing check is tried again every 10s, up to 30 attempts');
    expect(text).toMatch(
      /backend\s+port 55433\s+public\s+GET http:\/\/<new instance public address>:55433\/health over HTTP, from outside/,
    );
    expect(text).toMatch(
      /frontend\s+port 55434\s+public\s+GET http:\/\/<new instance public address>:55434\/ over HTTP, from outside/,
    );
    expect(text).toMatch(
      /openvoice\s+port 8001\s+private\s+GET http:\/\/127\.0\.0\.1:8001\/health via SSM, on the instance/,
    );
    expect(text).toMatch(
      /voicevox\s+port 50021\s+private\s+GET http:\/\/127\.0\.0\.1:50021\/version via SSM, on the instance/,
    );
  });

  it('lists every rule that faces the internet, and no SSH warning when SSH stays closed', () => {
    expect(text).toContain('Rules that face the internet: 2');
    expect(lines).toContain('     - tcp 55433 from 0.0.0.0/0 (backend)');
    expect(lines).toContain('     - tcp 55434 from 0.0.0.0/0 (frontend)');
    expect(text).toContain('Private services get no rule: openvoice (port 8001), voicevox (port 50021).');
    expect(text).toContain('SSH (port 22) gets no rule');
    expect(text).not.toMatch(/WARNING/);
  });

  it('warns loudly when SSH is open to the whole internet', () => {
    const open = describePlan(
      planWith((p) => {
        p.ingress.adminCidrs = ['0.0.0.0/0'];
        p.ingress.allowSshFromAnywhere = true;
      }),
    );
    expect(open).toContain('Rules that face the internet: 3');
    expect(open).toContain('     - tcp 22 from 0.0.0.0/0 (SSH)');
    expect(open).toMatch(/^ *WARNING: SSH \(port 22\) WILL BE OPEN TO THE WHOLE INTERNET \(0\.0\.0\.0\/0\)/m);
  });

  it('lists a narrow SSH rule as facing the internet, without the warning', () => {
    const narrow = describePlan(planWith((p) => (p.ingress.adminCidrs = ['198.51.100.7/32', '10.0.0.0/8'])));
    expect(narrow).toContain('Rules that face the internet: 3');
    expect(narrow).toContain('     - tcp 22 from 198.51.100.7/32 (SSH)');
    expect(narrow).not.toContain('tcp 22 from 10.0.0.0/8 (SSH)\n');
    expect(narrow).toMatch(/tcp 22\s+from 10\.0\.0\.0\/8\s+SSH\s+private network/);
    expect(narrow).not.toMatch(/WARNING/);
  });

  it('covers the Elastic IP, the limits, the approval and the stop', () => {
    expect(text).toContain('eipalloc-0123456789abcdef0 moves from i-0123456789abcdef0 to the new instance');
    expect(text).toContain(
      '5 x GET http://<new instance public address>:55433/health (backend): avg, p50, p95, max; limits: average <= 50 ms',
    );
    expect(text).toContain('fails over 2 s');
    expect(text).toContain('waits up to 7d (7 days)');
    expect(text).toContain('who may approve: anyone');
    expect(text).toContain('AMI backup of i-0123456789abcdef0, then StopInstances; it is never terminated.');
    const approval = text.indexOf('Approval');
    expect(approval).toBeLessThan(text.indexOf('StopInstances'));
  });

  it('names the approvers and the p95 limit when set', () => {
    const t = describePlan(
      planWith((p) => {
        p.approval = { timeout: '2h', approvers: ['alice', 'bob'] };
        p.checks.latency.maxP95Ms = 120;
      }),
    );
    expect(t).toContain('who may approve: alice, bob');
    expect(t).toContain('waits up to 2h (2 hours)');
    expect(t).toContain('limits: average <= 50 ms, p95 <= 120 ms');
  });

  it('guards Spot only on Spot', () => {
    expect(text).toContain('spot-guardian-video-message-app watches the new instance');
    expect(text).toContain('spot-events-ap-northeast-1 polls instance state every 5s (5 seconds)');
    const onDemand = describePlan(planWith((p) => (p.target.market = 'on-demand')));
    expect(onDemand).not.toContain('Spot guarding');
    expect(onDemand).not.toContain('spot-guardian');
    expect(onDemand).toContain('market: on-demand');
  });

  it('shows the warm spare and its cost, from the price table, only with spot.standby: warm', () => {
    expect(text).not.toContain('Warm spare');
    const t = describePlan(
      planWith((p) => ((p.spot.standby = 'warm'), (p.spot.standbyCheckInterval = '2m'))),
      onDemandTable,
    );
    expect(t).toContain('Warm spare (spot.standby: warm)');
    expect(t).toContain('fully checked every 2m (2 minutes)');
    const perHour = onDemandTable.perHour('ap-northeast-1', 'g4dn.xlarge') as number;
    expect(t).toContain(
      `at most $${perHour.toFixed(3)}/h ($${(perHour * onDemandTable.hoursPerMonth).toFixed(0)} a month) for g4dn.xlarge`,
    );
  });

  it('names the event queue when there is one', () => {
    const t = describePlan(
      planWith(
        (p) => (p.spot.interruptionQueueUrl = 'https://sqs.ap-northeast-1.amazonaws.com/123456789012/spot-events'),
      ),
    );
    expect(t).toContain('reads Spot events from https://sqs.ap-northeast-1.amazonaws.com/123456789012/spot-events');
  });

  it('says when optional checks are skipped and when there are no commands', () => {
    const t = describePlan(
      planWith((p) => {
        delete p.checks.voiceClone;
        delete p.checks.latency;
        p.remote.build = [];
      }),
    );
    expect(t).toContain('skipped: checks.voiceClone is not set');
    expect(t).toContain('latency: skipped, checks.latency is not set');
    expect(t).toMatch(/4\. Docker image build\n\s+\(no commands\)/);
  });

  it('uses the configured host for checks from outside', () => {
    const t = describePlan(planWith((p) => (p.checks.host = 'app.example.com')));
    expect(t).toContain('GET http://app.example.com:55433/health over HTTP, from outside');
  });
});

describe('humanDuration', () => {
  it.each([
    ['7d', '7d (7 days)'],
    ['1h', '1h (1 hour)'],
    ['500ms', '500ms (500 milliseconds)'],
    ['90m', '90m (90 minutes)'],
    ['1d', '1d (1 day)'],
    ['1ms', '1ms (1 millisecond)'],
    ['1s', '1s (1 second)'],
  ])('%s', (value, expected) => expect(humanDuration(value)).toBe(expected));

  it.each(['10 m', '5x', '', '1.5h'])('leaves %j as it is written', (value) =>
    expect(humanDuration(value)).toBe(value),
  );
});

describe('describePlan of a minimal plan (AMI id, on-demand, one type, nothing optional)', () => {
  const text = describePlan(validatePlan(minimal()));
  const lines = text.split('\n');

  it('names the AMI in the preflight and in the launch', () => {
    expect(lines).toContain('   - image: AMI ami-0123456789abcdef0 exists');
    expect(lines).toContain('   - image: AMI ami-0123456789abcdef0');
    expect(text).not.toContain('SSM parameter');
  });

  it('says there are no fallback types, no Spot, no instance profile and no key pair', () => {
    expect(lines).toContain('   - instance type: g4dn.xlarge (no fallback types)');
    expect(lines).toContain('   - market: on-demand');
    expect(lines).toContain('   - instance profile: (none: the image must reach SSM another way)');
    expect(lines).toContain('   - key pair: (none: access through SSM)');
    expect(text).not.toMatch(/instance profile \S+ exists/);
    expect(text).not.toContain('Spot guarding');
  });

  it('opens nothing when the only service is private, and says so', () => {
    expect(lines).toContain('     (none)');
    expect(lines).toContain('   Rules that face the internet: 0');
    expect(lines).toContain('   Private services get no rule: web (port 8080).');
    expect(lines).toContain('   no public services: nothing to check from outside');
    expect(lines).toContain('   Other rules on the group are left as they are (ingress.revokeUnplanned: false).');
  });

  it('ends with the undo summary and one line end', () => {
    expect(text.endsWith('and i-0123456789abcdef0 keeps serving.\n')).toBe(true);
    expect(text.endsWith('\n\n')).toBe(false);
  });
});

describe('describePlan: launch, ingress and Spot details', () => {
  it('names the instance profile in the preflight and the launch', () => {
    const lines = describePlan(planWith()).split('\n');
    expect(lines).toContain(
      '   - instance profile video-message-app-ssm exists and may be passed (part of the DryRun)',
    );
    expect(lines).toContain('   - instance profile: video-message-app-ssm');
  });

  it('lists every subnet, in order, in the preflight and the launch', () => {
    const t = describePlan(
      planWith((p) => (p.target.subnetIds = ['subnet-0bbbbbbbbbbbbbbbb', 'subnet-0aaaaaaaaaaaaaaaa'])),
    );
    expect(t).toContain('   - subnets exist: subnet-0bbbbbbbbbbbbbbbb, subnet-0aaaaaaaaaaaaaaaa\n');
    expect(t).toContain('   - subnets, tried in order: subnet-0bbbbbbbbbbbbbbbb, subnet-0aaaaaaaaaaaaaaaa\n');
  });

  it('gives the Spot fallback and the replacement order in the order the launch tries them', () => {
    const plan = planWith();
    const lines = describePlan(plan).split('\n');
    expect(lines).toContain(
      '   - market: Spot; if no Spot capacity in any type or subnet, on-demand (g4dn.xlarge, g4dn.2xlarge, g5.xlarge)',
    );
    expect(lines).toContain(
      "   On an interruption or rebalance notice: replacement from the golden AMI in a Spot pool (g4dn.xlarge, g4dn.2xlarge, g5.xlarge × the planned subnets' zones), then on-demand,",
    );
    expect(lines).toContain(
      '   pools tried by Spot placement score, then price; the interrupted pool skipped for 3m (3 minutes);',
    );
    const choices = launchChoices(plan);
    const spotTypes = [...new Set(choices.filter((c) => c.market === 'spot').map((c) => c.instanceType))];
    const onDemandTypes = [...new Set(choices.filter((c) => c.market === 'on-demand').map((c) => c.instanceType))];
    expect(spotTypes).toEqual(['g4dn.xlarge', 'g4dn.2xlarge', 'g5.xlarge']);
    expect(onDemandTypes).toEqual(spotTypes);
    expect(choices.findIndex((c) => c.market === 'on-demand')).toBe(spotTypes.length * plan.target.subnetIds.length);
  });

  it('says how the guardian orders its pools and for how long it skips an interrupted one', () => {
    const pinned = describePlan(
      planWith((p) => {
        p.spot = { ...(p.spot as object), poolOrder: 'plan', avoidInterruptedPoolFor: '0s' };
      }),
    ).split('\n');
    expect(pinned).toContain('   pools tried in the plan order;');
    expect(describePlan(planWith()).split('\n')).toContain(
      '   On on-demand (no Spot capacity anywhere): Spot tried again every 1h (1 hour); the on-demand instance serves until a checked Spot one holds the Elastic IP.',
    );
    const never = describePlan(
      planWith((p) => {
        p.spot = { ...(p.spot as object), revertAfter: '0s' };
      }),
    );
    expect(never).toContain('   On on-demand (no Spot capacity anywhere): it stays there (spot.revertAfter is 0s).');
    const cheap = describePlan(
      planWith((p) => {
        p.spot = { ...(p.spot as object), poolOrder: 'price', avoidInterruptedPoolFor: '10m' };
      }),
    ).split('\n');
    expect(cheap).toContain('   pools tried cheapest first; the interrupted pool skipped for 10m (10 minutes);');
  });

  it('names the key pair, and notes an SSH rule without one', () => {
    const keyed = describePlan(
      planWith((p) => {
        p.target.keyName = 'ops-key';
        p.ingress.adminCidrs = ['198.51.100.7/32'];
      }),
    );
    expect(keyed.split('\n')).toContain('   - key pair: ops-key');
    expect(keyed).not.toContain('target.keyName is not set');
    const keyless = describePlan(planWith((p) => (p.ingress.adminCidrs = ['198.51.100.7/32'])));
    expect(keyless.split('\n')).toContain(
      '   Note: SSH is opened but target.keyName is not set, so no key pair is installed by the launch.',
    );
    expect(keyless).not.toContain('SSH (port 22) gets no rule');
    expect(describePlan(planWith())).not.toContain('target.keyName is not set');
  });

  it('says when rules the plan does not list are revoked', () => {
    const t = describePlan(planWith((p) => (p.ingress.revokeUnplanned = true)));
    expect(t.split('\n')).toContain('   Other rules on the group are revoked (ingress.revokeUnplanned: true).');
    expect(t).not.toContain('left as they are');
  });

  it.each([
    ['61s', true],
    ['2m', true],
    ['1m', false],
    ['60s', false],
  ])('notes a Spot poll interval over one minute: %s → %s', (pollInterval, noted) => {
    const t = describePlan(planWith((p) => (p.spot.pollInterval = pollInterval)));
    expect(t.includes('Note: a poll interval over 1m leaves little of the two-minute interruption warning.')).toBe(
      noted,
    );
  });
});
