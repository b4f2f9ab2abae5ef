import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';

/** docker-compose.temporal.yml, checked by reading it: no Docker engine is needed. */
const text = readFileSync(join(__dirname, '..', '..', 'docker-compose.temporal.yml'), 'utf8');

interface Service {
  image: string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval: string; timeout: string; retries: number; start_period?: string };
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

const doc = parseDocument(text, { uniqueKeys: true });
const compose = doc.toJS() as Compose;
const { services } = compose;

describe('docker-compose.temporal.yml', () => {
  it('is valid YAML with no duplicate keys', () => {
    expect(doc.errors).toEqual([]);
    expect(doc.warnings).toEqual([]);
  });

  it('has the server, its database, the admin tools and the Web UI', () => {
    expect(Object.keys(services).sort()).toEqual(['postgresql', 'temporal', 'temporal-admin-tools', 'temporal-ui']);
  });

  it('pins every image to an exact version', () => {
    const images = Object.values(services).map((s) => s.image);
    for (const image of images) {
      expect(image).toMatch(/^[a-z0-9/_-]+:\d+\.\d+(\.\d+)?[\w.-]*$/);
      expect(image).not.toMatch(/:latest$/);
    }
    expect(services.postgresql.image).toMatch(/^postgres:/);
    expect(services.temporal.image).toMatch(/^temporalio\/auto-setup:/);
    expect(services['temporal-admin-tools'].image).toMatch(/^temporalio\/admin-tools:/);
    expect(services['temporal-ui'].image).toMatch(/^temporalio\/ui:/);
    // The admin tools match the server version.
    const serverVersion = services.temporal.image.split(':')[1];
    expect(services['temporal-admin-tools'].image.split(':')[1].startsWith(serverVersion)).toBe(true);
  });

  it('keeps the database in a named volume and checks it with pg_isready', () => {
    const pg = services.postgresql;
    const [volume, mount] = pg.volumes![0].split(':');
    expect(mount).toBe('/var/lib/postgresql/data');
    expect(Object.keys(compose.volumes)).toContain(volume);
    expect(pg.healthcheck!.test.join(' ')).toMatch(/pg_isready/);
    expect(pg.ports).toBeUndefined();
  });

  it('starts the server once the database is healthy, with the database settings', () => {
    const t = services.temporal;
    expect(t.depends_on).toEqual({ postgresql: { condition: 'service_healthy' } });
    expect(t.environment).toMatchObject({
      DB: 'postgres12',
      DB_PORT: '5432',
      POSTGRES_SEEDS: 'postgresql',
      POSTGRES_USER: 'temporal',
    });
    expect(t.environment!.POSTGRES_PWD).toBeTruthy();
    expect(t.ports).toEqual(['127.0.0.1:7233:7233']);
    expect(t.healthcheck!.test.join(' ')).toMatch(/temporal operator cluster health|tctl .*cluster health/);
    expect(t.healthcheck!.test.join(' ')).toContain('temporal:7233');
  });

  it('uses the same database password on both sides', () => {
    expect(services.temporal.environment!.POSTGRES_PWD).toBe(services.postgresql.environment!.POSTGRES_PASSWORD);
  });

  it('points the admin tools and the UI at the server once it is healthy', () => {
    for (const name of ['temporal-admin-tools', 'temporal-ui']) {
      expect(services[name].depends_on).toEqual({ temporal: { condition: 'service_healthy' } });
      expect(services[name].environment!.TEMPORAL_ADDRESS).toBe('temporal:7233');
    }
    expect(services['temporal-ui'].ports).toEqual(['127.0.0.1:8080:8080']);
  });

  it('gives every health check an interval, a timeout and retries', () => {
    for (const name of ['postgresql', 'temporal']) {
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
      .filter((v) => !v.startsWith('.') && !v.startsWith('/'));
    for (const v of used) expect(Object.keys(compose.volumes)).toContain(v);
    expect(used.length).toBeGreaterThan(0);
  });
});
