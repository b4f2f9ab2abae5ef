import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, dataConverterFromEnv, parseKey } from '../../src/codec';

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
  await expect(new AesGcmPayloadCodec(key, 'other').decode([sealed])).rejects.toThrow(/key 'default'/);
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
    expect(() => dataConverterFromEnv({ MIGRATION_PAYLOAD_KEY_FILE: join(dir, 'missing') })).toThrow(
      /cannot read the key file/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
