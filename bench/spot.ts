/**
 * Guarded services without a migration: instances launched in moto by the benchmark, the
 * Elastic IP on one of them, the app started there, and spotGuardian started directly, as the
 * migration would start it after its cut-over.
 */
import { AssociateAddressCommand, RunInstancesCommand, type _InstanceType } from '@aws-sdk/client-ec2';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { WorkflowContinuedAsNewError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Plan } from '../src/plan/schema';
import { guardianWorkflowId } from '../src/shared/constants';
import { routerStatusQuery, type RouterStatus } from '../src/shared/spot';
import type { spotGuardian } from '../src/workflows';
import {
  openPlannedIngress,
  seedSource,
  tagForPlan,
  testPlan,
  type PlanOverrides,
  type SeededSource,
} from '../test/harness/seed';
import { pollUntil } from '../test/harness/net';
import { spotEvent } from '../test/harness/spot';
import type { Account } from './stack';

/** Launches `count` running Spot instances like the migration's target (in batches of 100). */
export async function launchInstances(
  account: Account,
  seeded: SeededSource,
  count: number,
  instanceType = 'g4dn.xlarge',
): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < count) {
    const n = Math.min(100, count - ids.length);
    const out = await account.direct.ec2(account.region).send(
      new RunInstancesCommand({
        ImageId: seeded.imageId,
        InstanceType: instanceType as _InstanceType,
        MinCount: n,
        MaxCount: n,
        SubnetId: seeded.subnetId,
        SecurityGroupIds: [seeded.securityGroupId],
        InstanceMarketOptions: {
          MarketType: 'spot',
          SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' },
        },
      }),
    );
    for (const i of out.Instances ?? []) if (i.InstanceId) ids.push(i.InstanceId);
  }
  return ids;
}

export interface GuardedService {
  seeded: SeededSource;
  plan: Plan;
  instanceId: string;
  guardianId: string;
}

/**
 * The state right after a Spot migration: a seeded source, a Spot instance that runs the app and
 * holds the Elastic IP, and a plan for it. The guardian is not started yet.
 */
export async function guardedService(account: Account, overrides: PlanOverrides): Promise<GuardedService> {
  const seeded = {
    ...(await seedSource(account.direct, { region: account.region, world: account.world })),
    grant: (p: Plan) => account.proxy.grantPlan(p),
  };
  const plan = testPlan(seeded, account.world.ports, {
    ...overrides,
    target: { market: 'spot', ...(overrides.target ?? {}) },
  });
  // As the migration would have left it: the public ports open on the target group.
  await openPlannedIngress(account.direct, plan);
  const [instanceId] = await launchInstances(account, seeded, 1);
  // As the migration's launch would have tagged it.
  await tagForPlan(account.direct, plan, [instanceId]);
  await account.direct.ec2(account.region).send(
    new AssociateAddressCommand({
      AllocationId: seeded.allocationId,
      InstanceId: instanceId,
      AllowReassociation: true,
    }),
  );
  account.world.markStarted(instanceId);
  return { seeded, plan, instanceId, guardianId: guardianWorkflowId(plan.name) };
}

export async function startGuardian(
  client: Client,
  taskQueue: string,
  plan: Plan,
  instanceId: string,
  goldenImageId: string,
): Promise<WorkflowHandle<typeof spotGuardian>> {
  return client.workflow.start<typeof spotGuardian>('spotGuardian', {
    taskQueue,
    workflowId: guardianWorkflowId(plan.name),
    args: [{ plan, instanceId, goldenImageId }],
  });
}

/** Resolves with the next run's id when the given run continues as new. */
export async function nextRun(client: Client, workflowId: string, runId: string): Promise<string> {
  try {
    await client.workflow.getHandle(workflowId, runId, { followRuns: false }).result();
  } catch (err) {
    if (err instanceof WorkflowContinuedAsNewError) return err.newExecutionRunId;
    throw err;
  }
  throw new Error(`${workflowId} run ${runId} ended instead of continuing as new`);
}

/** Puts an EventBridge event on the queue, with its `time` set to `at`. */
export async function putSpotEvent(
  account: Account,
  queueUrl: string,
  kind: 'interruption' | 'rebalance',
  instanceId: string,
  at: number,
): Promise<void> {
  const event = JSON.parse(spotEvent(kind, instanceId, account.region)) as Record<string, unknown>;
  event.time = new Date(at).toISOString();
  await account.direct
    .sqs(account.region)
    .send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(event) }));
}

/**
 * A query that a busy worker may answer late (a query waits for the workflow's worker): tried
 * again, half a second apart, until `timeoutMs` has passed.
 */
export function patientQuery<T>(what: string, query: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  return pollUntil(what, query, { timeoutMs, intervalMs: 500 });
}

/** The router's status, patiently. */
export function routerStatusOf(router: WorkflowHandle): Promise<RouterStatus> {
  return patientQuery(`${router.workflowId} status`, () => router.query(routerStatusQuery));
}

/** Current run id of a workflow. */
export async function currentRunId(client: Client, workflowId: string): Promise<string> {
  const d = await client.workflow.getHandle(workflowId).describe();
  return d.runId;
}
