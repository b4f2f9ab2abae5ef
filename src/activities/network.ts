import {
  AssociateAddressCommand,
  AuthorizeSecurityGroupIngressCommand,
  DescribeAddressesCommand,
  DescribeSecurityGroupsCommand,
  RevokeSecurityGroupIngressCommand,
  type IpPermission,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import { plannedIngress } from '../plan/ingress';
import type { AddressInfo, IngressResult, Rule } from '../shared/network';
import type { IngressPlan, PlanRef } from '../shared/plan-slices';
import { attempt } from './util';

const key = (r: Rule) => `${r.protocol}/${r.fromPort}-${r.toPort}/${r.cidr}`;

export const ruleDescription = (plan: Pick<PlanRef, 'name'>) => `ec2-gpu-migration:${plan.name}`;

/**
 * Every rule of a group's permissions: IPv4 ranges, IPv6 ranges (`::/0`) and prefix lists
 * (`pl-…` as the source): a rule that lets the internet in over IPv6 is as open as one over IPv4.
 */
export function rulesOf(perms: IpPermission[] | undefined): Rule[] {
  const out: Rule[] = [];
  for (const p of perms ?? []) {
    const base = { protocol: p.IpProtocol ?? '-1', fromPort: p.FromPort ?? -1, toPort: p.ToPort ?? -1 };
    const sources = [
      ...(p.IpRanges ?? []).map((r) => ({ cidr: r.CidrIp ?? '', description: r.Description })),
      ...(p.Ipv6Ranges ?? []).map((r) => ({ cidr: r.CidrIpv6 ?? '', description: r.Description })),
      ...(p.PrefixListIds ?? []).map((r) => ({ cidr: r.PrefixListId ?? '', description: r.Description })),
    ];
    for (const source of sources)
      out.push({ ...base, cidr: source.cidr, ...(source.description ? { description: source.description } : {}) });
  }
  return out;
}

/** The permission of one rule, with its source in the field AWS wants for its kind. */
export function permission(rule: Rule, withDescription = true): IpPermission {
  const description = withDescription && rule.description ? { Description: rule.description } : {};
  const source = rule.cidr.startsWith('pl-')
    ? { PrefixListIds: [{ PrefixListId: rule.cidr, ...description }] }
    : rule.cidr.includes(':')
      ? { Ipv6Ranges: [{ CidrIpv6: rule.cidr, ...description }] }
      : { IpRanges: [{ CidrIp: rule.cidr, ...description }] };
  return { IpProtocol: rule.protocol, FromPort: rule.fromPort, ToPort: rule.toPort, ...source };
}

export function createNetworkActivities(clients: AwsClients) {
  async function describeGroup(region: string, groupId: string): Promise<Rule[]> {
    const out = await aws(`describe security group ${groupId}`, () =>
      clients.ec2(region).send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] })),
    );
    const group = out.SecurityGroups?.[0];
    if (!group)
      throw ApplicationFailure.create({
        type: 'InvalidGroup.NotFound',
        message: `security group ${groupId} does not exist`,
        nonRetryable: true,
      });
    return rulesOf(group.IpPermissions);
  }

  async function authorize(region: string, groupId: string, rule: Rule): Promise<void> {
    try {
      await aws(`open ${key(rule)} on ${groupId}`, () =>
        clients
          .ec2(region)
          .send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [permission(rule)] })),
      );
    } catch (err) {
      // Added by a concurrent or earlier attempt: the rule is there, which is what we want.
      if (!(err instanceof ApplicationFailure && err.type === 'InvalidPermission.Duplicate')) throw err;
    }
  }

  /**
   * Revokes one rule. A rule that is not there is fine (a non-default VPC answers
   * InvalidPermission.NotFound; a default VPC answers success and lists it in
   * UnknownIpPermissions): `verifyGone` reads the group again to be sure.
   */
  async function revoke(region: string, groupId: string, rule: Rule): Promise<void> {
    try {
      await aws(`close ${key(rule)} on ${groupId}`, () =>
        clients
          .ec2(region)
          .send(new RevokeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: [permission(rule, false)] })),
      );
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === 'InvalidPermission.NotFound')) throw err;
    }
  }

  /** AWS says a revoke succeeded even when it revoked nothing: the group must no longer hold these. */
  async function verifyGone(region: string, groupId: string, rules: Rule[]): Promise<Rule[]> {
    const after = await describeGroup(region, groupId);
    const still = new Set(after.map(key));
    const left = rules.filter((r) => still.has(key(r)));
    if (left.length > 0) {
      throw ApplicationFailure.create({
        type: 'RevokeNotVerified',
        message: `security group ${groupId} still allows ${left.map(key).join(', ')} after revoking it`,
      });
    }
    return after;
  }

  /**
   * Phase 7: makes the first target security group's ingress match the plan. Rules we add carry
   * our description, so a retry or the rollback finds exactly what this plan added.
   */
  async function applyIngress(input: { plan: IngressPlan }): Promise<IngressResult> {
    const { plan } = input;
    const groupId = plan.target.securityGroupIds[0];
    const description = ruleDescription(plan);
    const planned: Rule[] = plannedIngress(plan).map((r) => ({
      protocol: 'tcp',
      fromPort: r.port,
      toPort: r.port,
      cidr: r.cidr,
      description,
    }));
    const before = await describeGroup(plan.region, groupId);
    const present = new Map(before.map((r) => [key(r), r]));
    const wanted = new Set(planned.map(key));

    for (const rule of planned) if (!present.has(key(rule))) await authorize(plan.region, groupId, rule);
    const unplanned = before.filter((r) => !wanted.has(key(r)));
    const revoked: Rule[] = [];
    if (plan.ingress.revokeUnplanned) {
      for (const rule of unplanned) {
        await revoke(plan.region, groupId, rule);
        revoked.push(rule);
      }
    }
    const final = plan.ingress.revokeUnplanned
      ? await verifyGone(plan.region, groupId, revoked)
      : await describeGroup(plan.region, groupId);
    const added = final.filter((r) => r.description === description && wanted.has(key(r)));
    return { groupId, planned, added, unplanned, revoked, final, attempt: attempt() };
  }

  /** Rollback of phase 7: revokes the rules this plan added and restores what it revoked. */
  async function undoIngress(input: {
    plan: IngressPlan;
    restore: Rule[];
  }): Promise<{ revoked: Rule[]; restored: Rule[] }> {
    const { plan } = input;
    const groupId = plan.target.securityGroupIds[0];
    const ours = (await describeGroup(plan.region, groupId)).filter((r) => r.description === ruleDescription(plan));
    for (const rule of ours) await revoke(plan.region, groupId, rule);
    await verifyGone(plan.region, groupId, ours);
    for (const rule of input.restore) await authorize(plan.region, groupId, rule);
    return { revoked: ours, restored: input.restore };
  }

  async function describeAddress(input: { region: string; allocationId: string }): Promise<AddressInfo> {
    const out = await aws(`describe Elastic IP ${input.allocationId}`, () =>
      clients.ec2(input.region).send(new DescribeAddressesCommand({ AllocationIds: [input.allocationId] })),
    );
    const a = out.Addresses?.[0];
    if (!a?.PublicIp)
      throw ApplicationFailure.create({
        type: 'InvalidAllocationID.NotFound',
        message: `Elastic IP ${input.allocationId} does not exist`,
        nonRetryable: true,
      });
    return {
      allocationId: input.allocationId,
      publicIp: a.PublicIp,
      instanceId: a.InstanceId,
      associationId: a.AssociationId,
    };
  }

  /**
   * Phase 9 (and its undo, and the guardian's move): puts the Elastic IP on `instanceId`, with
   * AllowReassociation (moto and older APIs refuse to move an associated address without it),
   * then reads it back to verify.
   */
  async function associateAddress(input: {
    region: string;
    allocationId: string;
    instanceId: string;
  }): Promise<AddressInfo & { previousInstanceId?: string; attempt: number }> {
    const before = await describeAddress(input);
    if (before.instanceId !== input.instanceId) {
      await aws(`move Elastic IP ${before.publicIp} to ${input.instanceId}`, () =>
        clients.ec2(input.region).send(
          new AssociateAddressCommand({
            AllocationId: input.allocationId,
            InstanceId: input.instanceId,
            AllowReassociation: true,
          }),
        ),
      );
    }
    const after = await describeAddress(input);
    if (after.instanceId !== input.instanceId) {
      throw ApplicationFailure.create({
        type: 'AssociationNotVerified',
        message: `Elastic IP ${after.publicIp} is on ${after.instanceId ?? 'nothing'}, not ${input.instanceId}`,
      });
    }
    return { ...after, previousInstanceId: before.instanceId, attempt: attempt() };
  }

  return {
    applyIngress,
    undoIngress,
    describeAddress,
    associateAddress,
    describeSecurityGroupRules: (i: { region: string; groupId: string }) => describeGroup(i.region, i.groupId),
  };
}
