/** Where the checks reach an instance. Pure: workflow code imports this file. */
import type { Plan } from '../plan/schema';

/** The instance's public address while `checks.host` is `auto`, else the host the plan names. */
export function checkHost(checks: Pick<Plan['checks'], 'host'>, publicIp: string): string;
export function checkHost(checks: Pick<Plan['checks'], 'host'>, publicIp: string | undefined): string | undefined;
export function checkHost(checks: Pick<Plan['checks'], 'host'>, publicIp: string | undefined): string | undefined {
  return checks.host === 'auto' ? publicIp : checks.host;
}
