import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { planSchema, type Plan } from './schema';

export interface PlanProblem {
  /** Where in the plan, e.g. `target.subnetIds[0]`; `(plan)` for the whole document. */
  field: string;
  /** What was expected there. */
  expected: string;
}

/** A plan that cannot be used. The CLI maps it to exit code 2. */
export class PlanError extends Error {
  constructor(
    readonly source: string,
    readonly problems: PlanProblem[],
  ) {
    super(`invalid plan ${source}:\n${problems.map((p) => `  - ${p.field}: expected ${p.expected}`).join('\n')}`);
    this.name = 'PlanError';
  }
}

export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(plan)';
}

function describeIssue(issue: z.core.$ZodIssue): PlanProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ field: fieldPath([...issue.path, key]), expected: 'no such key (unknown keys are errors)' }));
  }
  let expected = issue.message;
  if (issue.code === 'invalid_type') expected = `${issue.expected}${issue.input === undefined ? ' (missing)' : ''}`;
  else if (issue.code === 'invalid_value') expected = `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  else if (issue.code === 'too_small') expected = `${issue.origin === 'array' ? 'at least' : '≥'} ${String(issue.minimum)}${issue.origin === 'array' ? ' item(s)' : ''}`;
  else if (issue.code === 'too_big') expected = `${issue.origin === 'array' ? 'at most' : '≤'} ${String(issue.maximum)}${issue.origin === 'array' ? ' item(s)' : ''}`;
  return [{ field: fieldPath(issue.path), expected: expected.replace(/^Invalid (string|input): (must match pattern .*|expected )?/, '') || issue.message }];
}

/** Validates parsed plan data; throws PlanError naming every bad field. */
export function validatePlan(data: unknown, source = 'plan'): Plan {
  const result = planSchema.safeParse(data, { reportInput: true });
  if (result.success) return result.data;
  throw new PlanError(source, result.error.issues.flatMap(describeIssue));
}

/** Parses YAML or JSON text (JSON is YAML) and validates it. */
export function parsePlanText(text: string, source = 'plan'): Plan {
  let data: unknown;
  try {
    data = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    throw new PlanError(source, [{ field: '(plan)', expected: `valid YAML or JSON (${(err as Error).message.split('\n')[0]})` }]);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new PlanError(source, [{ field: '(plan)', expected: 'a mapping of plan keys (name, region, source, …)' }]);
  }
  return validatePlan(data, source);
}

export async function loadPlanFile(file: string): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new PlanError(file, [{ field: '(file)', expected: `a readable plan file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` }]);
  }
  return parsePlanText(text, file);
}
