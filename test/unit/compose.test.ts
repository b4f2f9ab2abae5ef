/**
 * docker-compose.temporal.yml, the Dockerfile it builds the worker from, and the scripts its jobs
 * run (deploy/), checked by reading them and by running the scripts against stand-in tools: no
 * Docker engine is needed.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseDocument } from 'yaml';
import { isHostPort } from '../../src/config';
import { SEARCH_ATTRIBUTE_KEYS } from '../../src/shared/search-attributes';
import { WORKER_HEAP_MIB } from '../../src/worker';

const ROOT = join(__dirname, '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface LongPort {
  target: number;
  host_ip?: string;
  published?: string | number;
}
interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string };
  environment?: Record<string, string | null>;
  ports?: (string | LongPort)[];
  expose?: string[];
  volumes?: string[];
  entrypoint?: string[];
  command?: string[];
  restart?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval: string; timeout: string; retries: number; start_period?: string };
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

const text = read('docker-compose.temporal.yml');
const doc = parseDocument(text, { uniqueKeys: true });
const compose = doc.toJS() as Compose;
const { services } = compose;
const image = (name: string) => services[name].image!;
const tag = (name: string) => image(name).split(':')[1];

/** A bind mount `./path:/in/container[:ro]` of a service: [host path, container path, mode]. */
function bindMounts(service: Service): [string, string, string | undefined][] {
  return (service.volumes ?? [])
    .filter((v) => v.startsWith('./'))
    .map((v) => v.split(':') as [string, string, string | undefined]);
}

/** The default of a `${VAR:-default}` value, or the value itself. */
const withDefault = (value: string) => /^\$\{\w+:-(.*)\}$/.exec(value)?.[1] ?? value;

describe('docker-compose.temporal.yml', () => {
  it('is valid YAML with no duplicate keys', () => {
    expect(doc.errors).toEqual([]);
    expect(doc.warnings).toEqual([]);
  });

  it('has the database, the schema job, the server, the namespace job, the Web UI and the worker', () => {
    expect(Object.keys(services).sort()).toEqual([
      'postgresql',
      'temporal',
      'temporal-admin-tools',
      'temporal-create-namespace',
      'temporal-ui',
      'worker',
    ]);
  });

  it('pins every image to an exact version, with the server and the admin tools on the same one', () => {
    const pulled = Object.entries(services).filter(([name]) => name !== 'worker');
    for (const [, s] of pulled) {
      expect(s.image).toMatch(/^[a-z0-9/_-]+:\d+\.\d+(\.\d+)?[\w.-]*$/); // PostgreSQL: major.minor
      expect(s.image).not.toMatch(/:latest$|auto-setup/);
    }
    expect(image('postgresql')).toMatch(/^postgres:/);
    expect(image('temporal')).toMatch(/^temporalio\/server:\d+\.\d+\.\d+$/);
    expect(image('temporal-admin-tools')).toMatch(/^temporalio\/admin-tools:/);
    expect(image('temporal-create-namespace')).toMatch(/^temporalio\/admin-tools:/);
    expect(image('temporal-ui')).toMatch(/^temporalio\/ui:/);
    expect(tag('temporal-admin-tools')).toBe(tag('temporal'));
    expect(tag('temporal-create-namespace')).toBe(tag('temporal'));
    // The server line that ships separate server and admin-tools images (no auto-setup).
    const [major, minor] = tag('temporal').split('.').map(Number);
    expect(major === 1 && minor >= 30).toBe(true);
  });

  it('builds the worker from the Dockerfile at the root', () => {
    const w = services.worker;
    expect(w.image).toBeUndefined();
    expect(w.build).toMatchObject({ context: '.' });
    expect(existsSync(join(ROOT, w.build!.context, w.build!.dockerfile ?? 'Dockerfile'))).toBe(true);
  });

  it('starts each service once what it needs is ready', () => {
    const dependsOn = (name: string) => services[name].depends_on;
    expect(dependsOn('temporal-admin-tools')).toEqual({ postgresql: { condition: 'service_healthy' } });
    expect(dependsOn('temporal')).toMatchObject({
      'temporal-admin-tools': { condition: 'service_completed_successfully' },
    });
    expect(dependsOn('temporal-create-namespace')).toEqual({ temporal: { condition: 'service_healthy' } });
    expect(dependsOn('temporal-ui')).toEqual({ temporal: { condition: 'service_healthy' } });
    expect(dependsOn('worker')).toEqual({
      'temporal-create-namespace': { condition: 'service_completed_successfully' },
    });
  });

  it('runs the two jobs once per `up`: their scripts mounted from deploy/, never restarted', () => {
    for (const [name, script] of [
      ['temporal-admin-tools', 'deploy/setup-postgres.sh'],
      ['temporal-create-namespace', 'deploy/create-namespace.sh'],
    ] as const) {
      const s = services[name];
      const mount = bindMounts(s).find(([host]) => host === `./${script}`);
      expect(mount).toBeDefined();
      expect(mount![2]).toBe('ro');
      expect(existsSync(join(ROOT, script))).toBe(true);
      expect([...(s.entrypoint ?? []), ...(s.command ?? [])]).toEqual(['sh', mount![1]]);
      expect(s.restart).toBe('no');
      expect(s.healthcheck).toBeUndefined();
    }
  });

  it('checks the database with pg_isready over TCP and keeps it in a named volume', () => {
    const pg = services.postgresql;
    const [volume, mount] = pg.volumes![0].split(':');
    expect(mount).toBe('/var/lib/postgresql/data');
    expect(Object.keys(compose.volumes)).toContain(volume);
    expect(pg.healthcheck!.test.join(' ')).toMatch(/pg_isready .*-h 127\.0\.0\.1/);
    expect(pg.ports).toBeUndefined();
  });

  it('gives the server its database, its dynamic config, and a health check without the temporal CLI', () => {
    const t = services.temporal;
    expect(t.environment).toMatchObject({
      DB: 'postgres12',
      DB_PORT: '5432',
      POSTGRES_SEEDS: 'postgresql',
      POSTGRES_USER: 'temporal',
      BIND_ON_IP: '0.0.0.0',
    });
    const check = t.healthcheck!.test;
    expect(check).toEqual(['CMD', 'nc', '-z', '127.0.0.1', '7233']);
    expect(check.join(' ')).not.toMatch(/\btemporal\b|\btctl\b/);

    const configPath = t.environment!.DYNAMIC_CONFIG_FILE_PATH!;
    const mount = bindMounts(t).find(([, inside]) => configPath.startsWith(`${inside}/`));
    expect(mount).toBeDefined();
    expect(mount![0]).toBe('./deploy/dynamicconfig');
    const onHost = join(ROOT, mount![0], configPath.slice(mount![1].length + 1));
    expect(onHost).toBe(join(ROOT, 'deploy/dynamicconfig/development-sql.yaml'));
    const dynamic = parse(readFileSync(onHost, 'utf8')) as Record<string, { value: unknown }[]>;
    expect(dynamic['limit.maxIDLength'][0].value).toBe(255);
  });

  it('uses one database password everywhere', () => {
    const password = services.postgresql.environment!.POSTGRES_PASSWORD;
    expect(password).toBeTruthy();
    expect(services.temporal.environment!.POSTGRES_PWD).toBe(password);
    expect(services['temporal-admin-tools'].environment!.SQL_PASSWORD).toBe(password);
    expect(services['temporal-admin-tools'].environment!.POSTGRES_USER).toBe(
      services.postgresql.environment!.POSTGRES_USER,
    );
  });

  it('points the namespace job, the UI and the worker at the server and one namespace', () => {
    for (const name of ['temporal-create-namespace', 'temporal-ui', 'worker'])
      expect(services[name].environment!.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(services.worker.environment!.TEMPORAL_NAMESPACE).toBe(
      services['temporal-create-namespace'].environment!.NAMESPACE,
    );
    const days = withDefault(services['temporal-create-namespace'].environment!.NAMESPACE_RETENTION_DAYS!);
    expect(Number(days)).toBeGreaterThanOrEqual(30);
  });

  it('passes AWS credentials through to the worker, and ~/.aws read-only', () => {
    const env = services.worker.environment!;
    for (const name of [
      'AWS_PROFILE',
      'AWS_REGION',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
    ]) {
      expect(env).toHaveProperty(name);
      // No value: taken from the shell when set there, else left unset (never a literal secret).
      expect(env[name]).toBeNull();
    }
    expect(services.worker.volumes).toContain('${HOME}/.aws:/home/node/.aws:ro');
  });

  it('checks the worker on its /readyz, on the port the image serves it', () => {
    const hc = services.worker.healthcheck!;
    const script = hc.test.join(' ');
    expect(hc.test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
    expect(script).toContain(`http://127.0.0.1:${healthPort()}/readyz`);
    expect(script).toMatch(/statusCode === 200 \? 0 : 1/);
    expect(services.worker.expose).toEqual(expect.arrayContaining([metricsPort(), healthPort()]));
  });

  it('publishes ports on 127.0.0.1 only, the worker metrics on a free port each so that it scales', () => {
    const published = Object.values(services).flatMap((s) => s.ports ?? []);
    expect(published.length).toBeGreaterThan(0);
    for (const p of published) {
      if (typeof p === 'string') expect(p).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
      else expect(p.host_ip).toBe('127.0.0.1');
    }
    expect(services.temporal.ports).toEqual(['127.0.0.1:7233:7233']);
    expect(services['temporal-ui'].ports).toEqual(['127.0.0.1:8080:8080']);
    const [metrics] = services.worker.ports as LongPort[];
    expect(metrics).toMatchObject({ target: Number(metricsPort()), host_ip: '127.0.0.1' });
    expect(metrics.published).toBeUndefined();
  });

  it('gives every health check an interval, a timeout and retries', () => {
    for (const name of ['postgresql', 'temporal', 'worker']) {
      const hc = services[name].healthcheck!;
      expect(hc.test[0]).toMatch(/^CMD(-SHELL)?$/);
      expect(hc.interval).toMatch(/^\d+s$/);
      expect(hc.timeout).toMatch(/^\d+s$/);
      expect(hc.retries).toBeGreaterThan(0);
    }
  });

  it('declares every named volume it uses', () => {
    const used = Object.values(services)
      .flatMap((s) => s.volumes ?? [])
      .map((v) => v.split(':')[0])
      .filter((v) => !v.startsWith('.') && !v.startsWith('/') && !v.startsWith('$'));
    for (const v of used) expect(Object.keys(compose.volumes)).toContain(v);
    expect(used.length).toBeGreaterThan(0);
  });
});

/** The Dockerfile's instructions: comments dropped, continued lines joined. */
interface Instruction {
  keyword: string;
  args: string;
}
const dockerfile: Instruction[] = read('Dockerfile')
  .split('\n')
  .filter((line) => !line.trim().startsWith('#'))
  .join('\n')
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '')
  .map((line) => {
    const [keyword, ...rest] = line.split(/\s+/);
    return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
  });

/** The stages: each FROM with the instructions up to the next. */
const stages = dockerfile.reduce<{ from: string; name?: string; body: Instruction[] }[]>((all, i) => {
  if (i.keyword === 'FROM') {
    const [from, as, name] = i.args.split(/\s+/);
    all.push({ from, ...(as?.toUpperCase() === 'AS' ? { name } : {}), body: [] });
  } else all[all.length - 1].body.push(i);
  return all;
}, []);
const final = stages[stages.length - 1];
const stageNamed = (name: string) => stages.find((s) => s.name === name);
/** The stages a stage is built on, itself first. */
const lineage = (stage: (typeof stages)[number]): (typeof stages)[number][] => {
  const parent = stageNamed(stage.from);
  return parent ? [stage, ...lineage(parent)] : [stage];
};
const runs = (stage: (typeof stages)[number]) =>
  lineage(stage).flatMap((s) => s.body.filter((i) => i.keyword === 'RUN').map((i) => i.args));

const cmd = JSON.parse(final.body.find((i) => i.keyword === 'CMD')!.args) as string[];
const flag = (name: string) => cmd[cmd.indexOf(name) + 1];
const metricsPort = () => flag('--metrics').split(':').pop()!;
const healthPort = () => flag('--health').split(':').pop()!;
const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; scripts: Record<string, string> };

describe('Dockerfile', () => {
  it('builds on a pinned glibc Node image, 22 or later, never Alpine', () => {
    const bases = stages.filter((s) => !stageNamed(s.from)).map((s) => s.from);
    expect(bases.length).toBeGreaterThan(0);
    for (const base of bases) {
      const m = /^node:(\d+)\.\d+\.\d+-(bookworm|trixie)(-slim)?$/.exec(base);
      expect(m).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThanOrEqual(22);
      expect(base).not.toMatch(/alpine|musl/);
    }
  });

  it('compiles and prebuilds the workflow bundle in a build stage, and installs only production packages to run', () => {
    const build = stages.find((s) => s !== final && runs(s).some((r) => r.includes('npm run build')));
    expect(build).toBeDefined();
    expect(runs(build!).some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    // npm run build writes lib/ and the bundle the worker runs without bundling at start.
    expect(pkg.scripts.build).toContain('node lib/bundle.js');
    expect(read('src/bundle.ts')).toContain("BUNDLE_FILE = 'workflow-bundle.js'");

    expect(runs(final).some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    expect(runs(final).some((r) => r.includes('npm run build'))).toBe(false);
    const copied = final.body.filter((i) => i.keyword === 'COPY' && i.args.startsWith(`--from=${build!.name}`));
    expect(copied.map((i) => i.args)).toContain(`--from=${build!.name} /app/lib ./lib`);
  });

  it('runs as the non-root node user', () => {
    const users = final.body.filter((i) => i.keyword === 'USER').map((i) => i.args);
    expect(users.length).toBeGreaterThan(0);
    expect(users[users.length - 1]).toBe('node');
    // Nothing after it switches back.
    const last = final.body.map((i) => i.keyword).lastIndexOf('USER');
    expect(final.body.slice(last + 1).some((i) => i.keyword === 'USER')).toBe(false);
  });

  it('starts the worker of the CLI the package installs, with metrics and health checks on', () => {
    expect(cmd.slice(0, 3)).toEqual(['node', pkg.bin.migration, 'worker']);
    expect(pkg.bin.migration).toBe('lib/client.js');
    expect(isHostPort(flag('--metrics'))).toBe(true);
    expect(isHostPort(flag('--health'))).toBe(true);
    expect(flag('--metrics')).toMatch(/^0\.0\.0\.0:/);
    expect(flag('--health')).toMatch(/^0\.0\.0\.0:/);
    expect(metricsPort()).not.toBe(healthPort());
  });

  it('limits the heap as npm run worker does', () => {
    const env = final.body
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');
    expect(env).toContain(`NODE_OPTIONS=--max-old-space-size=${WORKER_HEAP_MIB}`);
  });

  it('checks its health with node on /readyz (no curl in a slim image)', () => {
    const hc = final.body.find((i) => i.keyword === 'HEALTHCHECK')!;
    expect(hc).toBeDefined();
    const [, exec] = /\bCMD (\[.*\])$/.exec(hc.args)!;
    const check = JSON.parse(exec) as string[];
    expect(check.slice(0, 2)).toEqual(['node', '-e']);
    expect(check[2]).toContain(`http://127.0.0.1:${healthPort()}/readyz`);
    expect(runs(final).join(' ')).not.toMatch(/\bcurl\b|\bwget\b/);
  });

  it('leaves local builds, dependencies and test output out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['node_modules', 'lib', 'test-artifacts', '.git']) expect(ignored).toContain(entry);
  });
});

/**
 * The jobs' scripts run by `sh` against stand-ins for `temporal`, `temporal-sql-tool` and `nc`
 * that record their arguments (one call a line) and keep what they were told in a folder.
 */
describe('deploy/ scripts', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'compose-scripts-'));
    const stub = (name: string, body: string) => {
      writeFileSync(join(dir, name), `#!/bin/sh\necho "${name} $*" >> "$CALLS"\n${body}\n`);
      chmodSync(join(dir, name), 0o755);
    };
    stub('nc', 'exit 0');
    stub('temporal-sql-tool', 'exit 0');
    stub(
      'temporal',
      `case "$*" in
  *"cluster health"*) exit 0 ;;
  *"namespace describe"*)
    [ -f "$STATE/retention" ] || { echo "namespace not found" >&2; exit 1; }
    printf '{\\n  "config": {\\n    "workflowExecutionRetentionTtl": "%ss"\\n  }\\n}\\n' "$(cat "$STATE/retention")" ;;
  *"namespace create"*|*"namespace update"*)
    days=$(echo "$*" | sed -n 's/.*--retention \\([0-9]*\\)d.*/\\1/p'); echo $((days * 86400)) > "$STATE/retention" ;;
  *"search-attribute create"*)
    if [ -f "$STATE/attributes" ]; then echo "Search attribute MigrationPhase already exists"; exit 1; fi
    touch "$STATE/attributes" ;;
  *"search-attribute list"*)
    printf '  Name  Type\\n  WorkflowId  Keyword\\n'
    [ -f "$STATE/attributes" ] && printf '  MigrationPhase  Keyword\\n  PlanName  Keyword\\n  GuardedInstance  Keyword\\n' ;;
  *) exit 3 ;;
esac`,
    );
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const run = (script: string, env: Record<string, string> = {}) => {
    const r = spawnSync('sh', [join(ROOT, script)], {
      env: { PATH: `${dir}:/usr/bin:/bin`, CALLS: join(dir, 'calls'), STATE: dir, TRIES: '3', ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });
    const calls = existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n') : [];
    writeFileSync(join(dir, 'calls'), '');
    return { code: r.status, out: r.stdout + r.stderr, calls: calls.filter((c) => c !== '') };
  };
  const days = () => Number(readFileSync(join(dir, 'retention'), 'utf8')) / 86400;
  const composeEnv = (name: string) =>
    Object.fromEntries(Object.entries(services[name].environment ?? {}).map(([k, v]) => [k, withDefault(String(v))]));

  it('setup-postgres.sh creates, sets up and updates both databases from the shipped schema', () => {
    const { code, calls } = run('deploy/setup-postgres.sh', composeEnv('temporal-admin-tools'));
    expect(code).toBe(0);
    const sql = calls.filter((c) => c.startsWith('temporal-sql-tool'));
    for (const [db, schema] of [
      ['temporal', 'temporal'],
      ['temporal_visibility', 'visibility'],
    ]) {
      const mine = sql.filter((c) => c.includes(`--database ${db} `));
      expect(mine.map((c) => c.split(`--database ${db} `)[1])).toEqual([
        'create',
        'setup-schema -v 0.0',
        `update-schema -d /etc/temporal/schema/postgresql/v12/${schema}/versioned`,
      ]);
      for (const c of mine)
        expect(c).toContain('--plugin postgres12 --endpoint postgresql --port 5432 --user temporal');
    }
  });

  it('setup-postgres.sh stops at once without its settings', () => {
    const { code, calls } = run('deploy/setup-postgres.sh', {});
    expect(code).not.toBe(0);
    expect(calls.filter((c) => c.startsWith('temporal-sql-tool'))).toEqual([]);
  });

  it('create-namespace.sh creates the namespace with at least 30 days of retention and registers the attributes', () => {
    const { code, calls, out } = run('deploy/create-namespace.sh', composeEnv('temporal-create-namespace'));
    expect(code).toBe(0);
    expect(calls[0]).toMatch(/^temporal operator cluster health --address temporal:7233/);
    expect(calls).toContainEqual(
      expect.stringMatching(/^temporal operator namespace create --namespace default .*--retention 30d/),
    );
    expect(days()).toBeGreaterThanOrEqual(30);
    const register = calls.find((c) => c.startsWith('temporal operator search-attribute create'))!;
    expect(register).toContain('--namespace default');
    for (const key of SEARCH_ATTRIBUTE_KEYS) expect(register).toContain(`--name ${key.name} --type Keyword`);
    expect(register.match(/--name /g)).toHaveLength(SEARCH_ATTRIBUTE_KEYS.length);
    expect(out).toContain('namespace default is ready');
  });

  it('create-namespace.sh runs again: existing namespace and attributes are fine, a short retention is raised', () => {
    expect(run('deploy/create-namespace.sh').code).toBe(0);
    const again = run('deploy/create-namespace.sh');
    expect(again.code).toBe(0);
    expect(again.calls.some((c) => / namespace (create|update) /.test(c))).toBe(false);
    expect(again.out).toContain('already there');

    writeFileSync(join(dir, 'retention'), String(3 * 86400));
    const raised = run('deploy/create-namespace.sh');
    expect(raised.code).toBe(0);
    expect(raised.calls).toContainEqual(
      expect.stringMatching(/namespace update --namespace default .*--retention 30d/),
    );
    expect(days()).toBe(30);

    writeFileSync(join(dir, 'retention'), String(90 * 86400));
    const longer = run('deploy/create-namespace.sh');
    expect(longer.calls.some((c) => / namespace update /.test(c))).toBe(false);
    expect(days()).toBe(90);
  });

  it('create-namespace.sh refuses a retention under 30 days', () => {
    for (const value of ['7', '29', 'a month']) {
      const r = run('deploy/create-namespace.sh', { NAMESPACE_RETENTION_DAYS: value });
      expect(r.code).toBe(2);
      expect(r.out).toContain(`NAMESPACE_RETENTION_DAYS=${value}`);
      expect(r.calls).toEqual([]);
    }
    expect(run('deploy/create-namespace.sh', { NAMESPACE_RETENTION_DAYS: '45' }).code).toBe(0);
    expect(days()).toBe(45);
  });

  it('create-namespace.sh fails when the server never answers', () => {
    writeFileSync(join(dir, 'temporal'), '#!/bin/sh\necho "temporal $*" >> "$CALLS"\nexit 1\n');
    const r = spawnSync('sh', [join(ROOT, 'deploy/create-namespace.sh')], {
      env: { PATH: `${dir}:/usr/bin:/bin`, CALLS: join(dir, 'calls'), TRIES: '2' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('gave up after 2 tries');
    expect(readFileSync(join(dir, 'calls'), 'utf8')).not.toContain('namespace create');
  }, 20_000);
});
