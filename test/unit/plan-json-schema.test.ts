import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { parse } from 'yaml';
import { PLAN_JSON_SCHEMA_PATH, planJsonSchema, renderPlanJsonSchema } from '../../src/plan/json-schema';

// A parsed plan, edited freely to make it wrong.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = Record<string, any>;

const ROOT = join(__dirname, '..', '..');
const committed = readFileSync(join(ROOT, PLAN_JSON_SCHEMA_PATH), 'utf8');
const example = () => parse(readFileSync(join(ROOT, 'examples', 'video-message-app.yaml'), 'utf8')) as Loose;

/** Strict, except for `required` inside oneOf/if branches, which name keys defined beside them. */
const compile = () =>
  new Ajv({ allErrors: true, strict: true, strictRequired: false, formats: { uri: /^https?:\/\/\S+$/ } }).compile(
    JSON.parse(committed) as object,
  );

/** Every node of a JSON Schema that describes an object. */
function objectNodes(node: unknown, path = '#'): { path: string; node: Record<string, unknown> }[] {
  if (Array.isArray(node)) return node.flatMap((n, i) => objectNodes(n, `${path}/${i}`));
  if (!node || typeof node !== 'object') return [];
  const record = node as Record<string, unknown>;
  const here = record.type === 'object' ? [{ path, node: record }] : [];
  return [
    ...here,
    ...Object.entries(record).flatMap(([k, v]) => (k === 'default' ? [] : objectNodes(v, `${path}/${k}`))),
  ];
}

describe('plan JSON Schema', () => {
  it('is committed exactly as `npm run schema` writes it', () => {
    // If this fails: run `npm run schema` and commit schema/plan.schema.json.
    expect(committed).toBe(renderPlanJsonSchema());
  });

  it('describes the file as written: defaults are optional', () => {
    const schema = planJsonSchema() as { required: string[]; properties: Record<string, { required?: string[] }> };
    expect(schema.required).toEqual(['name', 'region', 'source', 'elasticIp', 'target', 'services']);
    expect(schema.properties.target.required).toEqual(['instanceType', 'subnetIds', 'securityGroupIds']);
  });

  it('allows no unknown key anywhere', () => {
    const nodes = objectNodes(JSON.parse(committed));
    expect(nodes.length).toBeGreaterThanOrEqual(12);
    for (const { path, node } of nodes)
      expect({ path, additionalProperties: node.additionalProperties }).toEqual({ path, additionalProperties: false });
  });

  it('accepts the JSON example, $schema key included', () => {
    const validate = compile();
    expect(validate(JSON.parse(readFileSync(join(ROOT, 'examples', 'minimal-on-demand.json'), 'utf8')))).toBe(true);
  });

  it('accepts the example plan', () => {
    const validate = compile();
    const ok = validate(example());
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('accepts JSON plans with only the required keys', () => {
    const validate = compile();
    const plan = example();
    for (const key of ['remote', 'ingress', 'checks', 'approval', 'spot']) delete plan[key];
    expect(validate(plan)).toBe(true);
  });

  it.each([
    ['an unknown key', (p: Loose) => (p.target.spotPrice = 1)],
    ['a malformed subnet id', (p: Loose) => (p.target.subnetIds = ['subnet-x'])],
    ['a bad CIDR', (p: Loose) => (p.ingress.publicCidrs = ['10.0.0.0/33'])],
    ['a port out of range', (p: Loose) => (p.services[0].port = 70000)],
    ['both imageId and imageParameter', (p: Loose) => (p.target.imageId = 'ami-0123456789abcdef0')],
    ['neither imageId nor imageParameter', (p: Loose) => delete p.target.imageParameter],
    ['SSH from 0.0.0.0/0 without allowSshFromAnywhere', (p: Loose) => (p.ingress.adminCidrs = ['0.0.0.0/0'])],
    ['a duplicate CIDR', (p: Loose) => (p.ingress.publicCidrs = ['0.0.0.0/0', '0.0.0.0/0'])],
    ['a bad market', (p: Loose) => (p.target.market = 'cheap')],
    ['a bad duration', (p: Loose) => (p.approval.timeout = '7 days')],
  ])('rejects %s', (_name, edit) => {
    const validate = compile();
    const plan = example();
    edit(plan);
    expect(validate(plan)).toBe(false);
  });

  it('still accepts SSH from anywhere when it is asked for', () => {
    const validate = compile();
    const plan = example();
    plan.ingress = { adminCidrs: ['0.0.0.0/0'], allowSshFromAnywhere: true };
    expect(validate(plan)).toBe(true);
  });
});
