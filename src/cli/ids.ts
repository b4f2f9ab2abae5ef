import { guardianWorkflowId, migrationWorkflowId } from '../shared/constants';
import { UsageError } from './errors';

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$/;

/** A workflow id, or a plan name standing for `migrate-<name>` (or `spot-guardian-<name>`). */
export function resolveId(id: string, kind: 'migration' | 'guardian' = 'migration'): string {
  if (!ID.test(id))
    throw new UsageError(`ID: expected a workflow id such as migrate-video-message-app, or a plan name (got '${id}')`);
  if (/^(migrate|spot-guardian|spot-events)-/.test(id)) return id;
  return kind === 'migration' ? migrationWorkflowId(id) : guardianWorkflowId(id);
}
