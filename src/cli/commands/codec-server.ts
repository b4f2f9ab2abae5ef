import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { AesGcmPayloadCodec, ENV_PAYLOAD_KEY_FILE, keyringFromEnv } from '../../codec';
import {
  CODEC_TOKEN,
  DEFAULT_CODEC_HOST,
  DEFAULT_CODEC_ORIGINS,
  DEFAULT_CODEC_PORT,
  normalizeOrigin,
  startCodecServer,
} from '../../codec-server';
import type { CliContext } from '../context';
import { EXIT, UsageError } from '../errors';

export const ENV_CODEC_TOKEN = 'MIGRATION_CODEC_TOKEN';

const collect = (value: string, previous: string[]) => [...previous, value];

interface CodecServerFlags {
  port: string;
  host: string;
  origin: string[];
  tokenFile?: string;
}

/** The flags checked; UsageError (exit 2) naming the first wrong one. */
export function codecServerSettings(
  opts: CodecServerFlags,
  env: NodeJS.ProcessEnv = process.env,
): { port: number; host: string; origins: string[]; token?: string } {
  if (!/^\d{1,5}$/.test(opts.port) || Number(opts.port) > 65535)
    throw new UsageError(`--port '${opts.port}': expected a port number, 0–65535 (0: any free one)`);
  if (!/^(?:[A-Za-z0-9.-]+|\[?[0-9A-Fa-f:.]+\]?)$/.test(opts.host))
    throw new UsageError(
      `--host '${opts.host}': expected an address to listen on, e.g. 127.0.0.1 (default) or 0.0.0.0`,
    );
  const given = opts.origin.flatMap((o) => o.split(',')).map((o) => o.trim());
  const origins = (given.length > 0 ? given : [...DEFAULT_CODEC_ORIGINS]).map((o) => {
    const origin = normalizeOrigin(o);
    if (!origin)
      throw new UsageError(
        `--origin '${o}': expected the Web UI's origin, scheme://host[:port] without a path, e.g. https://cloud.temporal.io`,
      );
    return origin;
  });

  let token: string | undefined;
  if (opts.tokenFile !== undefined) {
    try {
      token = readFileSync(opts.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`--token-file '${opts.tokenFile}': cannot read it (${(err as Error).message})`);
    }
    if (!CODEC_TOKEN.pattern.test(token))
      throw new UsageError(`--token-file '${opts.tokenFile}': the token: expected ${CODEC_TOKEN.expected}`);
  } else if (env[ENV_CODEC_TOKEN]?.trim()) {
    token = env[ENV_CODEC_TOKEN].trim();
    // Never echoed: it is a secret.
    if (!CODEC_TOKEN.pattern.test(token)) throw new UsageError(`${ENV_CODEC_TOKEN}: expected ${CODEC_TOKEN.expected}`);
  }
  return { port: Number(opts.port), host: opts.host.replace(/^\[(.*)\]$/, '$1'), origins, token };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** `migration codec-server`: the Web UI's and the `temporal` CLI's codec endpoint, until SIGINT or SIGTERM. */
export function registerCodecServer(program: Command, ctx: CliContext, done: (code: number) => void): void {
  program
    .command('codec-server')
    .description(
      `serve the codec endpoint (POST /decode, /encode) the Temporal Web UI and the temporal CLI use to show encrypted payloads decoded; needs the key file (${ENV_PAYLOAD_KEY_FILE}); runs until SIGINT or SIGTERM`,
    )
    .option('--port <n>', 'the port to listen on (0: any free one)', String(DEFAULT_CODEC_PORT))
    .option(
      '--host <address>',
      'the address to listen on; anything but loopback lets others decrypt: then use --token-file',
      DEFAULT_CODEC_HOST,
    )
    .addOption(
      new Option(
        '--origin <url>',
        'a Web UI origin allowed to call it from a browser, repeatable or comma-separated; Temporal Cloud: https://cloud.temporal.io',
      )
        .argParser(collect)
        .default([], DEFAULT_CODEC_ORIGINS.join(', ')),
    )
    .option(
      '--token-file <file>',
      `require Authorization: Bearer <the token in the file> on every request (default: ${ENV_CODEC_TOKEN}, if set)`,
    )
    .action(async (opts: CodecServerFlags) => {
      const settings = codecServerSettings(opts);
      const keyring = keyringFromEnv();
      if (!keyring)
        throw new UsageError(
          `codec-server needs the payload keys: set ${ENV_PAYLOAD_KEY_FILE} to the key file the worker uses`,
        );
      const server = await startCodecServer({
        codec: new AesGcmPayloadCodec(keyring),
        ...settings,
        log: (line) => ctx.err(`codec-server: ${line}\n`),
      });
      const { url } = server;
      const lines = [
        `codec server listening on ${url} (keys: ${keyring.ids.join(', ')}; encrypts with ${keyring.current.id})`,
        `browser origins allowed: ${server.origins.join(', ')}`,
        'Point the Web UI and the temporal CLI at it:',
        `  the Web UI server (temporalio/ui image, compose) and the temporal CLI: TEMPORAL_CODEC_ENDPOINT=${url}`,
        `  temporal server start-dev --ui-codec-endpoint ${url}`,
        `  any Web UI, this browser only: Workflows → Configure Codec Server → ${url}`,
        `  Temporal Cloud: Namespace → Codec Server → ${url} (and --origin https://cloud.temporal.io here)`,
        `  temporal workflow show --workflow-id <id> --codec-endpoint ${url}${settings.token ? ' --codec-auth "Bearer <token>"' : ''}`,
      ];
      if (settings.token)
        lines.push(
          'Every request needs Authorization: Bearer <token> (the temporal CLI: --codec-auth or TEMPORAL_CODEC_AUTH).',
          "The Web UI cannot send this token: its pass-access-token setting (TEMPORAL_CODEC_PASS_ACCESS_TOKEN) forwards the UI's own login token, over https only.",
        );
      else if (!LOOPBACK.test(settings.host))
        lines.push(
          `WARNING: listening on ${settings.host} without a token: whoever reaches ${url} can decrypt every payload. Use --token-file or ${ENV_CODEC_TOKEN}, or --host 127.0.0.1.`,
        );
      ctx.out(`${lines.join('\n')}\n`);

      let stop = () => {};
      const stopped = new Promise<void>((resolve) => {
        stop = resolve;
      });
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await stopped;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        await server.close();
      }
      ctx.out('codec server stopped\n');
      done(EXIT.ok);
    });
}
