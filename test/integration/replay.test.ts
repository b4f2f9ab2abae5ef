/**
 * Recorded histories of real runs of all three workflows (test/histories/<release>/*.json, made
 * by scripts/record-histories.ts from each release; a few older ones at the top) replayed with
 * the workflow code as it is now. A change that would make runs in flight fail (a command added,
 * removed or reordered without `patched()`, for unversioned workers) fails here; so does a
 * change of the input a guardian or router carries into its next run, which every version must
 * read.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker, bundleWorkflowCode } from '@temporalio/worker';
import { workflowBundle } from '../harness/worker';
import { silentLogger } from '../../src/bundle';

const DIR = join(__dirname, '..', 'histories');
const releases = readdirSync(DIR)
  .filter((d) => statSync(join(DIR, d)).isDirectory())
  .sort();
const files = [
  ...readdirSync(DIR).filter((f) => f.endsWith('.json')),
  ...releases.flatMap((r) =>
    readdirSync(join(DIR, r))
      .filter((f) => f.endsWith('.json'))
      .map((f) => join(r, f)),
  ),
].sort();

/**
 * A recording (`{ workflowId, history, … }`), or a bare history as the Web UI or
 * `temporal workflow show --output json` gives it, saved as `<workflow id>.json`.
 */
function load(file: string) {
  const doc = JSON.parse(readFileSync(join(DIR, file), 'utf8')) as { workflowId?: string; history?: unknown };
  if (doc.history !== undefined)
    return { file, workflowId: doc.workflowId ?? basename(file, '.json'), history: historyFromJSON(doc.history) };
  return { file, workflowId: basename(file, '.json'), history: historyFromJSON(doc) };
}

const typeOf = (h: ReturnType<typeof load>) =>
  h.history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;

/** Replays `histories` with `bundle`; the error of each, by file. */
async function replay(bundle: { code: string }, histories: ReturnType<typeof load>[]) {
  const results: Record<string, string | undefined> = {};
  let i = 0;
  for await (const r of Worker.runReplayHistories(
    { workflowBundle: bundle, replayName: 'replay-test' },
    histories.map((h) => ({ workflowId: h.workflowId, history: h.history })),
  )) {
    results[histories[i++].file] = r.error ? `${r.error.name}: ${r.error.message}` : undefined;
  }
  return results;
}

test('the latest release has a recording of each kind of run of all three workflows', () => {
  const latest = releases.at(-1) as string;
  expect(latest).toBeDefined();
  const names = files.filter((f) => f.startsWith(`${latest}/`)).map((f) => basename(f, '.json'));
  expect(names).toEqual(
    expect.arrayContaining([
      'completed-on-demand',
      'rejected',
      'failed-build',
      'approval-timed-out',
      'completed-spot',
      'guardian-run-1',
      'guardian-run-2',
      'guardian-run-3',
      'router-run-1',
      'router-run-2',
    ]),
  );
  const kinds = files.filter((f) => f.startsWith(`${latest}/`)).map((f) => typeOf(load(f)));
  expect(new Set(kinds)).toEqual(new Set(['migrateToGpu', 'spotGuardian', 'spotEventRouter']));
  // The guardian's first two runs each ended in a recovery and a continue-as-new, as did the router's.
  for (const name of ['guardian-run-1', 'guardian-run-2', 'router-run-1']) {
    const events = load(join(latest, `${name}.json`)).history.events ?? [];
    expect(events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy();
  }
});

test('every recorded history replays with the current workflow code', async () => {
  const histories = files.map(load);
  const errors = await replay(await workflowBundle(), histories);
  expect(Object.keys(errors).sort()).toEqual(files);
  expect(Object.entries(errors).filter(([, e]) => e !== undefined)).toEqual([]);
});

test('a guardian with two of its activities swapped fails the replay of the recorded guardians', async () => {
  const latest = releases.at(-1) as string;
  const guardians = files
    .filter((f) => f.startsWith(`${latest}/guardian-run-1`))
    .map(load)
    .filter((h) => typeOf(h) === 'spotGuardian');
  expect(guardians).toHaveLength(1);
  const swapped = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../src/workflows'),
    logger: silentLogger,
    webpackConfigHook: (config) => {
      config.module?.rules?.push({
        test: /src[\\/]workflows[\\/]guardian\.ts$/,
        enforce: 'pre',
        use: [
          {
            loader: require.resolve('../fixtures/swap-loader'),
            options: {
              swap: [
                '    await quick.markGuarded({ region: plan.region, instanceId: g.instanceId, guardianId: g.guardianId });',
                '    await ensureRouter(true);',
              ],
            },
          },
        ],
      });
      return config;
    },
  });
  expect(swapped.code).not.toBe((await workflowBundle()).code);
  const errors = await replay(swapped, guardians);
  const error = errors[relative(DIR, join(DIR, latest, 'guardian-run-1.json'))];
  expect(error).toMatch(/^DeterminismViolationError|[Nn]ondeterminism/);
  expect(error).toMatch(/markGuarded|ensureRouter/);
});
