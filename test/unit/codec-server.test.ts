/**
 * The codec server (src/codec-server.ts) over real HTTP on 127.0.0.1: the Web UI's contract
 * (POST /encode and /decode, `{"payloads": [...]}` with base64 fields), CORS, the token, the
 * refusals; and `migration codec-server` itself.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { main } from '../../src/client';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, Keyring } from '../../src/codec';
import { MAX_CODEC_BODY_BYTES, startCodecServer, type CodecServer } from '../../src/codec-server';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One HTTP request; `body` as a string is sent with its length, as an array in chunks without one. */
function call(
  url: string,
  {
    method = 'POST',
    headers = {},
    body,
  }: { method?: string; headers?: Record<string, string>; body?: string | Buffer[] },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    if (Array.isArray(body)) {
      for (const chunk of body) req.write(chunk);
      req.end();
    } else req.end(body);
  });
}

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64');
const json = { 'content-type': 'application/json', 'x-namespace': 'default' };
/** A payload as the Web UI and Temporal's JSON write it. */
const asJson = (p: Payload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, b64(v ?? new Uint8Array())])),
  data: b64(p.data ?? new Uint8Array()),
});
const post = (url: string, payloads: unknown[], headers: Record<string, string> = {}) =>
  call(url, { headers: { ...json, ...headers }, body: JSON.stringify({ payloads }) });

const value = { plan: { name: 'video-message-app', region: 'ap-northeast-1' }, approver: 'アリス' };
const keyring = new Keyring([
  { id: 'k1', key: randomBytes(32) },
  { id: 'k2', key: randomBytes(32) },
]);
const codec = new AesGcmPayloadCodec(keyring);
const TOKEN = randomBytes(24).toString('hex');

let server: CodecServer;
let guarded: CodecServer;
const logged: string[] = [];

beforeAll(async () => {
  server = await startCodecServer({ codec, port: 0, log: (l) => logged.push(l) });
  guarded = await startCodecServer({ codec, port: 0, token: TOKEN });
});
afterAll(async () => {
  await server?.close();
  await guarded?.close();
});

test('listens on loopback by default, on the port asked for', () => {
  expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(server.url).not.toMatch(/:0$/);
});

test('encode → decode through the endpoints gives back the payloads sent; what /encode returns is encrypted', async () => {
  const input = [
    asJson(defaultPayloadConverter.toPayload(value)),
    asJson(defaultPayloadConverter.toPayload('guardian of video-message-app: i-0abc123')),
    asJson(defaultPayloadConverter.toPayload(undefined)),
  ];
  const encoded = await post(`${server.url}/encode`, input);
  expect(encoded.status).toBe(200);
  expect(encoded.headers['content-type']).toBe('application/json');
  const sealed = (JSON.parse(encoded.text) as { payloads: ReturnType<typeof asJson>[] }).payloads;
  expect(sealed).toHaveLength(3);
  for (const p of sealed) {
    expect(Buffer.from(p.metadata.encoding, 'base64').toString()).toBe(ENCRYPTED_ENCODING);
    expect(Buffer.from(p.metadata['encryption-key-id'], 'base64').toString()).toBe('k2');
  }
  expect(encoded.text).not.toContain(b64(JSON.stringify(value)));
  expect(Buffer.from(sealed[1].data, 'base64').toString('latin1')).not.toContain('video-message-app');

  const decoded = await post(`${server.url}/decode`, sealed);
  expect(decoded.status).toBe(200);
  expect(JSON.parse(decoded.text)).toEqual({ payloads: input });
  // The worker's codec reads what the server encrypted.
  const [first] = await codec.decode([
    {
      metadata: Object.fromEntries(Object.entries(sealed[0].metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
      data: Buffer.from(sealed[0].data, 'base64'),
    },
  ]);
  expect(defaultPayloadConverter.fromPayload(first)).toEqual(value);
});

test('what the worker encrypted, under an older key of the keyring, decodes', async () => {
  const [old] = await new AesGcmPayloadCodec(keyring.entries[0].key, 'k1').encode([
    defaultPayloadConverter.toPayload(value),
  ]);
  const decoded = await post(`${server.url}/decode`, [asJson(old)]);
  expect(decoded.status).toBe(200);
  expect(JSON.parse(decoded.text)).toEqual({ payloads: [asJson(defaultPayloadConverter.toPayload(value))] });
});

test('a plain payload passes /decode unchanged; missing fields are empty, as in Temporal JSON', async () => {
  const plain = asJson(defaultPayloadConverter.toPayload({ phase: 'awaiting-approval' }));
  const decoded = await post(`${server.url}/decode`, [plain, { metadata: { encoding: b64('binary/null') } }]);
  expect(decoded.status).toBe(200);
  expect(JSON.parse(decoded.text)).toEqual({
    payloads: [plain, { metadata: { encoding: b64('binary/null') }, data: '' }],
  });
});

test('the temporal CLI endpoint template: /<namespace>/decode', async () => {
  const plain = asJson(defaultPayloadConverter.toPayload('x'));
  const decoded = await post(`${server.url}/my-ns.a1b2c/decode`, [plain]);
  expect(decoded.status).toBe(200);
  expect(JSON.parse(decoded.text)).toEqual({ payloads: [plain] });
});

test('a payload under a key the server lacks: 422 naming the key', async () => {
  const [foreign] = await new AesGcmPayloadCodec(randomBytes(32), 'k0').encode([defaultPayloadConverter.toPayload(1)]);
  const answer = await post(`${server.url}/decode`, [asJson(foreign)]);
  expect(answer.status).toBe(422);
  expect(answer.text).toMatch(/key 'k0', which this process does not hold \(its keys: 'k1', 'k2'\)/);
});

describe('CORS', () => {
  const preflight = (origin: string, extra: Record<string, string> = {}) =>
    call(`${server.url}/decode`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-namespace',
        ...extra,
      },
    });

  test('a preflight from an allowed origin gets that origin, POST and the UI’s headers', async () => {
    for (const origin of ['http://localhost:8233', 'http://127.0.0.1:8080']) {
      const answer = await preflight(origin);
      expect(answer.status).toBe(204);
      expect(answer.headers['access-control-allow-origin']).toBe(origin);
      expect(answer.headers['access-control-allow-methods']).toBe('POST');
      expect(answer.headers['access-control-allow-headers']?.split(/,\s*/)).toEqual(
        expect.arrayContaining(['content-type', 'x-namespace', 'authorization']),
      );
      expect(answer.headers['access-control-allow-credentials']).toBe('true');
      expect(answer.headers.vary).toBe('Origin');
    }
    const privateNetwork = await preflight('http://localhost:8233', {
      'access-control-request-private-network': 'true',
    });
    expect(privateNetwork.headers['access-control-allow-private-network']).toBe('true');
  });

  test('another origin gets 403 and no CORS headers, for the preflight and for the POST', async () => {
    const answer = await preflight('https://evil.example');
    expect(answer.status).toBe(403);
    expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    expect(answer.text).toContain('--origin https://evil.example');
    const posted = await post(`${server.url}/decode`, [], { origin: 'https://evil.example' });
    expect(posted.status).toBe(403);
    expect(posted.headers['access-control-allow-origin']).toBeUndefined();
    expect(logged.some((l) => l.includes('from https://evil.example: 403'))).toBe(true);
  });

  test('the POST from an allowed origin carries the origin back', async () => {
    const posted = await post(`${server.url}/decode`, [], { origin: 'http://localhost:8233' });
    expect(posted.status).toBe(200);
    expect(posted.headers['access-control-allow-origin']).toBe('http://localhost:8233');
  });

  test('--origin replaces the defaults', async () => {
    const cloud = await startCodecServer({ codec, port: 0, origins: ['https://cloud.temporal.io/'] });
    try {
      const ok = await call(`${cloud.url}/decode`, {
        method: 'OPTIONS',
        headers: { origin: 'https://cloud.temporal.io' },
      });
      expect(ok.headers['access-control-allow-origin']).toBe('https://cloud.temporal.io');
      const local = await call(`${cloud.url}/decode`, {
        method: 'OPTIONS',
        headers: { origin: 'http://localhost:8233' },
      });
      expect(local.status).toBe(403);
    } finally {
      await cloud.close();
    }
  });
});

test('with a token: 401 without Authorization, 403 with another token, 200 with it; preflights need none', async () => {
  const none = await post(`${guarded.url}/decode`, []);
  expect(none.status).toBe(401);
  expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
  const wrong = await post(`${guarded.url}/decode`, [], { authorization: `Bearer ${TOKEN.slice(1)}x` });
  expect(wrong.status).toBe(403);
  const basic = await post(`${guarded.url}/decode`, [], { authorization: `Basic ${b64(`u:${TOKEN}`)}` });
  expect(basic.status).toBe(401);
  const right = await post(`${guarded.url}/decode`, [], { authorization: `Bearer ${TOKEN}` });
  expect(right.status).toBe(200);
  expect(JSON.parse(right.text)).toEqual({ payloads: [] });
  const preflight = await call(`${guarded.url}/decode`, {
    method: 'OPTIONS',
    headers: { origin: 'http://localhost:8233', 'access-control-request-headers': 'authorization' },
  });
  expect(preflight.status).toBe(204);
});

test('bad JSON and a wrong shape: 400 saying what is wrong', async () => {
  const broken = await call(`${server.url}/decode`, { headers: json, body: '{"payloads": [' });
  expect(broken.status).toBe(400);
  expect(broken.text).toMatch(/^the body is not JSON/);
  const shapes: [unknown, RegExp][] = [
    [[1, 2], /expected a JSON object \{"payloads": \[\.\.\.\]\}/],
    [{ payload: [] }, /expected a JSON object \{"payloads"/],
    [{ payloads: ['x'] }, /payloads\[0\]: expected an object/],
    [{ payloads: [{ data: 5 }] }, /payloads\[0\]\.data: expected a base64 string/],
    [{ payloads: [{ metadata: { encoding: 'not base64!' } }] }, /payloads\[0\]\.metadata\.encoding: expected a base64/],
    [{ payloads: [{ metadata: ['x'] }] }, /payloads\[0\]\.metadata: expected an object/],
  ];
  for (const [body, message] of shapes) {
    const answer = await call(`${server.url}/encode`, { headers: json, body: JSON.stringify(body) });
    expect(answer.status).toBe(400);
    expect(answer.text).toMatch(message);
  }
});

test('a body over 4 MiB: 413, declared or streamed', async () => {
  const huge = 'x'.repeat(MAX_CODEC_BODY_BYTES + 1);
  const declared = await call(`${server.url}/decode`, { headers: json, body: huge });
  expect(declared.status).toBe(413);
  const chunk = Buffer.alloc(1024 * 1024, 'x');
  const streamed = await call(`${server.url}/decode`, { headers: json, body: [chunk, chunk, chunk, chunk, chunk] });
  expect(streamed.status).toBe(413);
  // Up to the limit is taken.
  const payloads = [{ metadata: { encoding: b64('binary/plain') }, data: b64(Buffer.alloc(2 * 1024 * 1024)) }];
  expect((await post(`${server.url}/decode`, payloads)).status).toBe(200);
});

test('unknown paths 404, other methods 405', async () => {
  expect((await post(`${server.url}/decrypt`, [])).status).toBe(404);
  expect((await post(`${server.url}/a/b/decode`, [])).status).toBe(404);
  const get = await call(`${server.url}/decode`, { method: 'GET' });
  expect(get.status).toBe(405);
  expect(get.headers.allow).toBe('POST, OPTIONS');
});

test('options are checked', async () => {
  await expect(startCodecServer({ codec, port: 70000 })).rejects.toThrow(/port 70000/);
  await expect(startCodecServer({ codec, port: 0, origins: ['localhost:8233'] })).rejects.toThrow(/origin/);
  await expect(startCodecServer({ codec, port: 0, token: 'short' })).rejects.toThrow(/at least 16/);
});

describe('migration codec-server', () => {
  let dir: string;
  const saved = { ...process.env };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'codec-server-'));
    await writeFile(join(dir, 'keys'), `k1 ${keyring.entries[0].key.toString('hex')}\n`);
    await writeFile(join(dir, 'token'), `${TOKEN}\n`);
  });
  afterAll(async () => {
    process.env = saved;
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    process.env = { ...saved };
    delete process.env.MIGRATION_PAYLOAD_KEY_FILE;
    delete process.env.MIGRATION_PAYLOAD_KEY_ID;
    delete process.env.MIGRATION_CODEC_TOKEN;
  });

  async function run(args: string[], onOut?: (soFar: string) => void) {
    let out = '';
    let err = '';
    let connected = false;
    const code = await main(['codec-server', ...args], {
      out: (s) => {
        out += s;
        onOut?.(out);
      },
      err: (s) => (err += s),
      isTTY: false,
      client: () => {
        connected = true;
        return Promise.reject(new Error('no Temporal in unit tests'));
      },
    });
    return { code, out, err, connected };
  }

  test('without the key file it does not start: exit 2, naming MIGRATION_PAYLOAD_KEY_FILE', async () => {
    const r = await run(['--port', '0']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('set MIGRATION_PAYLOAD_KEY_FILE to the key file the worker uses');
    expect(r.out).toBe('');
    expect(r.connected).toBe(false);
  });

  test('bad flags: exit 2 naming the flag and what it takes', async () => {
    process.env.MIGRATION_PAYLOAD_KEY_FILE = join(dir, 'keys');
    const cases: [string[], string][] = [
      [['--port', 'http'], "--port 'http': expected a port number"],
      [['--port', '65536'], "--port '65536': expected a port number"],
      [['--host', 'a b'], "--host 'a b': expected an address"],
      [
        ['--origin', 'http://localhost:8233,cloud.temporal.io'],
        "--origin 'cloud.temporal.io': expected the Web UI's origin",
      ],
      [['--origin', 'https://cloud.temporal.io/namespaces'], "--origin 'https://cloud.temporal.io/namespaces'"],
      [['--token-file', join(dir, 'missing')], `--token-file '${join(dir, 'missing')}': cannot read it`],
    ];
    for (const [args, message] of cases) {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.err).toContain(message);
    }
    process.env.MIGRATION_CODEC_TOKEN = 'short';
    const r = await run(['--port', '0']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('MIGRATION_CODEC_TOKEN: expected at least 16 printable characters');
    expect(r.err).not.toContain("'short'");
  });

  test('a bad key file: exit 2 naming the file and line', async () => {
    await writeFile(join(dir, 'bad'), `k1 ${randomBytes(32).toString('hex')}\nk1 ${randomBytes(32).toString('hex')}\n`);
    process.env.MIGRATION_PAYLOAD_KEY_FILE = join(dir, 'bad');
    const r = await run(['--port', '0']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`MIGRATION_PAYLOAD_KEY_FILE=${join(dir, 'bad')}: line 2: key id 'k1' is already on line 1`);
  });

  test('serves until SIGTERM, printing where and the settings for the UI and the CLI', async () => {
    process.env.MIGRATION_PAYLOAD_KEY_FILE = join(dir, 'keys');
    const before = process.listeners('SIGTERM');
    let listening: (url: string) => void = () => {};
    const url = new Promise<string>((resolve) => (listening = resolve));
    const running = run(['--port', '0', '--token-file', join(dir, 'token')], (out) => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) listening(m[1]);
    });
    const base = await Promise.race([
      url,
      running.then((r) => Promise.reject(new Error(`exited ${r.code} before listening: ${r.err}`))),
    ]);
    // The command's own SIGTERM handler, called as the signal would (nothing else hears it).
    const stop = () => {
      for (const l of process.listeners('SIGTERM').filter((l) => !before.includes(l))) (l as () => void)();
    };
    try {
      expect(process.listeners('SIGTERM').filter((l) => !before.includes(l))).toHaveLength(1);
      const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(value)]);
      // The keyring holds only k1 here: what k2 sealed is refused, what k1 sealed decodes.
      expect((await post(`${base}/decode`, [asJson(sealed)], { authorization: `Bearer ${TOKEN}` })).status).toBe(422);
      const [old] = await new AesGcmPayloadCodec(keyring.entries[0].key, 'k1').encode([
        defaultPayloadConverter.toPayload(value),
      ]);
      const decoded = await post(`${base}/decode`, [asJson(old)], { authorization: `Bearer ${TOKEN}` });
      expect(decoded.status).toBe(200);
      expect((await post(`${base}/decode`, [asJson(old)])).status).toBe(401);
    } finally {
      stop();
    }
    const r = await running;
    expect(r.code).toBe(0);
    expect(r.out).toContain(`TEMPORAL_CODEC_ENDPOINT=${base}`);
    expect(r.out).toContain(`--codec-endpoint ${base} --codec-auth "Bearer <token>"`);
    expect(r.out).toContain('Temporal Cloud: Namespace → Codec Server');
    expect(r.out).toContain('TEMPORAL_CODEC_PASS_ACCESS_TOKEN');
    expect(r.out).toMatch(/codec server stopped\n$/);
    expect(r.out).not.toContain(TOKEN);
    expect(process.listeners('SIGTERM')).toEqual(before);
    await expect(call(`${base}/decode`, { body: '{}' })).rejects.toThrow(/ECONNREFUSED/);
  });
});
