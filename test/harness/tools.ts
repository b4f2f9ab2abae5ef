/**
 * Where the local tools live. scripts/bootstrap.sh installs them into a cache outside the repo
 * and writes their paths to `<cache>/tools.env`; the environment wins over that file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface ToolPaths {
  /** The `temporal` CLI (dev server). */
  temporalBin: string;
  /** The time-skipping test server. */
  testServerBin: string;
  /** A Python interpreter that can `import moto.server`. */
  motoPython: string;
}

const VARS = {
  temporalBin: 'TEMPORAL_BIN',
  testServerBin: 'TEMPORAL_TEST_SERVER_BIN',
  motoPython: 'MOTO_PYTHON',
} as const;

export function toolsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.EC2_GPU_MIGRATION_CACHE || join(homedir(), '.cache', 'ec2-gpu-migration');
}

/** Parses the KEY=VALUE lines bootstrap.sh writes (no quoting, no expansion). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    out[m[1]] = m[2].trim().replace(/^(['"])(.*)\1$/, '$2');
  }
  return out;
}

/** The tool paths from the environment, else from `<cache>/tools.env`; throws when missing. */
export function toolPaths(env: NodeJS.ProcessEnv = process.env): ToolPaths {
  const file = join(toolsCacheDir(env), 'tools.env');
  let fromFile: Record<string, string> | undefined;
  const lookup = (name: string): string | undefined => {
    const value = env[name];
    if (value) return value;
    if (fromFile === undefined) fromFile = existsSync(file) ? parseEnvFile(readFileSync(file, 'utf8')) : {};
    return fromFile[name] || undefined;
  };
  const missing: string[] = [];
  const paths = {} as ToolPaths;
  for (const key of Object.keys(VARS) as (keyof ToolPaths)[]) {
    const value = lookup(VARS[key]);
    if (!value) missing.push(VARS[key]);
    else if (!existsSync(value)) missing.push(`${VARS[key]} (${value} does not exist)`);
    else paths[key] = value;
  }
  if (missing.length > 0) {
    throw new Error(
      `The local test tools are not installed: missing ${missing.join(', ')} ` +
        `(looked in the environment and in ${file}). Run \`npm test\` or \`bash scripts/bootstrap.sh\` first.`,
    );
  }
  return paths;
}
