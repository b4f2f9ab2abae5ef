import { EC2Client } from '@aws-sdk/client-ec2';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { SQSClient } from '@aws-sdk/client-sqs';
import { SSMClient } from '@aws-sdk/client-ssm';
import { NoCapacityRetryStrategy } from './retry';

/**
 * One client of each service per region, made on first use and kept for the worker's life.
 * Configuration comes from the SDK's default chain (AWS_PROFILE, AWS_REGION,
 * AWS_ENDPOINT_URL, …) unless `options` says otherwise (tests point them at moto).
 */
export interface AwsClients {
  ec2(region: string): EC2Client;
  ssm(region: string): SSMClient;
  sqs(region: string): SQSClient;
  servicequotas(region: string): ServiceQuotasClient;
  /** Only `migration events setup|remove` uses it; the worker never does. */
  eventBridge(region: string): EventBridgeClient;
}

export interface AwsClientOptions {
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * SDK attempts per call (default 3). The SDK retries throttling and 5xx itself; the
   * activity's retry policy is the outer loop around that, with backoff measured in seconds.
   */
  maxAttempts?: number;
}

export function createAwsClients(options: AwsClientOptions = {}): AwsClients {
  const config = (region: string) => ({
    region,
    retryStrategy: new NoCapacityRetryStrategy(options.maxAttempts ?? 3),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });
  const cache = <C>(make: (region: string) => C) => {
    const clients = new Map<string, C>();
    return (region: string): C => {
      let client = clients.get(region);
      if (!client) {
        client = make(region);
        clients.set(region, client);
      }
      return client;
    };
  };
  return {
    ec2: cache((region) => new EC2Client(config(region))),
    ssm: cache((region) => new SSMClient(config(region))),
    sqs: cache((region) => new SQSClient(config(region))),
    servicequotas: cache((region) => new ServiceQuotasClient(config(region))),
    eventBridge: cache((region) => new EventBridgeClient(config(region))),
  };
}
