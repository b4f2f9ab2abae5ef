/**
 * The codec server: the HTTP endpoint the Temporal Web UI and the `temporal` CLI call to show
 * encrypted payloads decoded, and to encrypt what they send (`migration codec-server`).
 *
 * - `POST /decode` and `POST /encode` (also under one path segment, `/<namespace>/decode`, for
 *   the `temporal` CLI's `{namespace}` endpoint template): a JSON body `{"payloads": [...]}`,
 *   each payload `{"metadata": {"<key>": "<base64>"}, "data": "<base64>"}` as Temporal's JSON
 *   writes them; the answer has the same shape. A payload that is not encrypted passes /decode
 *   unchanged.
 * - CORS for the Web UI: a preflight (OPTIONS) from an allowed origin is answered with that
 *   origin, the method and the headers the UI sends (Content-Type, X-Namespace, Authorization,
 *   Authorization-Extras); any request from another origin gets 403 and no CORS headers.
 *   Requests without an Origin (the `temporal` CLI, curl) are not browsers' and pass.
 * - With a token, every request but a preflight needs `Authorization: Bearer <token>`: 401
 *   without one, 403 with another (compared in constant time).
 * - Bodies over 4 MiB get 413, malformed JSON 400, a payload that cannot be decrypted (unknown
 *   key id, altered) 422; every refusal has a one-line text body saying why.
 *
 * It logs refusals and failures (never payloads nor tokens).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';

/** The Web UI of `temporal server start-dev` (8233) and of the compose file (8080), by either name. */
export const DEFAULT_CODEC_ORIGINS: readonly string[] = [
  'http://localhost:8233',
  'http://127.0.0.1:8233',
  'http://localhost:8080',
  'http://127.0.0.1:8080',
];
export const DEFAULT_CODEC_HOST = '127.0.0.1';
export const DEFAULT_CODEC_PORT = 8888;
export const MAX_CODEC_BODY_BYTES = 4 * 1024 * 1024;
/** The headers a browser may send: the Web UI's, with and without "pass access token". */
export const CODEC_ALLOWED_HEADERS = 'content-type, x-namespace, authorization, authorization-extras';
/** A token: printable ASCII without spaces, long enough not to be guessed. */
export const CODEC_TOKEN = {
  pattern: /^[\x21-\x7e]{16,}$/,
  expected: 'at least 16 printable characters without spaces, e.g. from `openssl rand -hex 32`',
};

export interface CodecServerOptions {
  /** Encodes and decodes: the worker's codec, with the same keys. */
  codec: PayloadCodec;
  /** The address to listen on (default 127.0.0.1: only this machine). */
  host?: string;
  /** The port (default 8888; 0 for any free one). */
  port?: number;
  /** The browser origins allowed to call it (default DEFAULT_CODEC_ORIGINS). */
  origins?: readonly string[];
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
  /** The largest body taken (default 4 MiB). */
  maxBodyBytes?: number;
  /** Told about each refused or failed request, one line (default: nothing). */
  log?: (line: string) => void;
}

export interface CodecServer {
  /** Its base URL, e.g. http://127.0.0.1:8888 (the port the system chose when 0 was asked for). */
  readonly url: string;
  /** The origins it answers, as browsers send them. */
  readonly origins: readonly string[];
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** An origin as a browser sends it (`scheme://host[:port]`, no path), or undefined when `s` is not one. */
export function normalizeOrigin(s: string): string | undefined {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  if (u.pathname !== '/' || u.search || u.hash || u.username || u.password) return undefined;
  return u.origin;
}

/** A refusal: its status and the line that says why. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const ROUTE = /^\/(?:[^/]+\/)?(encode|decode)\/?$/;

/** Serves the codec endpoint; resolves once it listens. Fails when the address cannot be listened on. */
export async function startCodecServer(options: CodecServerOptions): Promise<CodecServer> {
  const host = options.host ?? DEFAULT_CODEC_HOST;
  const port = options.port ?? DEFAULT_CODEC_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new RangeError(`codec server: port ${port}: expected a whole number 0–65535`);
  const origins = (options.origins ?? DEFAULT_CODEC_ORIGINS).map((o) => {
    const origin = normalizeOrigin(o);
    if (!origin) throw new TypeError(`codec server: origin ${JSON.stringify(o)}: expected scheme://host[:port]`);
    return origin;
  });
  if (options.token !== undefined && !CODEC_TOKEN.pattern.test(options.token))
    throw new TypeError(`codec server: the token: expected ${CODEC_TOKEN.expected}`);
  const maxBodyBytes = options.maxBodyBytes ?? MAX_CODEC_BODY_BYTES;
  const allowed = new Set(origins);
  const tokenDigest = options.token === undefined ? undefined : digest(options.token);
  const log = options.log ?? (() => {});

  const server = createServer((req, res) => {
    serve(req, res).catch((err: unknown) => {
      // Only a bug gets here: every expected failure is a Refusal.
      log(`${req.method} ${req.url}: ${(err as Error).message}`);
      if (!res.headersSent) send(res, 500, 'internal error');
      else res.destroy();
    });
  });
  server.requestTimeout = 60_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const origin = req.headers.origin;
    res.setHeader('Vary', 'Origin');
    if (origin !== undefined && allowed.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      // The UI's "include cross-origin credentials" needs it; an echoed origin, never `*`, goes with it.
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    let path = req.url ?? '/';
    try {
      path = new URL(path, 'http://codec.invalid').pathname;
    } catch {
      // Left as sent: no route matches it.
    }
    try {
      const route = ROUTE.exec(path);
      if (!route) throw new Refusal(404, `no endpoint ${path}: POST /decode or /encode`);
      if (origin !== undefined && !allowed.has(origin))
        throw new Refusal(403, `origin ${origin} is not allowed: start the codec server with --origin ${origin}`);
      if (req.method === 'OPTIONS') {
        res.writeHead(204, {
          'Access-Control-Allow-Methods': 'POST',
          'Access-Control-Allow-Headers': CODEC_ALLOWED_HEADERS,
          'Access-Control-Max-Age': '600',
          // Chrome asks before a public page (Temporal Cloud's UI) calls a private address.
          ...(req.headers['access-control-request-private-network'] === 'true'
            ? { 'Access-Control-Allow-Private-Network': 'true' }
            : {}),
        });
        res.end();
        return;
      }
      if (req.method !== 'POST')
        throw new Refusal(405, `${req.method} ${path}: only POST (and OPTIONS)`, { Allow: 'POST, OPTIONS' });
      if (tokenDigest) {
        const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
        if (!m)
          throw new Refusal(401, 'this codec server needs Authorization: Bearer <token>', {
            'WWW-Authenticate': 'Bearer realm="codec"',
          });
        if (!timingSafeEqual(digest(m[1]), tokenDigest)) throw new Refusal(403, 'the token is not this codec server’s');
      }
      const body = await readBody(req, maxBodyBytes);
      const payloads = parsePayloads(body);
      let out: Payload[];
      try {
        out = route[1] === 'decode' ? await options.codec.decode(payloads) : await options.codec.encode(payloads);
      } catch (err) {
        throw new Refusal(422, `cannot ${route[1]}: ${(err as Error).message}`);
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ payloads: out.map(payloadToJson) }));
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      log(`${req.method} ${path}${origin ? ` from ${origin}` : ''}: ${err.status} ${err.message}`);
      send(res, err.status, err.message, err.headers);
    }
  }

  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `codec server: cannot listen on ${host}:${port}: ${err.code === 'EADDRINUSE' ? 'the port is in use (choose another with --port)' : err.message}`,
        ),
      );
    server.once('error', failed);
    server.listen({ host, port }, () => {
      server.off('error', failed);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const shown = ['0.0.0.0', '::'].includes(bound.address) ? 'localhost' : bound.address;
  return {
    url: `http://${shown.includes(':') ? `[${shown}]` : shown}:${bound.port}`,
    origins,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function send(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${message}\n`);
}

/**
 * The body, refused with 413 beyond `max` bytes. The rest of a body too large is read and
 * dropped, so that the client, still sending, gets the answer.
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const tooLarge = () => new Refusal(413, `the body is larger than the ${max} bytes taken`);
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > max) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      req.off('end', onEnd);
      req.resume();
      reject(tooLarge());
    };
    const onEnd = () => resolve(Buffer.concat(chunks));
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', reject);
  });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function bytes(v: unknown, at: string): Buffer {
  if (typeof v !== 'string' || !BASE64.test(v)) throw new Refusal(400, `${at}: expected a base64 string`);
  return Buffer.from(v, 'base64');
}

/** `{"payloads": [...]}` as Temporal's JSON writes them (bytes in base64); 400 naming the first wrong field. */
function parsePayloads(body: Buffer): Payload[] {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new Refusal(400, `the body is not JSON: ${(err as Error).message}`);
  }
  if (!isRecord(json) || !Array.isArray(json.payloads))
    throw new Refusal(400, 'expected a JSON object {"payloads": [...]}');
  return json.payloads.map((p: unknown, i) => {
    const at = `payloads[${i}]`;
    if (!isRecord(p)) throw new Refusal(400, `${at}: expected an object {"metadata": {...}, "data": "<base64>"}`);
    if (p.metadata != null && !isRecord(p.metadata))
      throw new Refusal(400, `${at}.metadata: expected an object of base64 strings`);
    const metadata = Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, bytes(v, `${at}.metadata.${k}`)]),
    );
    return { metadata, data: p.data == null ? Buffer.alloc(0) : bytes(p.data, `${at}.data`) };
  });
}

function payloadToJson(p: Payload): { metadata: Record<string, string>; data: string } {
  return {
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? []).toString('base64'),
  };
}
