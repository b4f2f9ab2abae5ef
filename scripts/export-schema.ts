/**
 * Writes schema/plan.schema.json from the plan's zod schema (`npm run schema`).
 * With --check, writes nothing and exits 1 when the committed file is out of date.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PLAN_JSON_SCHEMA_PATH, renderPlanJsonSchema } from '../src/plan/json-schema';

async function main(): Promise<number> {
  const file = resolve(__dirname, '..', PLAN_JSON_SCHEMA_PATH);
  const text = renderPlanJsonSchema();
  if (process.argv.includes('--check')) {
    const current = await readFile(file, 'utf8').catch(() => '');
    if (current === text) return 0;
    console.error(`${PLAN_JSON_SCHEMA_PATH} is out of date: run npm run schema`);
    return 1;
  }
  await writeFile(file, text);
  console.log(`wrote ${PLAN_JSON_SCHEMA_PATH}`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
