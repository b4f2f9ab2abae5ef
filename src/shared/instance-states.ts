/**
 * EC2 instance states (InstanceStateName), in the groups the code asks about. Pure: workflow
 * code imports this file.
 */

/** Every state, in lifecycle order. */
export const INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** Counted against vCPU quotas: started and not yet stopping. */
export const STARTED_STATES: readonly InstanceState[] = ['pending', 'running'];
/** Not on its way out for good: it can still be started, so it is still ours to clean up. */
export const KEPT_STATES: readonly InstanceState[] = ['pending', 'running', 'stopping', 'stopped'];
/** On its way out for good. */
export const GONE_STATES: readonly InstanceState[] = ['shutting-down', 'terminated'];
/** No longer serving: a guarded instance in one of these needs replacing. */
export const DEAD_STATES: readonly string[] = ['shutting-down', 'terminated', 'stopping', 'stopped'];

export function isDead(state: string | undefined): boolean {
  return state !== undefined && DEAD_STATES.includes(state);
}
