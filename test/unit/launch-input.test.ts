// A launch takes its slice of the plan (the spec); a launch scheduled by a run from before the
// spec carries the whole plan and must launch exactly the same instance.
import { join } from 'node:path';
import { launchRequest } from '../../src/aws/ec2';
import { loadPlanFile, validatePlan } from '../../src/plan/load';
import {
  launchChoices,
  launchSpec,
  sliceLaunchInput,
  type LaunchInput,
  type PlanLaunchInput,
} from '../../src/shared/launch';
import { minimal } from '../fixtures/bad-plans';

const full = () => {
  const data = minimal() as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  data.target.market = 'spot';
  data.target.fallbackInstanceTypes = ['g5.xlarge'];
  data.target.subnetIds = ['subnet-0aaaaaaaaaaaaaaaa', 'subnet-0bbbbbbbbbbbbbbbb'];
  data.target.kmsKeyArn = 'arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  data.target.iamInstanceProfile = 'gpu-app';
  data.target.keyName = 'ops';
  return validatePlan(data);
};

describe('launch input', () => {
  const plan = full();
  const ids = { workflowId: 'migrate-app', runId: 'r-1', step: 'launch', imageId: 'ami-0123456789abcdef0' };
  const old: PlanLaunchInput = { ...ids, plan, tags: { team: 'ml' } };
  const sliced: LaunchInput = { ...ids, spec: launchSpec(plan), tags: { team: 'ml' } };

  it('reads an input with the whole plan as the same input with its spec', () => {
    expect(sliceLaunchInput(old)).toEqual(sliced);
    expect(sliceLaunchInput(sliced)).toBe(sliced);
  });

  it('builds the same RunInstances request from either shape, for every choice', () => {
    const root = { deviceName: '/dev/sda1' };
    expect(launchChoices(sliced.spec)).toEqual(launchChoices(plan));
    expect(launchChoices(plan)).toHaveLength(8);
    for (const choice of launchChoices(plan))
      expect(launchRequest(sliceLaunchInput(old), choice, root, 'token')).toEqual(
        launchRequest(sliced, choice, root, 'token'),
      );
  });

  it('carries what the request needs of the plan, and far less than the plan', () => {
    expect(sliced.spec).toMatchObject({
      region: plan.region,
      planName: plan.name,
      sourceInstanceId: plan.source.instanceId,
      securityGroupIds: plan.target.securityGroupIds,
      publicIp: true,
      rootVolume: plan.target.rootVolume,
      kmsKeyArn: plan.target.kmsKeyArn,
      iamInstanceProfile: 'gpu-app',
      keyName: 'ops',
    });
    expect(launchSpec({ ...plan, checks: { ...plan.checks, host: '203.0.113.7' } }).publicIp).toBe(false);
  });

  it("is a fraction of the reference plan's size", async () => {
    const reference = await loadPlanFile(join(__dirname, '..', '..', 'examples', 'video-message-app.yaml'));
    const spec = JSON.stringify(launchSpec(reference)).length;
    expect(spec).toBeLessThan(JSON.stringify(reference).length / 3);
  });
});
