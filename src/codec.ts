/**
 * Optional end-to-end encryption of everything the worker and the CLI send through Temporal
 * (workflow inputs, results, signals, activity arguments, summaries, failures' details, and the
 * messages and stack traces of failures): AES-256-GCM with keys that only they hold. The server,
 * the Web UI and anyone reading the database see `binary/encrypted` payloads; `migration
 * codec-server` (src/codec-server.ts) shows them decoded to whoever holds the key.
 *
 * On when MIGRATION_PAYLOAD_KEY_FILE names a key file, which holds either
 *
 * - one 256-bit key: 32 raw bytes, 64 hex digits, or base64; its id is MIGRATION_PAYLOAD_KEY_ID
 *   (default `default`); or
 * - a keyring: lines `<keyId> <key>` (the key in hex or base64; `#` starts a comment, blank lines
 *   are skipped). New payloads are encrypted with the key of the LAST line; a payload is decoded
 *   with the key its `encryption-key-id` names, so keys can be rotated without losing histories.
 *
 * Worker and CLI must hold the same keys; a payload that is not encrypted is passed through, so
 * histories recorded before the key was set stay readable.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { ConfigError, readConfig } from './config';

export const ENV_PAYLOAD_KEY_FILE = 'MIGRATION_PAYLOAD_KEY_FILE';
export const ENV_PAYLOAD_KEY_ID = 'MIGRATION_PAYLOAD_KEY_ID';
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** The id of a key file's only key when MIGRATION_PAYLOAD_KEY_ID does not name it. */
export const DEFAULT_KEY_ID = 'default';
/** A key id on a keyring line. */
export const KEY_ID = { pattern: /^[A-Za-z0-9._-]{1,64}$/, expected: 'letters, digits, . _ - (1 to 64 of them)' };
const CIPHER = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const MAKE_ONE = 'create one with: openssl rand -hex 32 > key';

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : '');

/** A key written as text: 64 hex digits, or 32 bytes in base64; undefined when it is neither. */
function keyFromText(s: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(s)) return Buffer.from(s, 'hex');
  if (/^[A-Za-z0-9+/]+=*$/.test(s)) {
    const key = Buffer.from(s, 'base64');
    if (key.length === 32) return key;
  }
  return undefined;
}

/** The key in a single-key file: 32 raw bytes, 64 hex digits, or 32 bytes in base64 (surrounding whitespace ignored). */
export function parseKey(content: Buffer): Buffer {
  if (content.length === 32) return content;
  const key = keyFromText(content.toString('utf8').trim());
  if (key) return key;
  throw new Error(
    `${ENV_PAYLOAD_KEY_FILE}: the key file must hold a 256-bit key (32 bytes, 64 hex digits or base64); ${MAKE_ONE}`,
  );
}

/** A key file that cannot be used: names the file and, for a keyring, the line. Exit 2 in the CLI. */
export class KeyFileError extends ConfigError {
  constructor(file: string, problem: string) {
    super(ENV_PAYLOAD_KEY_FILE, file, problem);
    this.message = `${ENV_PAYLOAD_KEY_FILE}=${file}: ${problem}`;
    this.name = 'KeyFileError';
  }
}

export interface KeyringEntry {
  readonly id: string;
  readonly key: Buffer;
}

/** The keys a process holds, oldest first; the last one encrypts. */
export class Keyring {
  readonly entries: readonly KeyringEntry[];
  private readonly byId = new Map<string, Buffer>();

  constructor(entries: readonly KeyringEntry[]) {
    if (entries.length === 0) throw new Error('a keyring needs at least one key');
    for (const { id, key } of entries) {
      if (id === '') throw new Error('a key needs an id');
      if (key.length !== 32) throw new Error(`key '${id}': AES-256-GCM needs a 32-byte key`);
      if (this.byId.has(id)) throw new Error(`key id '${id}' is on the keyring twice`);
      this.byId.set(id, key);
    }
    this.entries = [...entries];
  }

  /** The key new payloads are encrypted with: the last one. */
  get current(): KeyringEntry {
    return this.entries[this.entries.length - 1];
  }

  get ids(): string[] {
    return this.entries.map((e) => e.id);
  }

  key(id: string): Buffer | undefined {
    return this.byId.get(id);
  }
}

/**
 * The keys of a key file: one key (raw, hex or base64, with the id `singleKeyId`) or keyring
 * lines `<keyId> <key>`. Refuses anything else with the file's name and the line.
 */
export function parseKeyFile(content: Buffer, file = 'the key file', singleKeyId = DEFAULT_KEY_ID): Keyring {
  const fail = (problem: string): never => {
    throw new KeyFileError(file, problem);
  };
  // 32 bytes are the raw key: a keyring line is longer (an id, a space, 44 or 64 characters).
  if (content.length === 32) return new Keyring([{ id: singleKeyId, key: content }]);
  const lines = content
    .toString('utf8')
    .split(/\r?\n/)
    .map((line, i) => ({ n: i + 1, text: line.replace(/#.*/, '').trim() }))
    .filter((l) => l.text !== '');
  if (lines.length === 0) return fail(`the file holds no key; ${MAKE_ONE}`);

  if (lines.length === 1 && !/\s/.test(lines[0].text)) {
    const key = keyFromText(lines[0].text);
    if (!key)
      return fail(
        `line ${lines[0].n}: not a 256-bit key (32 raw bytes, 64 hex digits or base64) nor a keyring line "<keyId> <key>"; ${MAKE_ONE}`,
      );
    return new Keyring([{ id: singleKeyId, key }]);
  }

  const entries: KeyringEntry[] = [];
  const seen = new Map<string, number>();
  for (const { n, text: line } of lines) {
    const fields = line.split(/\s+/);
    if (fields.length !== 2)
      return fail(`line ${n}: expected "<keyId> <key>" (two fields), found ${fields.length} field(s)`);
    const [id, value] = fields;
    if (!KEY_ID.pattern.test(id)) return fail(`line ${n}: key id ${JSON.stringify(id)}: expected ${KEY_ID.expected}`);
    const first = seen.get(id);
    if (first !== undefined)
      return fail(`line ${n}: key id '${id}' is already on line ${first}; each id names one key`);
    const key = keyFromText(value);
    if (!key) return fail(`line ${n}: the key of '${id}' is not 256 bits in hex (64 digits) or base64; ${MAKE_ONE}`);
    seen.set(id, n);
    entries.push({ id, key });
  }
  return new Keyring(entries);
}

/** The keyring MIGRATION_PAYLOAD_KEY_FILE names, or undefined when it is not set. */
export function keyringFromEnv(env: NodeJS.ProcessEnv = process.env): Keyring | undefined {
  const { payloadKeyFile: file, payloadKeyId } = readConfig(env);
  if (!file) return undefined;
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (err) {
    throw new KeyFileError(file, `cannot read the key file: ${(err as Error).message}`);
  }
  const keyring = parseKeyFile(content, file, payloadKeyId);
  // With a keyring the ids are in the file; an id set beside it must not be silently ignored.
  if (payloadKeyId !== DEFAULT_KEY_ID && keyring.current.id !== payloadKeyId)
    throw new ConfigError(
      ENV_PAYLOAD_KEY_ID,
      payloadKeyId,
      `unset: ${file} is a keyring, which names its keys and encrypts with its last line ('${keyring.current.id}')`,
    );
  return keyring;
}

export class AesGcmPayloadCodec implements PayloadCodec {
  readonly keyring: Keyring;

  /** Encrypts with the keyring's last key, decodes with any of its keys. */
  constructor(keyring: Keyring);
  /** One key, named `keyId` in each payload's metadata. */
  constructor(key: Buffer, keyId?: string);
  constructor(key: Buffer | Keyring, keyId: string = DEFAULT_KEY_ID) {
    this.keyring = key instanceof Keyring ? key : new Keyring([{ id: keyId, key }]);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const { id, key } = this.keyring.current;
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
      const cipher = createCipheriv(CIPHER, key, iv);
      const sealed = Buffer.concat([cipher.update(plain), cipher.final()]);
      return {
        metadata: {
          encoding: text(ENCRYPTED_ENCODING),
          'encryption-key-id': text(id),
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
      const key = this.keyring.key(keyId);
      if (!key)
        throw new Error(
          `payload encrypted with key '${keyId}', which this process does not hold (its keys: ${this.keyring.ids.map((id) => `'${id}'`).join(', ')}); add that key to the key file (${ENV_PAYLOAD_KEY_FILE})`,
        );
      const cipherName = str(p.metadata?.['encryption-cipher']);
      if (cipherName !== '' && cipherName !== CIPHER)
        throw new Error(`payload encrypted with '${cipherName}', this process reads only ${CIPHER}`);
      const data = Buffer.from(p.data ?? []);
      if (data.length < IV_BYTES + TAG_BYTES) throw new Error('encrypted payload is truncated');
      const decipher = createDecipheriv(CIPHER, key, data.subarray(0, IV_BYTES));
      decipher.setAuthTag(data.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      } catch {
        throw new Error(
          `encrypted payload failed authentication: it was altered, or key '${keyId}' is not the right key`,
        );
      }
      const { m, d } = JSON.parse(plain.toString('utf8')) as { m: Record<string, string>; d: string };
      return {
        metadata: Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(d, 'base64'),
      };
    });
  }
}

/**
 * The data converter MIGRATION_PAYLOAD_KEY_FILE asks for, or undefined when it is not set: the
 * codec, and a failure converter that moves failures' messages and stack traces into a payload
 * (src/failure-converter.ts), so that the codec encrypts them too. The SDK loads failure
 * converters by path (the worker's, and the client's).
 */
export function dataConverterFromEnv(env: NodeJS.ProcessEnv = process.env): DataConverter | undefined {
  const keyring = keyringFromEnv(env);
  if (!keyring) return undefined;
  return {
    payloadCodecs: [new AesGcmPayloadCodec(keyring)],
    failureConverterPath: require.resolve('./failure-converter'),
  };
}
