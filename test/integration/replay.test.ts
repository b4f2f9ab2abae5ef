/**
 * Recorded histories of real runs (test/histories/*.json, made by scripts/record-histories.ts)
 * replayed with the workflow code as it is now. A change that would make runs already in
 * flight fail (a command added, removed or reordered without `patched()`) fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { workflowBundle } from '../harness/worker';

const DIR = join(__dirname, '..', 'histories');
const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

/**
 * A recording (`{ workflowId, history, … }`), or a bare history as the Web UI or
 * `temporal workflow show --output json` gives it, saved as `<workflow id>.json`.
 */
function load(file: string) {
  const doc = JSON.parse(readFileSync(join(DIR, file), 'utf8')) as { workflowId?: string; history?: unknown };
  if (doc.history !== undefined)
    return { workflowId: doc.workflowId ?? basename(file, '.json'), history: historyFromJSON(doc.history) };
  return { workflowId: basename(file, '.json'), history: historyFromJSON(doc) };
}

test('there is a recording of each kind of run', () => {
  expect(files).toEqual(
    expect.arrayContaining([
      'completed-on-demand.json',
      'rejected.json',
      'failed-build.json',
      'approval-timed-out.json',
    ]),
  );
});

test('every recorded history replays with the current workflow code', async () => {
  const histories = files.map(load);
  const results: { workflowId: string; error?: string }[] = [];
  for await (const r of Worker.runReplayHistories(
    { workflowBundle: await workflowBundle(), replayName: 'replay-test' },
    histories,
  )) {
    results.push({ workflowId: r.workflowId, ...(r.error ? { error: `${r.error.name}: ${r.error.message}` } : {}) });
  }
  const byId = (a: { workflowId: string }, b: { workflowId: string }) => a.workflowId.localeCompare(b.workflowId);
  expect(results.sort(byId)).toEqual(histories.map(({ workflowId }) => ({ workflowId })).sort(byId));
});
