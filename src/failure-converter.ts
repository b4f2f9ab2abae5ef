/**
 * The failure converter of an encrypting data converter (src/codec.ts): the SDK's own, set to
 * move each failure's message and stack trace into a payload (`encodedAttributes`), which the
 * payload codec then encrypts; the failure itself says only "Encoded failure". Whoever decodes
 * reads the message and stack as they were.
 *
 * The SDK loads it by path (`DataConverter.failureConverterPath`, the `failureConverter` export).
 * It imports nothing but @temporalio/common, so a workflow bundle may include it too.
 */
import { DefaultFailureConverter } from '@temporalio/common';

/** A string only bundles with this module compiled in hold: how a worker tells a sealed bundle. */
export const SEALED_FAILURES_MARKER = 'ec2-gpu-migration/failure-converter: sealed failures';

class SealingFailureConverter extends DefaultFailureConverter {
  /** The marker, kept so a bundle that includes this module carries it. */
  readonly marker = SEALED_FAILURES_MARKER;
}

export const failureConverter = new SealingFailureConverter({ encodeCommonAttributes: true });
