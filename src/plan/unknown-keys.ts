/**
 * Unknown keys in a plan: the keys the schema knows at a path, and the one that was probably
 * meant. Pure.
 */
import type { z } from 'zod';
import { planSchema } from './schema';

type SchemaDef = {
  type: string;
  innerType?: z.core.$ZodType;
  in?: z.core.$ZodType;
  shape?: Record<string, z.core.$ZodType>;
  element?: z.core.$ZodType;
};
const WRAPPERS = new Set(['optional', 'default', 'prefault', 'nullable', 'nonoptional', 'readonly', 'catch']);

function unwrap(schema: z.core.$ZodType): SchemaDef {
  let def = schema._zod.def as unknown as SchemaDef;
  for (;;) {
    if (WRAPPERS.has(def.type) && def.innerType) def = def.innerType._zod.def as unknown as SchemaDef;
    else if (def.type === 'pipe' && def.in) def = def.in._zod.def as unknown as SchemaDef;
    else return def;
  }
}

/** The keys the schema allows for the mapping at `path`. */
export function knownKeysAt(path: readonly PropertyKey[]): string[] {
  let def = unwrap(planSchema);
  for (const part of path) {
    const next = def.type === 'object' ? def.shape?.[String(part)] : def.type === 'array' ? def.element : undefined;
    if (!next) return [];
    def = unwrap(next);
  }
  return def.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

function closestKey(key: string, known: string[]): string | undefined {
  const lower = key.toLowerCase().replace(/[-_]/g, '');
  const exact = known.find((k) => k.toLowerCase() === lower);
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 4)) + 1;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

export function unknownKeyText(key: string, known: string[]): string {
  const guess = closestKey(key, known);
  if (guess) return `a known key: did you mean '${guess}'? (unknown keys are errors)`;
  return `a known key, one of: ${known.filter((k) => !k.startsWith('$')).join(', ')} (unknown keys are errors)`;
}
