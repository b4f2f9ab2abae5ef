/**
 * The plan's JSON Schema, for editors and other tools, generated from the zod schema. It
 * describes the file as written (defaults are optional keys). Rules that span fields are added
 * here where JSON Schema can say them; the rest (unique service names and ports, checks naming a
 * public service, …) only the loader checks.
 */
import { z } from 'zod';
import { planSchema } from './schema';

type JsonObject = Record<string, unknown>;

const obj = (value: unknown): JsonObject => value as JsonObject;

/** Where the committed copy lives, relative to the repository root. */
export const PLAN_JSON_SCHEMA_PATH = 'schema/plan.schema.json';

export function planJsonSchema(): JsonObject {
  const generated = z.toJSONSchema(planSchema, {
    io: 'input',
    target: 'draft-07',
    unrepresentable: 'throw',
  }) as JsonObject;
  const { $schema, ...rest } = generated;
  const schema: JsonObject = { $schema, title: 'ec2-gpu-migration plan', ...rest };
  const props = obj(schema.properties);

  const target = obj(props.target);
  // Exactly one image source: with both, both branches match and oneOf fails.
  target.oneOf = [{ required: ['imageId'] }, { required: ['imageParameter'] }];
  obj(obj(target.properties).fallbackInstanceTypes).uniqueItems = true;

  const ingress = obj(props.ingress);
  obj(obj(ingress.properties).publicCidrs).uniqueItems = true;
  obj(obj(ingress.properties).adminCidrs).uniqueItems = true;
  // SSH open to the whole internet only on purpose.
  ingress.if = {
    properties: { adminCidrs: { type: 'array', contains: { const: '0.0.0.0/0' } } },
    required: ['adminCidrs'],
  };
  ingress.then = { properties: { allowSshFromAnywhere: { const: true } }, required: ['allowSshFromAnywhere'] };

  return schema;
}

/** The file's exact text: what `npm run schema` writes. */
export function renderPlanJsonSchema(): string {
  return `${JSON.stringify(planJsonSchema(), null, 2)}\n`;
}
