/**
 * Plan validation without I/O: the zod schema, and problems that name the field and what it
 * takes. Workflows use it too (they check their input at start); `load.ts` adds YAML and files.
 */
import { z } from 'zod';
import { planSchema, type Plan } from './schema';
import { knownKeysAt, unknownKeyText } from './unknown-keys';

export interface PlanProblem {
  /** Where in the plan, e.g. `target.subnetIds[0]`; `(plan)` for the whole document, `(file)` when it cannot be read. */
  field: string;
  /** What was expected there, e.g. `string, got number`. */
  expected: string;
  /** 1-based line in the plan file, when the field is written there. */
  line?: number;
}

/** A plan that cannot be used. The CLI maps it to exit code 2. */
export class PlanError extends Error {
  constructor(
    readonly source: string,
    readonly problems: PlanProblem[],
  ) {
    super(
      `invalid plan ${source}:\n${problems
        .map((p) => `  - ${p.field}${p.line !== undefined ? ` (line ${p.line})` : ''}: expected ${p.expected}`)
        .join('\n')}`,
    );
    this.name = 'PlanError';
  }
}

/** `['target', 'subnetIds', 0]` → `target.subnetIds[0]`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(plan)';
}

// ---------------------------------------------------------------------------------------------
// Messages. Schema checks carry their own "expected …" text; this map words every other issue
// zod can raise in the same way, so no message reads "Invalid input".

const TYPE_WORDS: Record<string, string> = {
  string: 'string',
  number: 'number',
  int: 'integer',
  boolean: 'boolean (true or false)',
  array: 'list',
  object: 'mapping',
  null: 'null',
};

/** The YAML-facing name of a value's type. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'list';
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
  if (typeof value === 'number' && !Number.isFinite(value)) return 'infinity';
  if (typeof value === 'object') return 'mapping';
  return typeof value;
}

function describedAs(schema: unknown): string | undefined {
  if (!schema || typeof schema !== 'object') return undefined;
  const text = z.globalRegistry.get(schema as z.core.$ZodType)?.description;
  if (!text) return undefined;
  // "The instance …" reads as "the instance …" mid-sentence; "AWS region …" stays as it is.
  return /^[A-Z][a-z]/.test(text) ? text.charAt(0).toLowerCase() + text.slice(1) : text;
}

const planErrorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type': {
      const word = TYPE_WORDS[iss.expected] ?? iss.expected;
      if (iss.input === undefined) {
        const what = describedAs(iss.inst);
        return `${word} (required key is missing)${what ? `: ${what}` : ''}`;
      }
      return `${word}, got ${typeName(iss.input)}`;
    }
    case 'too_small':
    case 'too_big': {
      const small = iss.code === 'too_small';
      const limit = String(small ? iss.minimum : iss.maximum);
      if (iss.origin === 'array') return `${small ? 'at least' : 'at most'} ${limit} item(s)`;
      if (iss.origin === 'string') return `${small ? 'at least' : 'at most'} ${limit} character(s)`;
      const op = small ? (iss.inclusive ? '≥' : '>') : iss.inclusive ? '≤' : '<';
      return `a ${iss.origin === 'int' ? 'whole number' : 'number'} ${op} ${limit}`;
    }
    case 'invalid_format':
      if (iss.format === 'regex' && iss.pattern) return `a string matching ${iss.pattern}`;
      if (iss.format === 'url') return 'a URL such as https://example.com/path';
      if (iss.format === 'starts_with') return `a string starting with ${JSON.stringify(iss.prefix)}`;
      if (iss.format === 'ends_with') return `a string ending with ${JSON.stringify(iss.suffix)}`;
      if (iss.format === 'includes') return `a string containing ${JSON.stringify(iss.includes)}`;
      return `a valid ${iss.format}`;
    case 'not_multiple_of':
      return `a multiple of ${String(iss.divisor)}`;
    case 'invalid_value':
      return `one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'unrecognized_keys':
      return 'a known key (unknown keys are errors)';
    case 'invalid_union':
      return 'a value of one of the allowed forms';
    case 'invalid_key':
      return 'valid keys';
    case 'invalid_element':
      return 'valid entries';
    case 'custom':
      return 'a valid value';
    default:
      return undefined;
  }
};

// ---------------------------------------------------------------------------------------------

function shown(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

/** What was actually written, when it helps to see it beside what was expected. */
function gotSuffix(issue: z.core.$ZodIssue): string {
  if (/\bgot\b/.test(issue.message) || !('input' in issue) || issue.input === undefined) return '';
  const input = issue.input;
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'int' && typeof input === 'number'
        ? `, got ${shown(input)}`
        : `, got ${typeName(input)}`;
    case 'too_small':
    case 'too_big':
      if (Array.isArray(input)) return `, got ${input.length} item(s)`;
      if (typeof input === 'string') return `, got ${input.length} character(s)`;
      return `, got ${shown(input)}`;
    case 'invalid_format':
    case 'invalid_value':
    case 'not_multiple_of':
      return typeof input === 'object' && input !== null ? '' : `, got ${shown(input)}`;
    default:
      return '';
  }
}

function describeIssue(issue: z.core.$ZodIssue): PlanProblem[] {
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(issue.path);
    return issue.keys.map((key) => ({ field: fieldPath([...issue.path, key]), expected: unknownKeyText(key, known) }));
  }
  return [{ field: fieldPath(issue.path), expected: issue.message + gotSuffix(issue) }];
}

/** Validates parsed plan data; throws PlanError naming every bad field. */
export function validatePlan(data: unknown, source = 'plan'): Plan {
  const result = planSchema.safeParse(data, { reportInput: true, error: planErrorMap });
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap(describeIssue);
  // One problem per field and text: the same fact found by two rules is said once.
  const seen = new Set<string>();
  throw new PlanError(
    source,
    problems.filter((p) => {
      const key = `${p.field}\u0000${p.expected}`;
      return seen.has(key) ? false : (seen.add(key), true);
    }),
  );
}
