// The environment the worker and the CLI read: defaults, accepted values, and a clear refusal
// naming the variable for a value it cannot take.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, readConfig } from '../../src/config';
import { webUiLink } from '../../src/cli/context';
import { handleError } from '../../src/cli/errors';

describe('readConfig', () => {
  it('has defaults when nothing is set, and treats empty values as unset', () => {
    expect(readConfig({})).toEqual({ logLevel: 'INFO', payloadKeyId: 'default', versioning: true });
    expect(readConfig({ LOG_LEVEL: '', MIGRATION_MAX_CACHED_WORKFLOWS: ' ' })).toEqual({
      logLevel: 'INFO',
      payloadKeyId: 'default',
      versioning: true,
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

  it('is under TEMPORAL_UI_URL when it is set', () => {
    process.env.TEMPORAL_UI_URL = 'https://ui.example.test/';
    expect(webUiLink('prod ns', 'migrate-a/b')).toBe(
      'https://ui.example.test/namespaces/prod%20ns/workflows/migrate-a%2Fb',
    );
  });

  it('otherwise sits beside the address of the envconfig profile the client connects with', () => {
    delete process.env.TEMPORAL_UI_URL;
    delete process.env.TEMPORAL_ADDRESS;
    const dir = mkdtempSync(join(tmpdir(), 'envconfig-'));
    const file = join(dir, 'temporal.toml');
    writeFileSync(file, '[profile.staging]\naddress = "temporal.internal:7400"\nnamespace = "staging"\n');
    process.env.TEMPORAL_CONFIG_FILE = file;
    process.env.TEMPORAL_PROFILE = 'staging';
    expect(webUiLink('staging', 'w')).toBe('http://temporal.internal:8400/namespaces/staging/workflows/w');
  });
});
