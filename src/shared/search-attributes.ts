/**
 * The search attributes the runs are listed by in the Web UI and `temporal workflow list`:
 * which migrations wait for approval, a plan's runs, the guardian of an instance. They are
 * Keyword attributes registered on the namespace (the dev server's `--search-attribute`, or
 * `temporal operator search-attribute create` on a cluster). Search attributes are never
 * encrypted: they carry nothing but phase names, plan names and instance ids.
 */
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';

/** The migration's phase, as the `status` query's top-level `phase`. */
export const MIGRATION_PHASE = defineSearchAttributeKey('MigrationPhase', SearchAttributeType.KEYWORD);
/** The plan's name, on its migration and its guardian. */
export const PLAN_NAME = defineSearchAttributeKey('PlanName', SearchAttributeType.KEYWORD);
/** The instance a guardian guards now. */
export const GUARDED_INSTANCE = defineSearchAttributeKey('GuardedInstance', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTE_KEYS = [MIGRATION_PHASE, PLAN_NAME, GUARDED_INSTANCE] as const;

/** The Web UI's and the CLI's query for the migrations that wait for a person. */
export const AWAITING_APPROVAL_QUERY = `WorkflowType="migrateToGpu" AND MigrationPhase="awaiting-approval" AND ExecutionStatus="Running"`;

/** The dev server's arguments that register them. */
export function devServerSearchAttributeArgs(): string[] {
  return SEARCH_ATTRIBUTE_KEYS.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]);
}

/** The command that registers them on a self-hosted cluster's namespace (one `--type` per `--name`). */
export function registerCommand(namespace: string): string {
  return `temporal operator search-attribute create --namespace ${namespace} ${SEARCH_ATTRIBUTE_KEYS.map((k) => `--name ${k.name} --type Keyword`).join(' ')}`;
}

/** A migration's attributes at its start. */
export function migrationAttributes(planName: string): SearchAttributePair[] {
  return [
    { key: PLAN_NAME, value: planName },
    { key: MIGRATION_PHASE, value: 'preflight' },
  ];
}
