/**
 * The account's vCPU quotas for the planned instance family, as Service Quotas reports them.
 * EC2 limits running instances per family in vCPUs, separately for on-demand and Spot and per
 * region; a new account often has 0 for G and VT. A launch over the quota fails with
 * VcpuLimitExceeded (on-demand) or MaxSpotInstanceCountExceeded (Spot), after preflight would
 * have said yes, so preflight reads the quota and what already runs against it.
 */
import { GetServiceQuotaCommand } from '@aws-sdk/client-service-quotas';
import type { EC2Client, Instance } from '@aws-sdk/client-ec2';
import { DescribeInstanceTypesCommand, type _InstanceType } from '@aws-sdk/client-ec2';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import { describeInstances } from '../aws/ec2';
import { STARTED_STATES } from '../shared/instance-states';

export interface VcpuQuota {
  /** The Service Quotas code (service `ec2`). */
  code: string;
  name: string;
  /** Instance types this quota counts. */
  family: RegExp;
}

/** The quotas of the families a GPU migration can plan, by market. */
export const VCPU_QUOTAS: Readonly<Record<'on-demand' | 'spot', readonly VcpuQuota[]>> = {
  'on-demand': [
    { code: 'L-DB2E81BA', name: 'Running On-Demand G and VT instances', family: /^(g|vt)\d/ },
    { code: 'L-417A185B', name: 'Running On-Demand P instances', family: /^p\d/ },
    {
      code: 'L-1216C47A',
      name: 'Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances',
      family: /^[acdhimrtz]\d/,
    },
  ],
  spot: [
    { code: 'L-3819A6DF', name: 'All G and VT Spot Instance Requests', family: /^(g|vt)\d/ },
    { code: 'L-7212CCBC', name: 'All P Spot Instance Requests', family: /^p\d/ },
    {
      code: 'L-34B43A08',
      name: 'All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests',
      family: /^[acdhimrtz]\d/,
    },
  ],
};

export function quotaOf(instanceType: string, market: 'on-demand' | 'spot'): VcpuQuota | undefined {
  return VCPU_QUOTAS[market].find((q) => q.family.test(instanceType));
}

export interface QuotaCheck {
  quota: VcpuQuota;
  /** The quota's value (vCPUs). */
  limit: number;
  /** vCPUs of running and pending instances the quota counts now. */
  inUse: number;
  /** vCPUs the run needs at once: the target, and with Spot one replacement beside it. */
  needed: number;
}

/**
 * Reads the quota `instanceType` falls under and what is in use against it. `vcpusOf` has the
 * vCPUs of the planned types (more are described when other types of the family run).
 */
export async function checkVcpuQuota(
  clients: AwsClients,
  region: string,
  instanceType: string,
  market: 'on-demand' | 'spot',
  vcpusOf: ReadonlyMap<string, number>,
): Promise<QuotaCheck | undefined> {
  const quota = quotaOf(instanceType, market);
  const vcpus = vcpusOf.get(instanceType);
  if (!quota || vcpus === undefined) return undefined;
  const out = await aws(`read the quota ${quota.code} (${quota.name})`, () =>
    clients.servicequotas(region).send(new GetServiceQuotaCommand({ ServiceCode: 'ec2', QuotaCode: quota.code })),
  );
  const limit = out.Quota?.Value ?? 0;
  const ec2 = clients.ec2(region);
  const running = (
    await describeInstances(ec2, 'count the vCPUs running against the quota', {
      Filters: [{ Name: 'instance-state-name', Values: [...STARTED_STATES] }],
    })
  ).filter((i) => quota.family.test(i.InstanceType ?? '') && (i.InstanceLifecycle === 'spot') === (market === 'spot'));
  const inUse = await sumVcpus(ec2, running, vcpusOf);
  return { quota, limit, inUse, needed: vcpus * (market === 'spot' ? 2 : 1) };
}

async function sumVcpus(ec2: EC2Client, instances: Instance[], known: ReadonlyMap<string, number>): Promise<number> {
  const vcpus = new Map(known);
  const unknown = [...new Set(instances.map((i) => i.InstanceType ?? ''))].filter((t) => t && !vcpus.has(t));
  if (unknown.length > 0) {
    const out = await aws('describe the instance types running against the quota', () =>
      ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: unknown as _InstanceType[] })),
    );
    for (const t of out.InstanceTypes ?? [])
      if (t.InstanceType) vcpus.set(t.InstanceType, t.VCpuInfo?.DefaultVCpus ?? 0);
  }
  return instances.reduce((sum, i) => sum + (vcpus.get(i.InstanceType ?? '') ?? 0), 0);
}
