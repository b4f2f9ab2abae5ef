import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import {
  decodeOptionalFailureToOptionalError,
  encodeErrorToFailure,
  loadDataConverter,
} from '@temporalio/common/lib/internal-non-workflow';
import {
  AesGcmPayloadCodec,
  ENCRYPTED_ENCODING,
  KeyFileError,
  Keyring,
  dataConverterFromEnv,
  keyringFromEnv,
  parseKey,
  parseKeyFile,
} from '../../src/codec';

const key = randomBytes(32);
const value = { plan: { name: 'video-message-app', region: 'ap-northeast-1' }, by: 'アリス', n: [1, 2, 3] };

test('round trip: what is encoded decodes to the same payload; the data is not readable', async () => {
  const codec = new AesGcmPayloadCodec(key);
  const payload = defaultPayloadConverter.toPayload(value);
  const [sealed] = await codec.encode([payload]);
  expect(Buffer.from(sealed.metadata!.encoding!).toString()).toBe(ENCRYPTED_ENCODING);
  expect(Buffer.from(sealed.data!).toString('latin1')).not.toContain('video-message-app');
  const [opened] = await codec.decode([sealed]);
  expect(defaultPayloadConverter.fromPayload(opened)).toEqual(value);
  // A fresh IV each time: the same value never encrypts to the same bytes.
  const [again] = await codec.encode([payload]);
  expect(Buffer.from(again.data!).equals(Buffer.from(sealed.data!))).toBe(false);
});

test('tampering, truncation and a wrong key are detected', async () => {
  const codec = new AesGcmPayloadCodec(key);
  const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(value)]);
  for (const at of [0, 13, 30, sealed.data!.length - 1]) {
    const bad = Buffer.from(sealed.data!);
    bad[at] ^= 0x01;
    await expect(codec.decode([{ ...sealed, data: bad }])).rejects.toThrow(/failed authentication/);
  }
  await expect(codec.decode([{ ...sealed, data: Buffer.from(sealed.data!).subarray(0, 20) }])).rejects.toThrow(
    /truncated/,
  );
  await expect(new AesGcmPayloadCodec(randomBytes(32)).decode([sealed])).rejects.toThrow(/failed authentication/);
  await expect(new AesGcmPayloadCodec(key, 'other').decode([sealed])).rejects.toThrow(
    /key 'default', which this process does not hold \(its keys: 'other'\)/,
  );
});

test('unencrypted payloads pass through decode (histories from before the key)', async () => {
  const plain = defaultPayloadConverter.toPayload(value);
  expect(await new AesGcmPayloadCodec(key).decode([plain])).toEqual([plain]);
});

test('key files: raw, hex, base64; anything else is refused with how to make one', async () => {
  expect(parseKey(key)).toEqual(key);
  expect(parseKey(Buffer.from(`${key.toString('hex')}\n`))).toEqual(key);
  expect(parseKey(Buffer.from(key.toString('base64')))).toEqual(key);
  expect(() => parseKey(Buffer.from('too short'))).toThrow(/openssl rand -hex 32/);
  const dir = await mkdtemp(join(tmpdir(), 'codec-'));
  try {
    expect(dataConverterFromEnv({})).toBeUndefined();
    await writeFile(join(dir, 'key'), key.toString('hex'));
    const converter = dataConverterFromEnv({ MIGRATION_PAYLOAD_KEY_FILE: join(dir, 'key') });
    expect(converter?.payloadCodecs?.[0]).toBeInstanceOf(AesGcmPayloadCodec);
    expect(converter?.failureConverterPath).toMatch(/failure-converter\.(ts|js)$/);
    expect(() => dataConverterFromEnv({ MIGRATION_PAYLOAD_KEY_FILE: join(dir, 'missing') })).toThrow(
      /cannot read the key file/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

describe('keyring', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const idOf = (p: { metadata?: Record<string, Uint8Array | null> | null }) =>
    Buffer.from(p.metadata?.['encryption-key-id'] ?? []).toString();

  test('rotation: what k1 encrypted, a keyring k1,k2 still decodes; it encrypts with k2, the last line', async () => {
    const before = new AesGcmPayloadCodec(k1, 'k1');
    const [old] = await before.encode([defaultPayloadConverter.toPayload(value)]);
    expect(idOf(old)).toBe('k1');

    const keyring = parseKeyFile(
      Buffer.from(
        `# keys of the payload codec, newest last\nk1 ${k1.toString('hex')}\n\nk2 ${k2.toString('base64')}  # since rotation\n`,
      ),
      '/etc/migration/keys',
    );
    expect(keyring.ids).toEqual(['k1', 'k2']);
    const rotated = new AesGcmPayloadCodec(keyring);
    const [fresh] = await rotated.encode([defaultPayloadConverter.toPayload(value)]);
    expect(idOf(fresh)).toBe('k2');
    const opened = await rotated.decode([old, fresh]);
    expect(opened.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual([value, value]);
    // A process that has only k1 cannot read k2's payloads, and says which key it lacks.
    await expect(before.decode([fresh])).rejects.toThrow(
      /key 'k2', which this process does not hold \(its keys: 'k1'\)/,
    );
  });

  test('a payload under a key the keyring lacks fails naming that key and the keys held', async () => {
    const [sealed] = await new AesGcmPayloadCodec(k1, 'retired-2024').encode([
      defaultPayloadConverter.toPayload(value),
    ]);
    const codec = new AesGcmPayloadCodec(
      new Keyring([
        { id: 'k1', key: k1 },
        { id: 'k2', key: k2 },
      ]),
    );
    await expect(codec.decode([sealed])).rejects.toThrow(/'retired-2024'.*its keys: 'k1', 'k2'/);
  });

  test("today's single-key files still work, with MIGRATION_PAYLOAD_KEY_ID or `default`", () => {
    for (const content of [
      k1,
      Buffer.from(`${k1.toString('hex')}\n`),
      Buffer.from(`# the key\n${k1.toString('base64')}\n`),
    ]) {
      const keyring = parseKeyFile(content, 'key', 'prod-1');
      expect(keyring.ids).toEqual(['prod-1']);
      expect(keyring.current.key).toEqual(k1);
    }
    expect(parseKeyFile(Buffer.from(k1.toString('hex'))).current.id).toBe('default');
  });

  test('bad keyrings are refused naming the file and the line', () => {
    const file = '/etc/migration/keys';
    const refused = (content: string) => {
      try {
        parseKeyFile(Buffer.from(content), file);
      } catch (err) {
        expect(err).toBeInstanceOf(KeyFileError);
        return (err as Error).message;
      }
      throw new Error(`accepted: ${content}`);
    };
    const hex1 = k1.toString('hex');
    const hex2 = k2.toString('hex');
    expect(refused(`k1 ${hex1}\nk1 ${hex2}\n`)).toBe(
      `MIGRATION_PAYLOAD_KEY_FILE=${file}: line 2: key id 'k1' is already on line 1; each id names one key`,
    );
    expect(refused(`k1 ${hex1}\n# comment\nk/2 ${hex2}\n`)).toMatch(
      new RegExp(`^MIGRATION_PAYLOAD_KEY_FILE=${file}: line 3: key id "k/2": expected letters, digits`),
    );
    expect(refused(`k1 ${hex1}\nk2 ${hex2.slice(2)}\n`)).toMatch(/: line 2: the key of 'k2' is not 256 bits/);
    expect(refused(`k1 ${hex1}\n${hex2}\n`)).toMatch(/: line 2: expected "<keyId> <key>" \(two fields\), found 1/);
    expect(refused(`k1 ${hex1} extra\n`)).toMatch(/: line 1: expected "<keyId> <key>" \(two fields\), found 3/);
    expect(refused(`${'x'.repeat(65)} ${hex1}\n`)).toMatch(/: line 1: key id "x+": expected/);
    expect(refused('# only a comment\n\n')).toMatch(/holds no key; create one with: openssl rand -hex 32/);
    expect(refused('\n\nnot-a-key\n')).toMatch(/: line 3: not a 256-bit key/);
    // Key material never appears in a message.
    expect(refused(`k1 ${hex1}\nk1 ${hex2}\n`)).not.toContain(hex2);
  });

  test('from the environment: a keyring file; MIGRATION_PAYLOAD_KEY_ID beside it must name its last key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'codec-'));
    try {
      const file = join(dir, 'keys');
      await writeFile(file, `k1 ${k1.toString('hex')}\nk2 ${k2.toString('hex')}\n`);
      expect(keyringFromEnv({ MIGRATION_PAYLOAD_KEY_FILE: file })?.current.id).toBe('k2');
      expect(keyringFromEnv({ MIGRATION_PAYLOAD_KEY_FILE: file, MIGRATION_PAYLOAD_KEY_ID: 'k2' })?.ids).toEqual([
        'k1',
        'k2',
      ]);
      expect(() => keyringFromEnv({ MIGRATION_PAYLOAD_KEY_FILE: file, MIGRATION_PAYLOAD_KEY_ID: 'k1' })).toThrow(
        /MIGRATION_PAYLOAD_KEY_ID="k1": expected unset: .* is a keyring, .* last line \('k2'\)/,
      );
      expect(() => keyringFromEnv({ MIGRATION_PAYLOAD_KEY_FILE: join(dir, 'missing') })).toThrow(KeyFileError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test('failures: the message and stack trace travel encrypted; a client with the key reads them back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'codec-'));
  try {
    await writeFile(join(dir, 'key'), key.toString('hex'));
    const converter = loadDataConverter(dataConverterFromEnv({ MIGRATION_PAYLOAD_KEY_FILE: join(dir, 'key') }));
    const secret = 'launch i-0abc123 in ap-northeast-1: the subnet subnet-0secret is full';
    const err = ApplicationFailure.create({ message: secret, type: 'LaunchFailed', nonRetryable: true });
    const failure = await encodeErrorToFailure(converter, err);

    expect(failure.message).toBe('Encoded failure');
    expect(failure.stackTrace).toBe('');
    expect(failure.applicationFailureInfo?.type).toBe('LaunchFailed');
    const attrs = failure.encodedAttributes!;
    expect(Buffer.from(attrs.metadata!.encoding!).toString()).toBe(ENCRYPTED_ENCODING);
    const wire = JSON.stringify(failure) + Buffer.from(attrs.data!).toString('latin1');
    expect(wire).not.toContain('i-0abc123');
    expect(wire).not.toContain('codec.test.ts'); // the stack trace

    const back = await decodeOptionalFailureToOptionalError(converter, failure);
    expect(back).toBeInstanceOf(ApplicationFailure);
    expect(back?.message).toBe(secret);
    expect(back?.stack).toContain('codec.test.ts');

    // Without the key the SDK's default converter leaves it all in plain text.
    const plain = await encodeErrorToFailure(loadDataConverter(undefined), err);
    expect(plain.message).toBe(secret);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
