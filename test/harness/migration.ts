/**
 * Driving a whole migration in a test: start it on a test worker, wait for a phase, decide,
 * and look at what is in (emulated) AWS afterwards.
 */
import {
  DescribeAddressesCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { AwsClients } from '../../src/aws/clients';
import type { Plan } from '../../src/plan/schema';
import { TAG_PLAN } from '../../src/shared/constants';
import {
  statusQuery,
  type MigrationInput,
  type MigrationPhase,
  type MigrationStatus,
} from '../../src/shared/migration';
import type { migrateToGpu } from '../../src/workflows';
import { PollGivesUp, pollUntil } from './net';
import { startMigrationRun } from '../../src/cli/start-run';

export async function startMigration(
  client: Client,
  taskQueue: string,
  plan: Plan,
  extra: Omit<MigrationInput, 'plan'> = {},
): Promise<WorkflowHandle<typeof migrateToGpu>> {
  // As the CLI starts it: with its search attributes, summary and details.
  const { handle } = await startMigrationRun(
    client,
    { plan, ...extra },
    { taskQueue, workflowExecutionTimeout: '10 minutes' },
  );
  return handle;
}

/** Waits until the status query reports `phase` (or one of them); fails if the run closes first. */
export async function waitForPhase(
  handle: WorkflowHandle,
  phase: MigrationPhase | MigrationPhase[],
  timeoutMs = 90_000,
): Promise<MigrationStatus> {
  const wanted = Array.isArray(phase) ? phase : [phase];
  let last: MigrationStatus | undefined;
  return pollUntil(
    `${handle.workflowId} reaching ${wanted.join('|')}`,
    async () => {
      last = await handle.query(statusQuery);
      if (wanted.includes(last.phase)) return last;
      if (['completed', 'rolled-back', 'failed'].includes(last.phase))
        throw new PollGivesUp(`ended in ${last.phase}: ${JSON.stringify(last.error)}`);
      return undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

export async function instancesOfPlan(clients: AwsClients, plan: Plan): Promise<Instance[]> {
  const out = await clients
    .ec2(plan.region)
    .send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG_PLAN}`, Values: [plan.name] }] }));
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

export async function instance(clients: AwsClients, region: string, instanceId: string): Promise<Instance> {
  const out = await clients.ec2(region).send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  const found = out.Reservations?.[0]?.Instances?.[0];
  if (!found) throw new Error(`no instance ${instanceId}`);
  return found;
}

export async function addressHolder(clients: AwsClients, plan: Plan): Promise<string | undefined> {
  const out = await clients
    .ec2(plan.region)
    .send(new DescribeAddressesCommand({ AllocationIds: [plan.elasticIp.allocationId] }));
  return out.Addresses?.[0]?.InstanceId;
}

export async function imagesOfPlan(clients: AwsClients, plan: Plan) {
  const out = await clients
    .ec2(plan.region)
    .send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: `tag:${TAG_PLAN}`, Values: [plan.name] }] }));
  return out.Images ?? [];
}

/** The group's ingress as sorted `tcp/port/cidr` strings. */
export async function ingressOf(clients: AwsClients, region: string, groupId: string): Promise<string[]> {
  const out = await clients.ec2(region).send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] }));
  return (out.SecurityGroups?.[0]?.IpPermissions ?? [])
    .flatMap((p) => (p.IpRanges ?? []).map((r) => `${p.IpProtocol}/${p.FromPort}/${r.CidrIp}`))
    .sort();
}

export const tagsOf = (i: Instance): Record<string, string> =>
  Object.fromEntries((i.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));

/** Instances of the plan that are not terminated. */
export async function aliveInstancesOfPlan(clients: AwsClients, plan: Plan): Promise<Instance[]> {
  return (await instancesOfPlan(clients, plan)).filter(
    (i) => i.State?.Name !== 'terminated' && i.State?.Name !== 'shutting-down',
  );
}
