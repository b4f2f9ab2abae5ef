/**
 * What the tool made for a plan that no longer serves, found by the tags every resource carries,
 * and its removal. Behind `migration cleanup --plan FILE [--apply]`.
 *
 * Never touched: the plan's source instance, the instance holding the Elastic IP, backup images,
 * the newest `spot.keepGoldenImages` golden images and their snapshots, any instance launched
 * more recently than `olderThanMs` (a migration or a Spot replacement may be using it), and the
 * warm spare of a guardian that still runs (or whose guardian cannot be asked).
 */
import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeAddressesCommand,
  DescribeImagesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  RevokeSecurityGroupIngressCommand,
  TerminateInstancesCommand,
  type Image,
} from '@aws-sdk/client-ec2';
import { describeInstances } from '../aws/ec2';
import type { Rule } from '../shared/network';
import { ruleDescription, rulesOf } from './network';
import type { Plan } from '../plan/schema';
import { TAG_GUARDED, TAG_PLAN, TAG_STEP } from '../shared/constants';
import type { AwsClients } from '../aws/clients';
import { KEPT_STATES } from '../shared/instance-states';

export type LeftoverKind = 'instance' | 'image' | 'snapshot' | 'rule';

export interface Leftover {
  kind: LeftoverKind;
  id: string;
  why: string;
  /** For a rule: the group and the rule. */
  groupId?: string;
  rule?: Rule;
}

export interface CleanupOptions {
  /** Instances launched more recently than this are left alone. */
  olderThanMs: number;
  now?: Date;
  /**
   * Whether the guardian of a warm spare runs: true or unknown (undefined) keeps the spare; only
   * a guardian known to have ended leaves its spare over. Without it every spare is kept.
   */
  guardianRuns?: (guardianId: string) => Promise<boolean | undefined>;
}

const stepOf = (tags: { Key?: string; Value?: string }[] | undefined) => tags?.find((t) => t.Key === TAG_STEP)?.Value;

export async function findLeftovers(clients: AwsClients, plan: Plan, options: CleanupOptions): Promise<Leftover[]> {
  const ec2 = clients.ec2(plan.region);
  const now = options.now ?? new Date();
  const out: Leftover[] = [];
  const planFilter = { Name: `tag:${TAG_PLAN}`, Values: [plan.name] };

  const address = (await ec2.send(new DescribeAddressesCommand({ AllocationIds: [plan.elasticIp.allocationId] })))
    .Addresses?.[0];
  const serving = address?.InstanceId;
  const instances = await describeInstances(ec2, `list the instances of ${plan.name}`, {
    Filters: [planFilter, { Name: 'instance-state-name', Values: [...KEPT_STATES] }],
  });
  for (const i of instances) {
    const id = i.InstanceId ?? '';
    if (id === plan.source.instanceId || id === serving) continue;
    const age = now.getTime() - (i.LaunchTime?.getTime() ?? now.getTime());
    if (age < options.olderThanMs) continue;
    const guardian = i.Tags?.find((t) => t.Key === TAG_GUARDED)?.Value;
    if (stepOf(i.Tags)?.startsWith('spare-') && guardian) {
      if ((await options.guardianRuns?.(guardian)) !== false) continue;
      out.push({ kind: 'instance', id, why: `${i.State?.Name} warm spare of ${guardian}, which no longer runs` });
      continue;
    }
    out.push({
      kind: 'instance',
      id,
      why: `${i.State?.Name} ${i.InstanceType} from step ${stepOf(i.Tags) ?? '?'}, not behind the Elastic IP`,
    });
  }

  const images = (await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [planFilter] }))).Images ?? [];
  const golden = images
    .filter((i) => stepOf(i.Tags) === 'golden' && i.State !== 'failed')
    .sort((a, b) => (b.CreationDate ?? '').localeCompare(a.CreationDate ?? ''));
  const keep = plan.spot.keepGoldenImages ?? 3;
  const kept: Image[] = [];
  for (const image of images) {
    const step = stepOf(image.Tags);
    const rank = golden.indexOf(image);
    if (image.State === 'failed')
      out.push({ kind: 'image', id: image.ImageId ?? '', why: `a failed ${step ?? ''} image` });
    else if (step === 'golden' && rank >= keep)
      out.push({
        kind: 'image',
        id: image.ImageId ?? '',
        why: `golden image ${rank + 1} of ${golden.length} (spot.keepGoldenImages: ${keep})`,
      });
    else kept.push(image);
  }
  const used = new Set(kept.flatMap((i) => (i.BlockDeviceMappings ?? []).map((m) => m.Ebs?.SnapshotId)));
  const snapshots =
    (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [planFilter] }))).Snapshots ?? [];
  for (const snap of snapshots) {
    if (!snap.SnapshotId || used.has(snap.SnapshotId)) continue;
    out.push({
      kind: 'snapshot',
      id: snap.SnapshotId,
      why: `${snap.VolumeSize ?? '?'} GiB snapshot of a ${stepOf(snap.Tags) ?? ''} image that is gone or goes`,
    });
  }

  // The plan's rules serve an instance of the plan behind the Elastic IP; with none there, they are left over.
  const planServes =
    serving !== undefined && instances.some((i) => i.InstanceId === serving) && serving !== plan.source.instanceId;
  if (!planServes) {
    const groupId = plan.target.securityGroupIds[0];
    const group = (await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] }))).SecurityGroups?.[0];
    for (const rule of rulesOf(group?.IpPermissions).filter((r) => r.description === ruleDescription(plan))) {
      out.push({
        kind: 'rule',
        id: `${groupId} ${rule.protocol}/${rule.fromPort} from ${rule.cidr}`,
        why: 'added for the plan, and no instance of the plan serves',
        groupId,
        rule,
      });
    }
  }
  return out;
}

/** Removes what `findLeftovers` found, instances first (their volumes go with them). */
export async function removeLeftovers(
  clients: AwsClients,
  plan: Plan,
  leftovers: Leftover[],
  report: (line: string) => void,
): Promise<void> {
  const ec2 = clients.ec2(plan.region);
  const of = (kind: LeftoverKind) => leftovers.filter((l) => l.kind === kind);
  const instances = of('instance').map((l) => l.id);
  if (instances.length) {
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: instances }));
    for (const id of instances) report(`terminated ${id}`);
  }
  for (const l of of('image')) {
    await ec2.send(new DeregisterImageCommand({ ImageId: l.id }));
    report(`deregistered ${l.id}`);
  }
  // The snapshots of the images just deregistered are free now: list them again.
  const again = of('image').length
    ? (await findLeftovers(clients, plan, { olderThanMs: Number.POSITIVE_INFINITY })).filter(
        (l) => l.kind === 'snapshot',
      )
    : [];
  const snapshots = [...new Set([...of('snapshot'), ...again].map((l) => l.id))];
  for (const id of snapshots) {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
    report(`deleted ${id}`);
  }
  for (const l of of('rule')) {
    if (!l.rule || !l.groupId) continue;
    await ec2.send(
      new RevokeSecurityGroupIngressCommand({
        GroupId: l.groupId,
        IpPermissions: [
          {
            IpProtocol: l.rule.protocol,
            FromPort: l.rule.fromPort,
            ToPort: l.rule.toPort,
            IpRanges: [{ CidrIp: l.rule.cidr }],
          },
        ],
      }),
    );
    report(`revoked ${l.id}`);
  }
}
