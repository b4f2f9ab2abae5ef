/**
 * Failure types. AWS errors keep their AWS code as the Temporal failure type (see
 * src/aws/call.ts); the codes below are ones no retry can fix.
 */
export const NON_RETRYABLE_AWS_CODES: ReadonlySet<string> = new Set([
  'UnauthorizedOperation',
  'AuthFailure',
  'InvalidClientTokenId',
  'OptInRequired',
  'InvalidAMIID.NotFound',
  'InvalidAMIID.Malformed',
  'InvalidAMIID.Unavailable',
  'InvalidSubnetID.NotFound',
  'InvalidGroup.NotFound',
  'InvalidInstanceID.Malformed',
  'InvalidInstanceID.NotFound',
  'InvalidAllocationID.NotFound',
  'InvalidParameter',
  'InvalidParameterValue',
  'InvalidParameterCombination',
  'InvalidParameterDependency',
  // A security-group rule AWS cannot parse (bad port range or CIDR): the same request fails again.
  'InvalidPermission.Malformed',
  // The Elastic IP is held in a way AllowReassociation cannot move (another account, a NAT gateway).
  'Resource.AlreadyAssociated',
  'InvalidInstanceType',
  'InvalidKeyPair.NotFound',
  'MissingParameter',
  'ParameterNotFound',
  'UnsupportedOperation',
  'Unsupported',
  'ValidationError',
  'ValidationException',
]);

/** Our own failure types. */
export const ErrorType = {
  /** A remote step exited non-zero. */
  RemoteCommandFailed: 'RemoteCommandFailed',
  /** A service did not answer its health check. */
  ServiceCheckFailed: 'ServiceCheckFailed',
  /** A measured figure is over the plan's limit. */
  LimitExceeded: 'LimitExceeded',
  /** Preflight found the plan does not match what is in AWS. */
  PreflightFailed: 'PreflightFailed',
  /** Every instance type, subnet and market was tried and none had capacity. */
  NoCapacity: 'NoCapacity',
  /** A person rejected the migration. */
  Rejected: 'Rejected',
} as const;

/** Our own types that no retry can fix (the remote steps and checks get a few tries first). */
export const NON_RETRYABLE_OWN_TYPES: readonly string[] = [ErrorType.PreflightFailed, ErrorType.NoCapacity];
