import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { dataConverterFromEnv } from './codec';
import { readConfig } from './config';

export interface TemporalTarget {
  connectionOptions: NativeConnectionOptions;
  namespace: string;
  /** For messages: where we tried to connect. */
  address: string;
}

/**
 * Where Temporal is: the `temporal` CLI's TOML profiles and TEMPORAL_* variables
 * (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE),
 * through @temporalio/envconfig. Defaults: localhost:7233, namespace `default`.
 */
export function temporalTarget(): TemporalTarget {
  const { connectionOptions, namespace } = loadClientConnectConfig({ profile: readConfig().temporalProfile });
  return {
    connectionOptions,
    namespace: namespace ?? 'default',
    address: connectionOptions.address ?? 'localhost:7233',
  };
}

/** Raised when Temporal cannot be reached; the CLI tells the person the address it tried. */
export class TemporalUnreachable extends Error {
  constructor(
    readonly address: string,
    cause: unknown,
  ) {
    super(
      `cannot reach Temporal at ${address}: ${(cause as Error)?.message ?? String(cause)}\n` +
        'Set TEMPORAL_ADDRESS (and TEMPORAL_NAMESPACE, TEMPORAL_API_KEY for Temporal Cloud) or a profile in ~/.config/temporalio/temporal.toml; for a local server run `temporal server start-dev`.',
    );
    this.name = 'TemporalUnreachable';
  }
}

export async function connectClient(
  target = temporalTarget(),
): Promise<{ client: Client; close: () => Promise<void> }> {
  const dataConverter = dataConverterFromEnv();
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...target.connectionOptions, connectTimeout: '10s' } as Parameters<
      typeof Connection.connect
    >[0]);
  } catch (err) {
    throw new TemporalUnreachable(target.address, err);
  }
  return {
    client: new Client({ connection, namespace: target.namespace, dataConverter }),
    close: () => connection.close(),
  };
}
