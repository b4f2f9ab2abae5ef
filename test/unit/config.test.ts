// The environment the worker and the CLI read: defaults, accepted values, and a clear refusal
// naming the variable for a value it cannot take.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, readConfig } from '../../src/config';
import { COMPOSE_UI_PORT, webUiBase, webUiLink } from '../../src/cli/context';
import { handleError } from '../../src/cli/errors';

describe('readConfig', () => {
  it('has defaults when nothing is set, and treats empty values as unset', () => {
    expect(readConfig({})).toEqual({ logLevel: 'INFO', payloadKeyId: 'default', versioning: true, notifyTargets: [] });
    expect(readConfig({ LOG_LEVEL: '', MIGRATION_MAX_CACHED_WORKFLOWS: ' ' })).toEqual({
      logLevel: 'INFO',
      payloadKeyId: 'default',
      versioning: true,
      notifyTargets: [],
    });
  });

  it('reads every variable it knows', () => {
    expect(
      readConfig({
        LOG_LEVEL: 'debug',
        METRICS_ADDRESS: '0.0.0.0:9464',
        MIGRATION_MAX_CACHED_WORKFLOWS: '0',
        MIGRATION_PAYLOAD_KEY_FILE: '/run/key',
        MIGRATION_PAYLOAD_KEY_ID: 'k2',
        TEMPORAL_UI_URL: 'https://cloud.temporal.io',
        TEMPORAL_PROFILE: 'prod',
        MIGRATION_VERSIONING: 'off',
        MIGRATION_DEPLOYMENT_NAME: 'gpu-prod',
        MIGRATION_BUILD_ID: '1.4.0+3f2a',
        WORKFLOW_BUNDLE_PATH: '/app/lib/workflow-bundle.js',
      }),
    ).toEqual({
      logLevel: 'DEBUG',
      metricsAddress: '0.0.0.0:9464',
      maxCachedWorkflows: 0,
      payloadKeyFile: '/run/key',
      payloadKeyId: 'k2',
      temporalUiUrl: 'https://cloud.temporal.io',
      temporalProfile: 'prod',
      versioning: false,
      deploymentName: 'gpu-prod',
      buildId: '1.4.0+3f2a',
      workflowBundlePath: '/app/lib/workflow-bundle.js',
      notifyTargets: [],
    });
    expect(readConfig({ METRICS_ADDRESS: '[::1]:9464' }).metricsAddress).toBe('[::1]:9464');
  });

  it.each([
    ['LOG_LEVEL', 'verbose', 'one of TRACE, DEBUG, INFO, WARN, ERROR'],
    ['METRICS_ADDRESS', '9464', 'host:port'],
    ['METRICS_ADDRESS', 'localhost:70000', 'host:port'],
    ['MIGRATION_MAX_CACHED_WORKFLOWS', 'lots', 'a whole number ≥ 0'],
    ['MIGRATION_MAX_CACHED_WORKFLOWS', '-1', 'a whole number ≥ 0'],
    ['MIGRATION_MAX_CACHED_WORKFLOWS', '2.5', 'a whole number ≥ 0'],
    ['TEMPORAL_UI_URL', 'localhost:8233', 'an http:// or https:// URL'],
    ['MIGRATION_VERSIONING', 'yes', 'on or off'],
    ['MIGRATION_DEPLOYMENT_NAME', 'gpu.prod', 'letters, digits, - and _'],
    ['MIGRATION_BUILD_ID', 'v 2', 'letters, digits, - _ . : +'],
  ])('refuses %s=%s, naming what it takes', (variable, value, expected) => {
    let thrown: unknown;
    try {
      readConfig({ [variable]: value });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).variable).toBe(variable);
    expect((thrown as Error).message).toContain(`${variable}="${value}"`);
    expect((thrown as Error).message).toContain(expected);
  });

  it('a refused variable is bad input for the CLI: exit 2, named in the message', () => {
    const lines: string[] = [];
    const code = handleError(new ConfigError('LOG_LEVEL', 'loud', 'one of …'), (s) => lines.push(s));
    expect(code).toBe(2);
    expect(lines.join('')).toContain('Fix or unset LOG_LEVEL');
  });
});

describe('webUiLink', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });
  const nothingAnswers = async () => false;

  it('is under TEMPORAL_UI_URL when it is set', async () => {
    process.env.TEMPORAL_UI_URL = 'https://ui.example.test/';
    expect(await webUiLink('prod ns', 'migrate-a/b')).toBe(
      'https://ui.example.test/namespaces/prod%20ns/workflows/migrate-a%2Fb',
    );
  });

  it('otherwise sits beside the address of the envconfig profile the client connects with', async () => {
    delete process.env.TEMPORAL_UI_URL;
    delete process.env.TEMPORAL_ADDRESS;
    const dir = mkdtempSync(join(tmpdir(), 'envconfig-'));
    const file = join(dir, 'temporal.toml');
    writeFileSync(file, '[profile.staging]\naddress = "temporal.internal:7400"\nnamespace = "staging"\n');
    process.env.TEMPORAL_CONFIG_FILE = file;
    process.env.TEMPORAL_PROFILE = 'staging';
    const base = await webUiBase(undefined, nothingAnswers);
    expect(await webUiLink('staging', 'w', base)).toBe('http://temporal.internal:8400/namespaces/staging/workflows/w');
  });

  it('is Temporal Cloud’s for a Cloud address, namespace endpoint or API-key endpoint', async () => {
    delete process.env.TEMPORAL_UI_URL;
    for (const address of ['prod.a2dd6.tmprl.cloud:7233', 'us-east-1.aws.api.temporal.io:7233']) {
      const base = await webUiBase(address, nothingAnswers);
      expect(await webUiLink('prod.a2dd6', 'migrate-x', base)).toBe(
        'https://cloud.temporal.io/namespaces/prod.a2dd6/workflows/migrate-x',
      );
    }
  });

  it('is the dev server’s UI (1000 ports up) when it answers there', async () => {
    delete process.env.TEMPORAL_UI_URL;
    const ui = createServer((_req, res) => res.end('ui'));
    await new Promise<void>((resolve) => ui.listen(0, '127.0.0.1', resolve));
    try {
      const port = (ui.address() as AddressInfo).port;
      expect(await webUiBase(`127.0.0.1:${port - 1000}`)).toBe(`http://127.0.0.1:${port}`);
    } finally {
      await new Promise((resolve) => ui.close(resolve));
    }
  });

  it('is the compose file’s UI on 8080 when only that answers, and the dev server’s guess when none does', async () => {
    delete process.env.TEMPORAL_UI_URL;
    const asked: string[] = [];
    const onlyCompose = async (url: string) => (asked.push(url), url.endsWith(`:${COMPOSE_UI_PORT}`));
    expect(await webUiBase('temporal.lan:7233', onlyCompose)).toBe('http://temporal.lan:8080');
    expect(asked).toEqual(['http://temporal.lan:8233', 'http://temporal.lan:8080']);
    expect(await webUiBase('temporal.lan:7233', nothingAnswers)).toBe('http://temporal.lan:8233');
  });
});
