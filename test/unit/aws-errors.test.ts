/**
 * How AWS errors and Run Command parameters are classified and built: the table in
 * docs/aws-semantics.md, code by code.
 */
import { ApplicationFailure } from '@temporalio/common';
import { toFailure } from '../../src/aws/call';
import { executionTimeout, outputCut, shellScript } from '../../src/activities/ssm-script';
import { isPermanentAwsError } from '../../src/shared/errors';

/** An AWS SDK error as the SDK throws it: `name` is the AWS code. */
function awsError(code: string, message = 'from AWS'): Error {
  const err = new Error(message);
  err.name = code;
  return err;
}

describe('isPermanentAwsError', () => {
  it.each([
    'IdempotentParameterMismatch',
    'InvalidBlockDeviceMapping',
    'AuthFailure',
    'AuthFailure.ServiceLinkedRoleCreationNotPermitted',
    'UnauthorizedOperation',
    'AccessDeniedException',
    'AccessDenied',
    'KMS.AccessDeniedException',
    'ExpiredToken',
    'ExpiredTokenException',
    'UnrecognizedClientException',
    'InvalidParameters',
    'InvalidDocument',
    'UnsupportedPlatformType',
    'InvalidAMIName.Duplicate',
  ])('%s is permanent', (code) => {
    expect(isPermanentAwsError(code)).toBe(true);
  });

  it.each([
    'InsufficientInstanceCapacity',
    'RequestLimitExceeded',
    'ThrottlingException',
    'InternalError',
    'InvocationDoesNotExist',
    'AssociationNotVerified',
  ])('%s is retried', (code) => {
    expect(isPermanentAwsError(code)).toBe(false);
  });

  it('retries an instance profile IAM has not propagated yet, and no other InvalidParameterValue', () => {
    expect(
      isPermanentAwsError(
        'InvalidParameterValue',
        'Value (vma-ssm) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name',
      ),
    ).toBe(false);
    expect(
      isPermanentAwsError('InvalidParameterValue', 'Value (x1.bogus) for parameter instanceType is invalid.'),
    ).toBe(true);
  });

  it('marks the Temporal failure the same way, with the AWS code as its type', () => {
    const permanent = toFailure(
      'launch',
      awsError('AuthFailure.ServiceLinkedRoleCreationNotPermitted', 'The provided credentials do not have permission'),
    );
    expect(permanent).toBeInstanceOf(ApplicationFailure);
    expect(permanent).toMatchObject({ type: 'AuthFailure.ServiceLinkedRoleCreationNotPermitted', nonRetryable: true });
    expect((permanent as ApplicationFailure).message).toBe(
      'launch: AuthFailure.ServiceLinkedRoleCreationNotPermitted: The provided credentials do not have permission',
    );
    expect(toFailure('launch', awsError('InvalidParameterValue', 'Invalid IAM Instance Profile name'))).toMatchObject({
      nonRetryable: false,
    });
  });
});

describe('Run Command scripts', () => {
  it('stops at the first failing line', () => {
    expect(shellScript(['nvidia-smi', 'docker --version'])).toEqual(['set -e', 'nvidia-smi', 'docker --version']);
  });

  it('gives SSM whole seconds from 1 to 172800', () => {
    expect(executionTimeout(32.5)).toBe('33');
    expect(executionTimeout(0)).toBe('1');
    expect(executionTimeout(3 * 86_400)).toBe('172800');
    expect(executionTimeout(3600)).toBe('3600');
  });

  it('says which streams SSM cut', () => {
    expect(outputCut('ok', 'fine')).toBeUndefined();
    expect(outputCut('o'.repeat(24_000), '')).toBe(
      "the output was cut by SSM: stdout (SSM keeps its first 24,000 characters); the end of the step's output is not in it",
    );
    expect(outputCut('', 'e'.repeat(8_000))).toMatch(/stderr \(SSM keeps its first 8,000 characters\)/);
  });
});
