/**
 * Idempotency keys: clientToken (EC2 ClientToken), and the tags and token a launch request
 * carries, by which a retried attempt finds what an earlier one launched.
 */
import { launchRequest, resourceTags } from '../../src/aws/ec2';
import { launchChoices, launchSpec, type LaunchInput } from '../../src/shared/launch';
import { clientToken } from '../../src/activities/util';
import { validatePlan } from '../../src/plan/load';
import type { Plan } from '../../src/plan/schema';
import { example, minimal } from '../fixtures/bad-plans';

const RUN_ID = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
/** The parts of a launch's token: workflow, run, step, round, type, subnet, market. */
const LAUNCH_PARTS = [
  'migrate-video-message-app',
  RUN_ID,
  'launch',
  '0',
  'g4dn.xlarge',
  'subnet-0123456789abcdef0',
  'spot',
] as const;

describe('clientToken', () => {
  it('is the parts joined by colons while that fits in 64 characters', () => {
    expect(clientToken('a', 'b')).toBe('a:b');
    expect(clientToken('launch')).toBe('launch');
    expect(clientToken('a', '', 'b')).toBe('a::b');
    const exactly64 = clientToken('a'.repeat(30), 'b'.repeat(33));
    expect(exactly64).toBe(`${'a'.repeat(30)}:${'b'.repeat(33)}`);
    expect(exactly64).toHaveLength(64);
  });

  it('is 64 characters when the joined parts are longer: their first 47, a dash and 16 hex digits', () => {
    const raw = LAUNCH_PARTS.join(':');
    expect(raw.length).toBeGreaterThan(64);
    const token = clientToken(...LAUNCH_PARTS);
    expect(token).toHaveLength(64);
    expect(token.slice(0, 48)).toBe(`${raw.slice(0, 47)}-`);
    expect(token.slice(48)).toMatch(/^[0-9a-f]{16}$/);
    expect(clientToken('x'.repeat(65))).toHaveLength(64);
    expect(clientToken('x'.repeat(5000))).toHaveLength(64);
  });

  // The token of a launch must be the same on every worker version: a retry that runs on a newer
  // worker replays the earlier attempt's RunInstances only with the very same token. The hex
  // part is 32-bit FNV-1a of the joined text from offset basis 0x811c9dc5, then from 0x01000193.
  it('is stable: long tokens have fixed values', () => {
    expect(clientToken(...LAUNCH_PARTS)).toBe('migrate-video-message-app:0f1e2d3c-4b5a-4968-87-515ef7da4e1430cc');
    expect(clientToken('x'.repeat(65))).toBe(`${'x'.repeat(47)}-b42b17877bee65f1`);
  });

  it('is the same for the same parts', () => {
    expect(clientToken(...[...LAUNCH_PARTS])).toBe(clientToken(...LAUNCH_PARTS));
    expect(clientToken('a', 'b')).toBe(clientToken('a', 'b'));
  });

  it('differs when any one part differs, also past the 47 characters that are kept', () => {
    const tokens = new Set([clientToken(...LAUNCH_PARTS)]);
    const changes = [
      'migrate-video-message-apq',
      RUN_ID.replace('f0', 'f1'),
      'replace-1',
      '1',
      'g5.xlarge',
      'subnet-0123456789abcdef1',
      'on-demand',
    ];
    changes.forEach((value, i) => {
      const parts: string[] = [...LAUNCH_PARTS];
      parts[i] = value;
      tokens.add(clientToken(...parts));
    });
    expect(tokens.size).toBe(LAUNCH_PARTS.length + 1);
  });

  it('keeps part boundaries apart', () => {
    expect(clientToken('ab', 'c')).not.toBe(clientToken('a', 'bc'));
    expect(clientToken('a', 'b')).not.toBe(clientToken('ab'));
    expect(clientToken('a', 'b')).not.toBe(clientToken('b', 'a'));
    expect(clientToken('a', '', 'b')).not.toBe(clientToken('a', 'b'));
    const long = 'p'.repeat(60);
    expect(clientToken(long, 'ab', 'c')).not.toBe(clientToken(long, 'a', 'bc'));
    expect(clientToken(long, 'ab', 'c')).not.toBe(clientToken(long, 'abc'));
  });

  it("tells every choice, round and run of a Spot plan's launches apart", () => {
    const plan = validatePlan(example());
    const data = example();
    data.target.subnetIds = ['subnet-0aaaaaaaaaaaaaaaa', 'subnet-0bbbbbbbbbbbbbbbb', 'subnet-0cccccccccccccccc'];
    const wide = validatePlan(data);
    const tokens: string[] = [];
    for (const p of [plan, wide])
      for (const runId of [RUN_ID, '', '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f'])
        for (const step of ['launch', 'replace-1'])
          for (const round of ['0', '1'])
            for (const c of launchChoices(p))
              tokens.push(clientToken('migrate-' + p.name, runId, step, round, c.instanceType, c.subnetId, c.market));
    // The first plan's subnet is not among the wide plan's three: no choice repeats across them.
    expect(tokens).toHaveLength((6 + 18) * 3 * 2 * 2);
    expect(new Set(tokens).size).toBe(tokens.length);
    for (const t of tokens) expect(t.length).toBeLessThanOrEqual(64);
  });
});

describe('resourceTags', () => {
  const plan: Plan = validatePlan(minimal());

  it("names the plan, workflow and step under the tool's tag keys, and a Name of plan and step", () => {
    expect(resourceTags(plan.name, 'migrate-app', 'launch')).toEqual([
      { Key: 'Name', Value: 'app-launch' },
      { Key: 'ec2-gpu-migration:plan', Value: 'app' },
      { Key: 'ec2-gpu-migration:workflow', Value: 'migrate-app' },
      { Key: 'ec2-gpu-migration:step', Value: 'launch' },
    ]);
  });

  it('adds extra tags after those', () => {
    expect(
      resourceTags(plan.name, 'spot-guardian-app', 'replace-2', { 'ec2-gpu-migration:run': 'r-1', team: 'ml' }),
    ).toEqual([
      { Key: 'Name', Value: 'app-replace-2' },
      { Key: 'ec2-gpu-migration:plan', Value: 'app' },
      { Key: 'ec2-gpu-migration:workflow', Value: 'spot-guardian-app' },
      { Key: 'ec2-gpu-migration:step', Value: 'replace-2' },
      { Key: 'ec2-gpu-migration:run', Value: 'r-1' },
      { Key: 'team', Value: 'ml' },
    ]);
  });
});

describe('the keys of a launch request', () => {
  const plan: Plan = validatePlan(minimal());
  const root = { deviceName: '/dev/xvda' };
  const [first] = launchChoices(plan);
  const input = (extra: Partial<LaunchInput> = {}): LaunchInput => ({
    spec: launchSpec(plan),
    workflowId: 'migrate-app',
    step: 'launch',
    imageId: 'ami-0123456789abcdef0',
    ...extra,
  });
  const tagsOf = (req: ReturnType<typeof launchRequest>, type: string) =>
    Object.fromEntries(
      (req.TagSpecifications ?? []).find((s) => s.ResourceType === type)?.Tags?.map((t) => [t.Key, t.Value]) ?? [],
    );

  it('carries the ClientToken it is given, and none without one (the DryRun)', () => {
    const token = clientToken('migrate-app', 'r-1', 'launch', '0', first.instanceType, first.subnetId, first.market);
    expect(launchRequest(input({ runId: 'r-1' }), first, root, token).ClientToken).toBe(token);
    expect(launchRequest(input({ runId: 'r-1' }), first, root)).not.toHaveProperty('ClientToken');
  });

  it('tags the instance and its volumes with the workflow, step and run it belongs to', () => {
    const req = launchRequest(input({ runId: 'r-1', step: 'replace-3' }), first, root);
    const identity = {
      Name: 'app-replace-3',
      'ec2-gpu-migration:plan': 'app',
      'ec2-gpu-migration:workflow': 'migrate-app',
      'ec2-gpu-migration:step': 'replace-3',
      'ec2-gpu-migration:run': 'r-1',
    };
    expect(tagsOf(req, 'instance')).toEqual(identity);
    expect(tagsOf(req, 'volume')).toEqual(identity);
  });

  it('puts extra tags on the instance only', () => {
    const req = launchRequest(input({ runId: 'r-1', tags: { 'ec2-gpu-migration:guarded': 'g-1' } }), first, root);
    expect(tagsOf(req, 'instance')['ec2-gpu-migration:guarded']).toBe('g-1');
    expect(tagsOf(req, 'volume')).not.toHaveProperty('ec2-gpu-migration:guarded');
  });

  it('has no run tag without a run id', () => {
    const req = launchRequest(input(), first, root);
    expect(tagsOf(req, 'instance')).not.toHaveProperty('ec2-gpu-migration:run');
    expect(tagsOf(req, 'volume')).not.toHaveProperty('ec2-gpu-migration:run');
    expect(tagsOf(req, 'instance')['ec2-gpu-migration:step']).toBe('launch');
  });
});
