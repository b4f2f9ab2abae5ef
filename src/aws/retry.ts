import { StandardRetryStrategy } from '@smithy/core/retry';
import type { RetryErrorInfo, RetryStrategyV2, RetryToken, StandardRetryToken } from '@smithy/types';

/**
 * Errors the SDK must not retry by itself: a capacity shortage in one instance type and zone
 * does not go away in the SDK's milliseconds of backoff, and the launch activity answers it by
 * trying the next type, zone or market at once (then the activity's own retry policy waits).
 * The SDK classes InsufficientInstanceCapacity (HTTP 500) as transient, hence this wrapper.
 */
export const CAPACITY_CODES: ReadonlySet<string> = new Set([
  'InsufficientInstanceCapacity',
  'InsufficientCapacity',
  'InsufficientHostCapacity',
  'InsufficientReservedInstanceCapacity',
  'InsufficientCapacityOnHost',
  'SpotMaxPriceTooLow',
  'MaxSpotInstanceCountExceeded',
  'InstanceLimitExceeded',
  'VcpuLimitExceeded',
]);

export class NoCapacityRetryStrategy implements RetryStrategyV2 {
  private readonly inner: StandardRetryStrategy;
  readonly mode = 'standard';

  constructor(maxAttempts: number) {
    this.inner = new StandardRetryStrategy(maxAttempts);
  }

  acquireInitialRetryToken(scope: string): Promise<RetryToken> {
    return this.inner.acquireInitialRetryToken(scope);
  }

  async refreshRetryTokenForRetry(token: RetryToken, info: RetryErrorInfo): Promise<RetryToken> {
    if (info.error && CAPACITY_CODES.has(info.error.name)) throw info.error;
    return this.inner.refreshRetryTokenForRetry(token as StandardRetryToken, info);
  }

  recordSuccess(token: RetryToken): void {
    this.inner.recordSuccess(token as StandardRetryToken);
  }
}
