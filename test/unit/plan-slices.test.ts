// The slices of the plan the image, security-group and image-resolving activities take: each
// acts as the whole plan did, and the whole plan (a run from before) is still one of them.
import { join } from 'node:path';
import { ruleDescription } from '../../src/activities/network';
import { plannedIngress } from '../../src/plan/ingress';
import { loadPlanFile } from '../../src/plan/load';
import { imagePlan, ingressPlan, planRef, type IngressPlan } from '../../src/shared/plan-slices';

const reference = () => loadPlanFile(join(__dirname, '..', '..', 'examples', 'video-message-app.yaml'));

describe('plan slices', () => {
  it('the ingress slice plans the same rules and descriptions as the whole plan', async () => {
    const plan = await reference();
    const slice = ingressPlan(plan);
    expect(plannedIngress(slice)).toEqual(plannedIngress(plan));
    expect(plannedIngress(slice).length).toBeGreaterThan(0);
    expect(ruleDescription(slice)).toBe(ruleDescription(plan));
    expect(slice.target).toEqual({ securityGroupIds: plan.target.securityGroupIds });
    // A whole plan is an IngressPlan: what older runs scheduled still type-checks and runs.
    const old: IngressPlan = plan;
    expect(plannedIngress(old)).toEqual(plannedIngress(slice));
  });

  it('the image slices keep the name and region, and the image as the plan names it', async () => {
    const plan = await reference();
    expect(planRef(plan)).toEqual({ name: plan.name, region: plan.region });
    const byParameter = { ...plan, target: { ...plan.target, imageId: undefined, imageParameter: '/ami/dl' } };
    expect(imagePlan(byParameter)).toEqual({ ...planRef(plan), target: { imageParameter: '/ami/dl' } });
    const byId = { ...plan, target: { ...plan.target, imageId: 'ami-0123456789abcdef0', imageParameter: undefined } };
    expect(imagePlan(byId).target).toEqual({ imageId: 'ami-0123456789abcdef0' });
  });

  it('each slice is a fraction of the plan', async () => {
    const plan = await reference();
    const size = (v: unknown) => JSON.stringify(v).length;
    for (const slice of [planRef(plan), imagePlan(plan), ingressPlan(plan)])
      expect(size(slice)).toBeLessThan(size(plan) / 2);
  });
});
