/**
 * launchChoices: the (instance type, subnet, market) choices a launch tries and their order; and
 * the market, subnet, volume and address settings of the RunInstances request each choice sends.
 */
import { launchRequest } from '../../src/aws/ec2';
import { launchChoices, launchSpec, type LaunchChoice, type LaunchInput } from '../../src/shared/launch';
import { validatePlan } from '../../src/plan/load';
import type { Plan } from '../../src/plan/schema';
import { minimal, type PlanData } from '../fixtures/bad-plans';

const A = 'subnet-0aaaaaaaaaaaaaaaa';
const B = 'subnet-0bbbbbbbbbbbbbbbb';
const C = 'subnet-0cccccccccccccccc';

const planWith = (edit: (p: PlanData) => void = () => undefined): Plan => {
  const data = minimal();
  edit(data);
  return validatePlan(data);
};

const choice = (instanceType: string, subnetId: string, market: LaunchChoice['market']): LaunchChoice => ({
  instanceType,
  subnetId,
  market,
});

describe('launchChoices', () => {
  it('is the one on-demand choice for a plan with one type, one subnet and the default market', () => {
    expect(launchChoices(planWith())).toEqual([choice('g4dn.xlarge', 'subnet-0123456789abcdef0', 'on-demand')]);
  });

  it('tries every subnet of a type before the next type, the plan type first, fallbacks in order', () => {
    const plan = planWith((p) => {
      p.target.fallbackInstanceTypes = ['g5.xlarge', 'g4dn.2xlarge'];
      p.target.subnetIds = [B, A];
    });
    expect(launchChoices(plan)).toEqual([
      choice('g4dn.xlarge', B, 'on-demand'),
      choice('g4dn.xlarge', A, 'on-demand'),
      choice('g5.xlarge', B, 'on-demand'),
      choice('g5.xlarge', A, 'on-demand'),
      choice('g4dn.2xlarge', B, 'on-demand'),
      choice('g4dn.2xlarge', A, 'on-demand'),
    ]);
  });

  it('never offers Spot for an on-demand plan', () => {
    const plan = planWith((p) => {
      p.target.market = 'on-demand';
      p.target.fallbackInstanceTypes = ['g5.xlarge'];
      p.target.subnetIds = [A, B, C];
    });
    const choices = launchChoices(plan);
    expect(choices).toHaveLength(6);
    expect(choices.filter((c) => c.market !== 'on-demand')).toEqual([]);
  });

  it('on Spot, tries every type and subnet on Spot before any on-demand choice, in the same order', () => {
    const plan = planWith((p) => {
      p.target.market = 'spot';
      p.target.fallbackInstanceTypes = ['g5.xlarge'];
      p.target.subnetIds = [A, B];
    });
    expect(launchChoices(plan)).toEqual([
      choice('g4dn.xlarge', A, 'spot'),
      choice('g4dn.xlarge', B, 'spot'),
      choice('g5.xlarge', A, 'spot'),
      choice('g5.xlarge', B, 'spot'),
      choice('g4dn.xlarge', A, 'on-demand'),
      choice('g4dn.xlarge', B, 'on-demand'),
      choice('g5.xlarge', A, 'on-demand'),
      choice('g5.xlarge', B, 'on-demand'),
    ]);
  });

  it('falls back from Spot to on-demand even with one type and one subnet', () => {
    const plan = planWith((p) => (p.target.market = 'spot'));
    expect(launchChoices(plan)).toEqual([
      choice('g4dn.xlarge', 'subnet-0123456789abcdef0', 'spot'),
      choice('g4dn.xlarge', 'subnet-0123456789abcdef0', 'on-demand'),
    ]);
  });

  it('gives each choice once for a valid plan, and leaves the plan as it was', () => {
    const plan = planWith((p) => {
      p.target.market = 'spot';
      p.target.fallbackInstanceTypes = ['g5.xlarge', 'g6.xlarge'];
      p.target.subnetIds = [A, B, C];
    });
    const before = JSON.stringify(plan);
    const choices = launchChoices(plan);
    expect(choices).toHaveLength(3 * 3 * 2);
    expect(new Set(choices.map((c) => `${c.instanceType}/${c.subnetId}/${c.market}`)).size).toBe(choices.length);
    expect(JSON.stringify(plan)).toBe(before);
    expect(launchChoices(plan)).toEqual(choices);
  });
});

describe('launchRequest for a choice', () => {
  const root = { deviceName: '/dev/sda1' };
  const inputFor = (plan: Plan): LaunchInput => ({
    spec: launchSpec(plan),
    workflowId: 'migrate-app',
    runId: 'run-1',
    step: 'launch',
    imageId: 'ami-0123456789abcdef0',
  });

  it('asks for a one-time Spot instance that terminates on interruption only for a Spot choice', () => {
    const plan = planWith((p) => (p.target.market = 'spot'));
    const [spot, onDemand] = launchChoices(plan);
    expect(launchRequest(inputFor(plan), spot, root).InstanceMarketOptions).toEqual({
      MarketType: 'spot',
      SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' },
    });
    expect(launchRequest(inputFor(plan), onDemand, root)).not.toHaveProperty('InstanceMarketOptions');
  });

  it("launches the choice's type in the choice's subnet with the plan's groups, one instance", () => {
    const plan = planWith((p) => (p.target.securityGroupIds = ['sg-0aaaaaaaaaaaaaaaa', 'sg-0bbbbbbbbbbbbbbbb']));
    const req = launchRequest(inputFor(plan), choice('g5.xlarge', B, 'on-demand'), root);
    expect(req.InstanceType).toBe('g5.xlarge');
    expect(req.ImageId).toBe('ami-0123456789abcdef0');
    expect([req.MinCount, req.MaxCount]).toEqual([1, 1]);
    expect(req.NetworkInterfaces).toEqual([
      {
        DeviceIndex: 0,
        SubnetId: B,
        Groups: ['sg-0aaaaaaaaaaaaaaaa', 'sg-0bbbbbbbbbbbbbbbb'],
        DeleteOnTermination: true,
        AssociatePublicIpAddress: true,
      },
    ]);
    expect(req).not.toHaveProperty('SubnetId');
    expect(req).not.toHaveProperty('SecurityGroupIds');
  });

  it('asks for a public address only while the checks connect to the instance itself (checks.host: auto)', () => {
    const plan = planWith((p) => (p.checks = { host: 'app.example.com' }));
    const [only] = launchChoices(plan);
    expect(launchRequest(inputFor(plan), only, root).NetworkInterfaces?.[0]).not.toHaveProperty(
      'AssociatePublicIpAddress',
    );
  });

  it("encrypts the root volume on the image's root device, with the plan's KMS key when it names one", () => {
    const kms = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const plain = planWith((p) => (p.target.rootVolume = { sizeGiB: 100, type: 'io2' }));
    const withKey = planWith((p) => (p.target.kmsKeyArn = kms));
    const [a] = launchChoices(plain);
    expect(launchRequest(inputFor(plain), a, root).BlockDeviceMappings).toEqual([
      {
        DeviceName: '/dev/sda1',
        Ebs: { VolumeSize: 100, VolumeType: 'io2', DeleteOnTermination: true, Encrypted: true },
      },
    ]);
    const [b] = launchChoices(withKey);
    expect(launchRequest(inputFor(withKey), b, root).BlockDeviceMappings?.[0].Ebs).toEqual({
      VolumeSize: 30,
      VolumeType: 'gp3',
      DeleteOnTermination: true,
      Encrypted: true,
      KmsKeyId: kms,
    });
  });

  it('names the instance profile and key pair only when the plan sets them', () => {
    const bare = planWith();
    const full = planWith((p) => {
      p.target.iamInstanceProfile = 'app-ssm';
      p.target.keyName = 'ops-key';
    });
    const bareReq = launchRequest(inputFor(bare), launchChoices(bare)[0], root);
    expect(bareReq).not.toHaveProperty('IamInstanceProfile');
    expect(bareReq).not.toHaveProperty('KeyName');
    const fullReq = launchRequest(inputFor(full), launchChoices(full)[0], root);
    expect(fullReq.IamInstanceProfile).toEqual({ Name: 'app-ssm' });
    expect(fullReq.KeyName).toBe('ops-key');
  });
});
