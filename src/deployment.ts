/**
 * Worker Versioning for the worker process. Each build of the workflow code is a Worker
 * Deployment Version (`<deployment>` + build id, the bundle's hash). A version takes new runs
 * only once it is the deployment's current (or ramping) version: the first version of a
 * deployment is made current by its first worker, so a first install just works; any later one
 * waits for the operator to ramp it or make it current (docs/operations.md).
 */
import type { NativeConnection } from '@temporalio/worker';
import type { DeploymentVersion } from './worker';

/** The deployment's name when none is given (MIGRATION_DEPLOYMENT_NAME). */
export const DEFAULT_DEPLOYMENT_NAME = 'ec2-gpu-migration';

export type CurrentVersionOutcome =
  { action: 'made-current' } | { action: 'already-current' } | { action: 'left'; current: string; ramping?: string };

type Service = Pick<
  NativeConnection['workflowService'],
  'describeWorkerDeployment' | 'setWorkerDeploymentCurrentVersion'
>;

/** NOT_FOUND: the deployment or the version is not there (yet: a worker's first poll creates it). */
const notFound = (err: unknown) => (err as { code?: number }).code === 5;

/**
 * Makes `version` current when its deployment has no current version; otherwise leaves the
 * routing as the operator set it and says which version is current. Retries while the server
 * has not registered the version from this worker's first polls yet.
 */
export async function makeFirstVersionCurrent(
  service: Service,
  namespace: string,
  version: DeploymentVersion,
  identity: string,
  { timeoutMs = 60_000, intervalMs = 250 } = {},
): Promise<CurrentVersionOutcome> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const described = await service.describeWorkerDeployment({ namespace, deploymentName: version.name });
      const routing = described.workerDeploymentInfo?.routingConfig;
      const current = routing?.currentDeploymentVersion?.buildId;
      const ramping = routing?.rampingDeploymentVersion?.buildId;
      if (current === version.buildId) return { action: 'already-current' };
      if (current) return { action: 'left', current, ...(ramping ? { ramping } : {}) };
      const known = (described.workerDeploymentInfo?.versionSummaries ?? []).some(
        (v) => v.deploymentVersion?.buildId === version.buildId,
      );
      if (known) {
        await service.setWorkerDeploymentCurrentVersion({
          namespace,
          deploymentName: version.name,
          buildId: version.buildId,
          identity,
          // Only when nobody made another version current meanwhile.
          conflictToken: described.conflictToken,
        });
        return { action: 'made-current' };
      }
    } catch (err) {
      if (!notFound(err)) throw err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `the server did not register ${version.name}/${version.buildId} within ${timeoutMs / 1000} s of polling; is Worker Versioning enabled on this namespace?`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The log line for an outcome: what a person must do, if anything. */
export function describeCurrentVersion(version: DeploymentVersion, outcome: CurrentVersionOutcome): string {
  const id = `${version.name}/${version.buildId}`;
  switch (outcome.action) {
    case 'made-current':
      return `${id} is the first version of its deployment: made it current, new runs start on it`;
    case 'already-current':
      return `${id} is the current version`;
    case 'left':
      return (
        `${id} polls, but new runs start on the current version ${outcome.current}` +
        (outcome.ramping ? ` (ramping: ${outcome.ramping})` : '') +
        `; to move them: temporal worker deployment set-ramping-version --deployment-name ${version.name} --build-id ${version.buildId} --percentage 10, then set-current-version (docs/operations.md)`
      );
  }
}
