/**
 * What preflight proves about permissions without side effects: each call the run will make
 * (the launch request itself, stopping and imaging the source, the planned ingress, the Elastic
 * IP) sent with DryRun, which answers DryRunOperation when the caller may act.
 */
import {
  AssociateAddressCommand,
  AuthorizeSecurityGroupIngressCommand,
  CreateImageCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { launchRequest, type ImageRoot } from '../aws/ec2';
import { plannedIngress } from '../plan/ingress';
import type { Plan } from '../plan/schema';
import { migrationWorkflowId } from '../shared/constants';
import { isPermanentAwsError } from '../shared/errors';
import { launchSpec } from '../shared/launch';
import { imageRequest } from './images';
import { permission, ruleDescription } from './network';

export interface PermissionProof {
  /** What DryRun proved we may do. */
  permissions: string[];
  /** Refusals: IAM ones start with `IAM:`. */
  problems: string[];
  warnings: string[];
}

/** DryRuns the run's calls; `launch` is the request's first choice, as the launch would reach it. */
export async function provePermissions(
  ec2: EC2Client,
  plan: Plan,
  launch: { imageId: string; root: ImageRoot; subnetId: string },
): Promise<PermissionProof> {
  const permissions: string[] = [];
  const problems: string[] = [];
  const warnings: string[] = [];
  // Permission, without side effects: DryRun answers DryRunOperation when we may act.
  const dryRun = async (what: string, send: () => Promise<unknown>) => {
    try {
      await send();
      warnings.push(`${what}: DryRun did not answer DryRunOperation`);
    } catch (err) {
      const code = (err as Error).name;
      if (code === 'DryRunOperation') permissions.push(what);
      else if (code === 'UnauthorizedOperation') problems.push(`IAM: not allowed to ${what}`);
      else if (isPermanentAwsError(code, (err as Error).message))
        problems.push(`${what}: DryRun answered ${code}: ${(err as Error).message}`);
      else warnings.push(`${what}: DryRun answered ${code}`);
    }
  };
  // The launch request exactly as the launch builds it (tags, market, volumes, metadata
  // options): DryRun evaluates IAM and SCP conditions on what is sent.
  const firstChoice = { instanceType: plan.target.instanceType, subnetId: launch.subnetId, market: plan.target.market };
  const workflowId = migrationWorkflowId(plan.name);
  const request = launchRequest(
    { spec: launchSpec(plan), workflowId, step: 'launch', imageId: launch.imageId },
    firstChoice,
    launch.root,
  );
  await dryRun(`ec2:RunInstances (${plan.target.market})`, () =>
    ec2.send(new RunInstancesCommand({ ...request, DryRun: true })),
  );
  await dryRun('ec2:StopInstances (source)', () =>
    ec2.send(new StopInstancesCommand({ DryRun: true, InstanceIds: [plan.source.instanceId] })),
  );
  // The backup image, tagged as stop-old tags it: a missing ec2:CreateImage would otherwise
  // show only after a person approved.
  await dryRun('ec2:CreateImage (backup of the source)', () =>
    ec2.send(
      new CreateImageCommand({
        ...imageRequest(plan, workflowId, 'backup', plan.source.instanceId, `${plan.name}-backup-preflight`),
        DryRun: true,
      }),
    ),
  );
  const [firstRule] = plannedIngress(plan);
  if (firstRule) {
    await dryRun('ec2:AuthorizeSecurityGroupIngress', () =>
      ec2.send(
        new AuthorizeSecurityGroupIngressCommand({
          DryRun: true,
          GroupId: plan.target.securityGroupIds[0],
          IpPermissions: [
            permission({
              protocol: 'tcp',
              fromPort: firstRule.port,
              toPort: firstRule.port,
              cidr: firstRule.cidr,
              description: ruleDescription(plan),
            }),
          ],
        }),
      ),
    );
  }
  await dryRun('ec2:AssociateAddress', () =>
    ec2.send(
      new AssociateAddressCommand({
        DryRun: true,
        AllocationId: plan.elasticIp.allocationId,
        InstanceId: plan.source.instanceId,
        AllowReassociation: true,
      }),
    ),
  );
  return { permissions, problems, warnings };
}
