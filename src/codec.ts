/**
 * Optional end-to-end encryption of everything the worker and the CLI send through Temporal
 * (workflow inputs, results, signals, activity arguments, failures' details): AES-256-GCM with
 * a key that only they hold. The server, the Web UI and anyone reading the database see
 * `binary/encrypted` payloads.
 *
 * On when MIGRATION_PAYLOAD_KEY_FILE names a file holding the 32-byte key (raw, 64 hex digits,
 * or base64). Worker and CLI must use the same key; a payload that is not encrypted is passed
 * through, so histories recorded before the key was set stay readable.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { readConfig } from './config';

export const ENV_PAYLOAD_KEY_FILE = 'MIGRATION_PAYLOAD_KEY_FILE';
export const ENCRYPTED_ENCODING = 'binary/encrypted';
const CIPHER = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : '');

/** The key in a key file: 32 raw bytes, 64 hex digits, or 32 bytes in base64 (whitespace ignored). */
export function parseKey(content: Buffer): Buffer {
  if (content.length === 32) return content;
  const s = content.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(s)) return Buffer.from(s, 'hex');
  const b64 = Buffer.from(s, 'base64');
  if (b64.length === 32 && /^[A-Za-z0-9+/]+=*$/.test(s)) return b64;
  throw new Error(
    `${ENV_PAYLOAD_KEY_FILE}: the key file must hold a 256-bit key (32 bytes, 64 hex digits or base64); create one with: openssl rand -hex 32 > key`,
  );
}

export class AesGcmPayloadCodec implements PayloadCodec {
  constructor(
    private readonly key: Buffer,
    /** Names the key in each payload's metadata, so keys can be rotated. */
    private readonly keyId = 'default',
  ) {
    if (key.length !== 32) throw new Error('AES-256-GCM needs a 32-byte key');
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const plain = Buffer.from(
        JSON.stringify({
          m: Object.fromEntries(
            Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')]),
          ),
          d: Buffer.from(p.data ?? []).toString('base64'),
        }),
      );
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv(CIPHER, this.key, iv);
      const sealed = Buffer.concat([cipher.update(plain), cipher.final()]);
      return {
        metadata: {
          encoding: text(ENCRYPTED_ENCODING),
          'encryption-key-id': text(this.keyId),
          'encryption-cipher': text(CIPHER),
        },
        data: Buffer.concat([iv, cipher.getAuthTag(), sealed]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (str(p.metadata?.encoding) !== ENCRYPTED_ENCODING) return p;
      const keyId = str(p.metadata?.['encryption-key-id']);
      if (keyId !== this.keyId)
        throw new Error(`payload encrypted with key '${keyId}', but this process has key '${this.keyId}'`);
      const data = Buffer.from(p.data ?? []);
      if (data.length < IV_BYTES + TAG_BYTES) throw new Error('encrypted payload is truncated');
      const decipher = createDecipheriv(CIPHER, this.key, data.subarray(0, IV_BYTES));
      decipher.setAuthTag(data.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      } catch {
        throw new Error('encrypted payload failed authentication: it was altered, or the key is wrong');
      }
      const { m, d } = JSON.parse(plain.toString('utf8')) as { m: Record<string, string>; d: string };
      return {
        metadata: Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(d, 'base64'),
      };
    });
  }
}

/** The data converter MIGRATION_PAYLOAD_KEY_FILE asks for, or undefined when it is not set. */
export function dataConverterFromEnv(env: NodeJS.ProcessEnv = process.env): DataConverter | undefined {
  const { payloadKeyFile: file, payloadKeyId } = readConfig(env);
  if (!file) return undefined;
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (err) {
    throw new Error(`${ENV_PAYLOAD_KEY_FILE}=${file}: cannot read the key file: ${(err as Error).message}`);
  }
  return { payloadCodecs: [new AesGcmPayloadCodec(parseKey(content), payloadKeyId)] };
}
