/**
 * Every environment variable the worker and the CLI read besides Temporal's own (TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, which @temporalio/envconfig reads) and the
 * AWS SDK's. A value that is set but wrong is refused with the variable's name and what it takes,
 * never ignored.
 */
import { readFileSync } from 'node:fs';
import type { LogLevel } from '@temporalio/worker';
import { redact, type NotifyTarget } from './activities/notify';

export const LOG_LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

export interface Config {
  /** LOG_LEVEL: the worker's log level (default INFO). */
  logLevel: LogLevel;
  /** METRICS_ADDRESS: where the worker serves Prometheus metrics, `host:port`. */
  metricsAddress?: string;
  /** MIGRATION_HEALTH_ADDRESS: where the worker serves /healthz and /readyz, `host:port` (src/health.ts). */
  healthAddress?: string;
  /** MIGRATION_MAX_CACHED_WORKFLOWS: the worker's sticky cache size, a whole number ≥ 0. */
  maxCachedWorkflows?: number;
  /** MIGRATION_PAYLOAD_KEY_FILE: the file holding the payload encryption key (src/codec.ts). */
  payloadKeyFile?: string;
  /** MIGRATION_PAYLOAD_KEY_ID: the key's id in encrypted payloads (default `default`). */
  payloadKeyId: string;
  /** TEMPORAL_UI_URL: the Web UI's base URL for links; without it, guessed from the Temporal address. */
  temporalUiUrl?: string;
  /** TEMPORAL_PROFILE: the envconfig profile to connect with. */
  temporalProfile?: string;
  /** MIGRATION_VERSIONING: `on` (default) runs the worker as a Worker Deployment Version; `off` unversioned. */
  versioning: boolean;
  /** MIGRATION_DEPLOYMENT_NAME: the Worker Deployment's name (default `ec2-gpu-migration`). */
  deploymentName?: string;
  /** MIGRATION_BUILD_ID: the build id (default: the hash of the workflow bundle). */
  buildId?: string;
  /** WORKFLOW_BUNDLE_PATH: the prebuilt workflow bundle (default: lib/workflow-bundle.js, else bundled at start). */
  workflowBundlePath?: string;
  /**
   * MIGRATION_NOTIFY_URLS (whitespace- or comma-separated) or MIGRATION_NOTIFY_FILE (one per
   * line, `#` comments): the receivers of notifications. Secrets: never logged whole.
   */
  notifyTargets: NotifyTarget[];
}

/** A variable that is set to something it cannot take. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    value: string,
    expected: string,
  ) {
    super(`${variable}=${JSON.stringify(value)}: expected ${expected}`);
    this.name = 'ConfigError';
  }
}

/** Reads and checks the environment; unset and empty variables take their defaults. */
export function readConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v ? v : undefined;
  };
  const config: Config = {
    logLevel: 'INFO',
    payloadKeyId: get('MIGRATION_PAYLOAD_KEY_ID') ?? 'default',
    versioning: true,
    notifyTargets: [],
  };

  const level = get('LOG_LEVEL');
  if (level !== undefined) {
    const upper = level.toUpperCase() as LogLevel;
    if (!LOG_LEVELS.includes(upper)) throw new ConfigError('LOG_LEVEL', level, `one of ${LOG_LEVELS.join(', ')}`);
    config.logLevel = upper;
  }

  const metrics = get('METRICS_ADDRESS');
  if (metrics !== undefined) {
    if (!isHostPort(metrics)) throw new ConfigError('METRICS_ADDRESS', metrics, 'host:port, e.g. 0.0.0.0:9464');
    config.metricsAddress = metrics;
  }

  const health = get('MIGRATION_HEALTH_ADDRESS');
  if (health !== undefined) {
    if (!isHostPort(health)) throw new ConfigError('MIGRATION_HEALTH_ADDRESS', health, 'host:port, e.g. 0.0.0.0:8081');
    config.healthAddress = health;
  }

  const cached = get('MIGRATION_MAX_CACHED_WORKFLOWS');
  if (cached !== undefined) {
    if (!/^\d+$/.test(cached)) throw new ConfigError('MIGRATION_MAX_CACHED_WORKFLOWS', cached, 'a whole number ≥ 0');
    config.maxCachedWorkflows = Number(cached);
  }

  config.payloadKeyFile = get('MIGRATION_PAYLOAD_KEY_FILE');
  config.temporalProfile = get('TEMPORAL_PROFILE');

  const versioning = get('MIGRATION_VERSIONING');
  if (versioning !== undefined) {
    if (!['on', 'off'].includes(versioning)) throw new ConfigError('MIGRATION_VERSIONING', versioning, 'on or off');
    config.versioning = versioning === 'on';
  }
  const deployment = get('MIGRATION_DEPLOYMENT_NAME');
  if (deployment !== undefined) {
    if (!DEPLOYMENT_NAME.pattern.test(deployment))
      throw new ConfigError('MIGRATION_DEPLOYMENT_NAME', deployment, DEPLOYMENT_NAME.expected);
    config.deploymentName = deployment;
  }
  const buildId = get('MIGRATION_BUILD_ID');
  if (buildId !== undefined) {
    if (!BUILD_ID.pattern.test(buildId)) throw new ConfigError('MIGRATION_BUILD_ID', buildId, BUILD_ID.expected);
    config.buildId = buildId;
  }
  config.workflowBundlePath = get('WORKFLOW_BUNDLE_PATH');

  const urls = get('MIGRATION_NOTIFY_URLS');
  const file = get('MIGRATION_NOTIFY_FILE');
  if (urls !== undefined) config.notifyTargets = notifyTargets('MIGRATION_NOTIFY_URLS', urls.split(/[\s,]+/));
  else if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError('MIGRATION_NOTIFY_FILE', file, `a readable file (${(err as Error).message})`);
    }
    const lines = text.split('\n').map((l) => l.replace(/#.*/, '').trim());
    config.notifyTargets = notifyTargets(`MIGRATION_NOTIFY_FILE (${file})`, lines);
  }

  const ui = get('TEMPORAL_UI_URL');
  if (ui !== undefined) {
    if (!isHttpUrl(ui)) throw new ConfigError('TEMPORAL_UI_URL', ui, 'an http:// or https:// URL');
    config.temporalUiUrl = ui;
  }
  return config;
}

/**
 * Notification receivers: `https://…` (a Slack incoming webhook when the host is
 * hooks.slack.com, else a JSON webhook), or with the format named: `slack+https://…` (any
 * Slack-compatible webhook: Mattermost, Rocket.Chat…), `json+https://…`.
 */
function notifyTargets(variable: string, items: string[]): NotifyTarget[] {
  return items
    .filter((i) => i !== '')
    .map((item) => {
      const m = /^(slack|json)\+(.*)$/.exec(item);
      const url = m ? m[2] : item;
      if (!isHttpUrl(url))
        throw new ConfigError(
          variable,
          redact(item),
          'http(s):// URLs, optionally prefixed slack+ or json+ (e.g. slack+https://chat.example.com/hooks/…)',
        );
      const format = m
        ? (m[1] as NotifyTarget['format'])
        : /(^|\.)hooks\.slack\.com$/i.test(new URL(url).hostname)
          ? 'slack'
          : 'json';
      return { url, format };
    });
}

/** A Worker Deployment's name (no `.`: it separates name and build id in a version string). */
export const DEPLOYMENT_NAME = { pattern: /^[A-Za-z0-9_-]{1,255}$/, expected: 'letters, digits, - and _ (up to 255)' };
/** A build id: a git SHA, a bundle hash or a release number. */
export const BUILD_ID = {
  pattern: /^[A-Za-z0-9_.:+-]{1,255}$/,
  expected: 'letters, digits, - _ . : + (up to 255), e.g. a git SHA',
};

/** `host:port` or `[v6]:port`, the port 1–65535 (0 for any free one). */
export function isHostPort(s: string): boolean {
  const m = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  return m !== null && Number(m[1]) <= 65535;
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}
