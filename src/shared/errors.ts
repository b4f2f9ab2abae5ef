/**
 * Failure types. AWS errors keep their AWS code as the Temporal failure type (see
 * src/aws/call.ts); the codes below are ones no retry can fix (docs/aws-semantics.md has the
 * table, with the AWS documents). Pure: workflow code imports this file.
 */
export const NON_RETRYABLE_AWS_CODES: ReadonlySet<string> = new Set([
  'UnauthorizedOperation',
  'AuthFailure',
  // The same ClientToken with other parameters: the request itself must change.
  'IdempotentParameterMismatch',
  // A root volume smaller than the image's snapshot, or a device the image does not have.
  'InvalidBlockDeviceMapping',
  'InvalidAMIName.Duplicate',
  // Credentials: missing, expired or not known to AWS.
  'UnrecognizedClientException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  // SSM and SQS permissions (EC2 answers UnauthorizedOperation).
  'AccessDeniedException',
  'AccessDenied',
  'KMS.AccessDeniedException',
  // SSM: a document parameter it refuses, a document it does not have, a platform it cannot run it on.
  'InvalidParameters',
  'InvalidDocument',
  'UnsupportedPlatformType',
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
  // SQS: the queue the plan names is not there (JSON protocol, and its query-protocol code).
  'QueueDoesNotExist',
  'AWS.SimpleQueueService.NonExistentQueue',
  // Service Quotas: no such quota in this region.
  'NoSuchResourceException',
]);

/** Codes permanent by prefix: every `AuthFailure.*` (e.g. AuthFailure.ServiceLinkedRoleCreationNotPermitted). */
const PERMANENT_PREFIXES = ['AuthFailure.'];

/**
 * Codes that are permanent unless the message says AWS has not caught up yet: a new instance
 * profile is "Invalid IAM Instance Profile name" to EC2 for a minute or two after it was made.
 */
const TRANSIENT_MESSAGES: Readonly<Record<string, RegExp>> = {
  InvalidParameterValue: /Invalid IAM Instance Profile name|iamInstanceProfile/i,
};

/** Whether no retry can fix an AWS error with this code and message. */
export function isPermanentAwsError(code: string, message = ''): boolean {
  const transient = TRANSIENT_MESSAGES[code];
  if (transient) return !transient.test(message);
  return NON_RETRYABLE_AWS_CODES.has(code) || PERMANENT_PREFIXES.some((p) => code.startsWith(p));
}

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
  /** The instance a remote step runs on stopped running (a Spot interruption): the step can never finish. */
  InstanceNotRunning: 'InstanceNotRunning',
  /** The new Spot instance got an interruption notice before the migration stood: it rolls back to the old one. */
  SpotInterrupted: 'SpotInterrupted',
  /** The plan has no such check configured: asking for it again cannot help. */
  NotConfigured: 'NotConfigured',
} as const;
