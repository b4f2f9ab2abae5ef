/**
 * The worker's heap limit: the package's scripts start it with the limit the benchmarks measured,
 * and a worker started without one says how to set it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WORKER_HEAP_MIB, heapLimitWarning } from '../../src/worker';

const scripts = (
  JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { scripts: Record<string, string> }
).scripts;

test.each(['worker', 'migration'])('npm run %s starts node with the worker heap limit', (name) => {
  expect(scripts[name]).toMatch(new RegExp(`^node --max-old-space-size=${WORKER_HEAP_MIB} `));
});

test('a worker whose heap may grow to gigabytes is told how to limit it', () => {
  const warning = heapLimitWarning(4144 * 2 ** 20, ['--import', 'tsx', '--enable-source-maps']);
  expect(warning).toContain('4144 MiB');
  expect(warning).toContain(`NODE_OPTIONS=--max-old-space-size=${WORKER_HEAP_MIB}`);
});

test('a worker whose limit someone chose, or whose default is small, is not warned', () => {
  expect(heapLimitWarning(4144 * 2 ** 20, [`--max-old-space-size=4096`])).toBeUndefined();
  expect(heapLimitWarning(4144 * 2 ** 20, ['--max_old_space_size=2048'])).toBeUndefined();
  expect(heapLimitWarning((WORKER_HEAP_MIB + 48) * 2 ** 20, [])).toBeUndefined();
  expect(heapLimitWarning(2 * WORKER_HEAP_MIB * 2 ** 20, [])).toBeUndefined();
});
