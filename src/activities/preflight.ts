import {
  DescribeImagesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstanceTypesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  type _InstanceType,
  type Image,
} from '@aws-sdk/client-ec2';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { ApplicationFailure } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import type { Plan } from '../plan/schema';
import { ErrorType } from '../shared/errors';
import { describeInstances, instanceInfo, resolveImageId, rootOf } from '../aws/ec2';
import type { InstanceTypeFacts, PreflightResult } from '../shared/preflight';
import type { createNetworkActivities } from './network';
import { provePermissions } from './preflight-permissions';
import { attempt } from './util';
import { checkVcpuQuota, quotaOf } from './quotas';

type Network = ReturnType<typeof createNetworkActivities>;

/** Phase 0: checks the plan against AWS, collecting every problem before failing. */
export function createPreflight(clients: AwsClients, network: Network) {
  return async function preflight(input: { plan: Plan }): Promise<PreflightResult> {
    const { plan } = input;
    const ec2 = clients.ec2(plan.region);
    const problems: string[] = [];
    const warnings: string[] = [];
    // Missing resources are reported together, so one run of preflight shows them all.
    const collect = async <T>(what: string, work: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await work();
      } catch (err) {
        if (err instanceof ApplicationFailure && err.nonRetryable) {
          problems.push(`${what}: ${err.message}`);
          return undefined;
        }
        throw err;
      }
    };

    const [sourceInstance] =
      (await collect('source.instanceId', () =>
        describeInstances(ec2, 'describe the source instance', { InstanceIds: [plan.source.instanceId] }),
      )) ?? [];
    if (sourceInstance && sourceInstance.State?.Name !== 'running') {
      problems.push(
        `source.instanceId: ${plan.source.instanceId} is ${sourceInstance.State?.Name}, expected running (the old instance must be serving)`,
      );
    }
    const address = await collect('elasticIp.allocationId', () =>
      network.describeAddress({ region: plan.region, allocationId: plan.elasticIp.allocationId }),
    );
    if (address && address.instanceId !== plan.source.instanceId) {
      warnings.push(
        `the Elastic IP ${address.publicIp} is on ${address.instanceId ?? 'no instance'}, not on the source instance ${plan.source.instanceId}`,
      );
    }
    const subnetsOut = await collect('target.subnetIds', () =>
      aws('describe the target subnets', () =>
        ec2.send(new DescribeSubnetsCommand({ SubnetIds: plan.target.subnetIds })),
      ),
    );
    await collect('target.securityGroupIds', () =>
      aws('describe the target security groups', () =>
        ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: plan.target.securityGroupIds })),
      ),
    );
    const imageId = await collect(plan.target.imageId ? 'target.imageId' : 'target.imageParameter', () =>
      resolveImageId(clients, plan),
    );
    let imageName: string | undefined;
    let imageInfo: Image | undefined;
    if (imageId) {
      const images = await collect('target.imageId', () =>
        aws(`describe image ${imageId}`, () => ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))),
      );
      const image = images?.Images?.[0];
      if (images && !image) problems.push(`target.imageId: image ${imageId} does not exist`);
      else if (image && image.State !== 'available')
        problems.push(`target.imageId: image ${imageId} is ${image.State}, expected available`);
      imageName = image?.Name;
      imageInfo = image;
    }
    const types = [
      ...new Set([
        plan.target.instanceType,
        ...plan.target.fallbackInstanceTypes,
        ...(sourceInstance?.InstanceType ? [sourceInstance.InstanceType] : []),
      ]),
    ];
    const typesOut = await collect('target.instanceType', () =>
      aws('describe the target instance types', () =>
        ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: types as _InstanceType[] })),
      ),
    );
    const instanceTypes: InstanceTypeFacts[] = (typesOut?.InstanceTypes ?? []).map((t) => ({
      instanceType: t.InstanceType ?? '',
      vcpus: t.VCpuInfo?.DefaultVCpus,
      memoryMiB: t.MemoryInfo?.SizeInMiB,
      gpus: t.GpuInfo?.Gpus?.map((g) =>
        `${g.Count ?? 1}× ${g.Manufacturer ?? ''} ${g.Name ?? ''}`.replace(/\s+/g, ' ').trim(),
      ).join(', '),
    }));
    for (const t of instanceTypes)
      if (!t.gpus && t.instanceType !== sourceInstance?.InstanceType) warnings.push(`${t.instanceType} has no GPU`);

    // The public checks (connectivity, the Elastic IP switch, performance) are made from the worker.
    if (plan.services.some((x) => x.public) && !plan.ingress.publicCidrs.includes('0.0.0.0/0')) {
      warnings.push(
        `ingress.publicCidrs (${plan.ingress.publicCidrs.join(', ')}) does not cover the whole internet: the public checks come from the worker, so its public address must be inside one of them, or connectivity fails`,
      );
    }

    // The root volume cannot be smaller than the image's root snapshot (InvalidBlockDeviceMapping).
    const root = imageInfo ? rootOf(imageInfo) : undefined;
    if (root?.snapshotGiB !== undefined && plan.target.rootVolume.sizeGiB < root.snapshotGiB) {
      problems.push(
        `target.rootVolume.sizeGiB: ${plan.target.rootVolume.sizeGiB} GiB is smaller than the root snapshot of ${imageId} (${root.snapshotGiB} GiB); set it to at least ${root.snapshotGiB}`,
      );
    }

    // Each planned type must be offered in one of the planned zones; a zone without it is skipped.
    const zones = [
      ...new Set((subnetsOut?.Subnets ?? []).map((x) => x.AvailabilityZone).filter((z): z is string => Boolean(z))),
    ];
    const planned = [plan.target.instanceType, ...plan.target.fallbackInstanceTypes];
    let offered: Set<string> | undefined;
    if (zones.length > 0) {
      const offerings = await collect('target.instanceType', () =>
        aws('read where the planned instance types are offered', () =>
          ec2.send(
            new DescribeInstanceTypeOfferingsCommand({
              LocationType: 'availability-zone',
              Filters: [
                { Name: 'instance-type', Values: planned },
                { Name: 'location', Values: zones },
              ],
            }),
          ),
        ),
      );
      if (offerings) {
        const known = new Set((offerings.InstanceTypeOfferings ?? []).map((o) => `${o.InstanceType}@${o.Location}`));
        offered = known;
        for (const [i, type] of planned.entries()) {
          const where = zones.filter((z) => known.has(`${type}@${z}`));
          const field = i === 0 ? 'target.instanceType' : `target.fallbackInstanceTypes[${i - 1}]`;
          if (where.length === 0)
            problems.push(
              `${field}: ${type} is not offered in any planned zone (${zones.join(', ')}); choose subnets in zones that offer it`,
            );
          else if (where.length < zones.length)
            warnings.push(
              `${type} is not offered in ${zones.filter((z) => !where.includes(z)).join(', ')}: launches skip those subnets for it`,
            );
        }
      }
    }

    // The family's vCPU quota must hold the target (and, on Spot, one replacement beside it)
    // on top of what already runs; over it, the launch fails after all the checks said yes.
    const vcpusOf = new Map(
      instanceTypes.filter((t) => t.vcpus !== undefined).map((t) => [t.instanceType, t.vcpus as number]),
    );
    const quota = await collect('target.instanceType', () =>
      checkVcpuQuota(clients, plan.region, plan.target.instanceType, plan.target.market, vcpusOf),
    );
    if (quota && quota.inUse + quota.needed > quota.limit) {
      const want = quota.inUse + quota.needed;
      problems.push(
        `target.instanceType: ${plan.target.instanceType} needs ${quota.needed} vCPUs of the quota "${quota.quota.name}" (${quota.quota.code}) in ${plan.region}${plan.target.market === 'spot' ? ' (the instance and one replacement)' : ''}, ` +
          `and ${quota.inUse} of its ${quota.limit} are in use; ask for ${want}: aws service-quotas request-service-quota-increase --region ${plan.region} --service-code ec2 --quota-code ${quota.quota.code} --desired-value ${want}`,
      );
    } else if (quota) {
      const largest = Math.max(
        ...plan.target.fallbackInstanceTypes
          .filter((t) => quotaOf(t, plan.target.market)?.code === quota.quota.code)
          .map((t) => vcpusOf.get(t) ?? 0),
        0,
      );
      const needed = largest * (plan.target.market === 'spot' ? 2 : 1);
      if (quota.inUse + needed > quota.limit)
        warnings.push(
          `the quota ${quota.quota.code} (${quota.limit} vCPUs, ${quota.inUse} in use) does not hold the largest fallback type: a launch that falls back to it can fail`,
        );
    }

    // The interruption queue: there, and readable by the worker. A receive that hides nothing
    // (visibility timeout 0) proves both; SQS has no DryRun.
    const queueUrl = plan.spot.interruptionQueueUrl;
    if (plan.target.market === 'spot' && queueUrl) {
      await collect('spot.interruptionQueueUrl', () =>
        aws(`read the interruption queue ${queueUrl}`, () =>
          clients.sqs(plan.region).send(
            new ReceiveMessageCommand({
              QueueUrl: queueUrl,
              MaxNumberOfMessages: 1,
              VisibilityTimeout: 0,
              WaitTimeSeconds: 0,
            }),
          ),
        ),
      );
    }

    if (problems.length > 0) {
      throw ApplicationFailure.create({
        type: ErrorType.PreflightFailed,
        message: `the plan does not match AWS:\n- ${problems.join('\n- ')}`,
        nonRetryable: true,
        details: [problems],
      });
    }

    // The first subnet whose zone offers the type, as the launch would reach it.
    const zoneOf = new Map((subnetsOut?.Subnets ?? []).map((x) => [x.SubnetId ?? '', x.AvailabilityZone ?? '']));
    const subnetId =
      plan.target.subnetIds.find((id) => !offered || offered.has(`${plan.target.instanceType}@${zoneOf.get(id)}`)) ??
      plan.target.subnetIds[0];
    const proved = await provePermissions(ec2, plan, {
      imageId: imageId ?? '',
      root: root ?? { deviceName: '/dev/xvda' },
      subnetId,
    });
    problems.push(...proved.problems);
    warnings.push(...proved.warnings);
    if (problems.length > 0) {
      const unauthorized = problems.every((p) => p.startsWith('IAM:'));
      throw ApplicationFailure.create({
        type: unauthorized ? 'UnauthorizedOperation' : ErrorType.PreflightFailed,
        message: `${unauthorized ? 'missing IAM permissions' : 'AWS refuses the planned calls'}:\n- ${problems.join('\n- ')}`,
        nonRetryable: true,
        details: [problems],
      });
    }

    return {
      source: instanceInfo(sourceInstance!),
      address: address!,
      imageId: imageId!,
      imageName,
      subnets: (subnetsOut?.Subnets ?? []).map((s) => ({
        subnetId: s.SubnetId ?? '',
        availabilityZone: s.AvailabilityZone,
      })),
      instanceTypes,
      permissions: proved.permissions,
      warnings,
      attempt: attempt(),
    };
  };
}
