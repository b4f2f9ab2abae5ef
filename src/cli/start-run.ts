/**
 * Starting a migration run the way the Web UI lists it: with its search attributes (its phase
 * and plan) and a static summary and details. On a namespace where the attributes are not
 * registered the run starts without them, and the caller is told how to register them: the run
 * then never sets them (see `MigrationRun`).
 */
import { isGrpcServiceError, type Client, type WorkflowHandle, type WorkflowStartOptions } from '@temporalio/client';
import type { Plan } from '../plan/schema';
import { migrationWorkflowId } from '../shared/constants';
import type { MigrationInput } from '../shared/migration';
import { migrationAttributes, registerCommand } from '../shared/search-attributes';
import type { migrateToGpu } from '../workflows';

/** One line for the Web UI's list: plan, source → target type, market, region. */
export function migrationSummary(plan: Plan): string {
  return `${plan.name}: ${plan.source.instanceId} → ${plan.target.instanceType} (${plan.target.market}), ${plan.region}`;
}

/** The run's fixed details (Markdown): what the plan moves where, and who decides. */
export function migrationDetails(plan: Plan): string {
  const rows: [string, string][] = [
    ['plan', plan.name],
    ['region', plan.region],
    ['source', `\`${plan.source.instanceId}\``],
    [
      'target',
      `${[plan.target.instanceType, ...(plan.target.fallbackInstanceTypes ?? [])].join(', ')} (${plan.target.market})`,
    ],
    ['Elastic IP', `\`${plan.elasticIp.allocationId}\``],
    ['services', plan.services.map((s) => `${s.name} :${s.port}`).join(', ')],
    [
      'approval',
      `within ${plan.approval.timeout}${plan.approval.approvers?.length ? ` by ${plan.approval.approvers.join(', ')}` : ''}`,
    ],
  ];
  return `| | |\n|---|---|\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}`;
}

export interface StartedRun {
  handle: WorkflowHandle<typeof migrateToGpu>;
  /** Set when the namespace lacks the search attributes: the run started without them. */
  unindexed?: string;
}

/** True for the server's refusal of search attributes the namespace does not know. */
export function isUnknownSearchAttribute(err: unknown): boolean {
  const cause = (err as { cause?: unknown })?.cause ?? err;
  return (
    isGrpcServiceError(cause) &&
    cause.code === 3 && // INVALID_ARGUMENT
    /search attribute/i.test(cause.details ?? cause.message)
  );
}

export async function startMigrationRun(
  client: Client,
  input: MigrationInput,
  options: Omit<WorkflowStartOptions<typeof migrateToGpu>, 'args' | 'workflowId'>,
): Promise<StartedRun> {
  const { plan } = input;
  const base = {
    ...options,
    workflowId: migrationWorkflowId(plan.name),
    args: [input] as [MigrationInput],
    staticSummary: migrationSummary(plan),
    staticDetails: migrationDetails(plan),
  };
  try {
    const handle = await client.workflow.start<typeof migrateToGpu>('migrateToGpu', {
      ...base,
      typedSearchAttributes: migrationAttributes(plan.name),
    });
    return { handle };
  } catch (err) {
    if (!isUnknownSearchAttribute(err)) throw err;
    const handle = await client.workflow.start<typeof migrateToGpu>('migrateToGpu', base);
    return {
      handle,
      unindexed: `the namespace has no search attributes MigrationPhase, PlanName and GuardedInstance, so the Web UI cannot list this run by phase; register them with: ${registerCommand(client.options.namespace)}`,
    };
  }
}
