/**
 * The slices of the plan that activities take, so an activity input carries what the activity
 * needs rather than the whole plan. Each is a part of the plan's own shape: an input that a run
 * from before the slices scheduled, with the whole plan, is one of them too. Pure: workflow code
 * imports this file.
 */
import type { Plan } from '../plan/schema';

/** What image look-ups and tags need: the plan's name and region. */
export type PlanRef = Pick<Plan, 'name' | 'region'>;

export function planRef(plan: Plan): PlanRef {
  return { name: plan.name, region: plan.region };
}

/** What the security-group activities need: the group, the public services and the ingress. */
export type IngressPlan = PlanRef &
  Pick<Plan, 'services' | 'ingress'> & { target: Pick<Plan['target'], 'securityGroupIds'> };

export function ingressPlan(plan: Plan): IngressPlan {
  return {
    ...planRef(plan),
    services: plan.services,
    ingress: plan.ingress,
    target: { securityGroupIds: plan.target.securityGroupIds },
  };
}

/** What resolving the image needs: the AMI id, or the SSM parameter that holds it. */
export type ImagePlan = PlanRef & { target: Pick<Plan['target'], 'imageId' | 'imageParameter'> };

export function imagePlan(plan: Plan): ImagePlan {
  const { imageId, imageParameter } = plan.target;
  return {
    ...planRef(plan),
    target: { ...(imageId ? { imageId } : {}), ...(imageParameter ? { imageParameter } : {}) },
  };
}
