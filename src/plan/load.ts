import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import type { Plan } from './schema';
import { fieldPath, PlanError, typeName, validatePlan, type PlanProblem } from './validate';

export * from './validate';

// ---------------------------------------------------------------------------------------------
// YAML (JSON is YAML)

function yamlProblem(message: string, linePos?: readonly { line: number; col: number }[]): PlanProblem {
  const first = message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  const where = linePos?.[0] ? ` (line ${linePos[0].line}, column ${linePos[0].col})` : '';
  return { field: '(plan)', expected: `valid YAML or JSON: ${first}${where}` };
}

/** Keys written twice in one mapping, each named by its path. */
function duplicateKeys(doc: Document, lines: LineCounter): PlanProblem[] {
  const problems: PlanProblem[] = [];
  const visit = (node: unknown, path: (string | number)[]): void => {
    if (isMap(node)) {
      const first = new Map<string, number>();
      for (const pair of node.items) {
        const keyNode = pair.key;
        const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
        const line =
          keyNode && (keyNode as YamlNode).range ? lines.linePos((keyNode as YamlNode).range![0]).line : undefined;
        if (key === undefined) {
          problems.push({
            field: fieldPath(path),
            expected: 'plain keys (a mapping or list cannot be a key)',
            ...(line ? { line } : {}),
          });
          continue;
        }
        const earlier = first.get(key);
        if (earlier !== undefined) {
          problems.push({
            field: fieldPath([...path, key]),
            expected: `each key once in a mapping ('${key}' is also on line ${earlier})`,
            ...(line ? { line } : {}),
          });
        } else first.set(key, line ?? 0);
        visit(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => visit(item, [...path, i]));
    }
  };
  visit(doc.contents, []);
  return problems;
}

function lineOf(doc: Document, lines: LineCounter, field: string): number | undefined {
  if (field.startsWith('(')) return undefined;
  const path = field.split(/\.|(?=\[)/).map((part) => (part.startsWith('[') ? Number(part.slice(1, -1)) : part));
  // For an unknown key, point at the key itself; otherwise at the value.
  const node = doc.getIn(path, true) as YamlNode | undefined;
  const range = node && typeof node === 'object' && 'range' in node ? node.range : undefined;
  return range ? lines.linePos(range[0]).line : undefined;
}

/** Parses YAML or JSON text and validates it. */
export function parsePlanText(text: string, source = 'plan'): Plan {
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: false, prettyErrors: true, lineCounter: lines });
  const syntax = [...doc.errors, ...doc.warnings].map((e) => yamlProblem(e.message, e.linePos));
  if (syntax.length > 0) throw new PlanError(source, syntax);
  const duplicates = duplicateKeys(doc, lines);
  if (duplicates.length > 0) throw new PlanError(source, duplicates);

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new PlanError(source, [yamlProblem((err as Error).message)]);
  }
  if (data === null || data === undefined || typeof data !== 'object' || Array.isArray(data)) {
    const got = data === null || data === undefined ? 'an empty document' : typeName(data);
    throw new PlanError(source, [
      { field: '(plan)', expected: `a mapping of plan keys (name, region, source, …), got ${got}` },
    ]);
  }
  try {
    return validatePlan(data, source);
  } catch (err) {
    if (!(err instanceof PlanError)) throw err;
    throw new PlanError(
      source,
      err.problems.map((p) => {
        const line = lineOf(doc, lines, p.field);
        return line !== undefined ? { ...p, line } : p;
      }),
    );
  }
}

/** Reads, parses and validates a plan file. */
export async function loadPlanFile(file: string): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new PlanError(file, [{ field: '(file)', expected: `a readable plan file (${reason})` }]);
  }
  return parsePlanText(text, file);
}
