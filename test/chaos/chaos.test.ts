/**
 * The short chaos set CI runs: `npm run chaos -- --quick` with a fixed seed, on its own stack (a
 * dev server on a database file it restarts, and moto), in a process of its own. Every fault
 * it draws strikes a real worker process, a real server or the strict AWS world; every
 * invariant is checked. It must end with no violation. The full set is `npm run chaos`.
 *
 * It is the `chaos` Jest project: `npm test` runs it beside the other projects, in a Jest
 * process of its own, because it mostly waits (on timers, boots and outages) and would
 * otherwise hold one of the two test workers for minutes.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunResult } from '../../chaos/driver';
import { CI_SET } from '../../chaos/run';
import { runScript } from '../harness/script';

const TIMEOUT_MS = 15 * 60_000;

const runChaos = (out: string) =>
  runScript(
    'chaos/run.ts',
    ['--quick', '--seed', String(CI_SET.seed), '--runs', String(CI_SET.runs), '--out', out],
    TIMEOUT_MS,
  );

test(
  'the short chaos set: every drawn fault applied, every invariant checked, no violation',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chaos-'));
    try {
      const out = join(dir, 'chaos.json');
      const { code, output } = await runChaos(out);
      if (code !== 0) throw new Error(`npm run chaos -- --quick exited ${code}:\n${output}`);
      const { results } = JSON.parse(await readFile(out, 'utf8')) as { results: RunResult[] };
      expect(results).toHaveLength(CI_SET.runs);
      expect(results.flatMap((r) => r.violations)).toEqual([]);
      // Faults did strike: the set is not a quiet one.
      const struck = results.flatMap((r) => r.faults.filter((f) => f.atMs !== undefined));
      expect(struck.length).toBeGreaterThanOrEqual(CI_SET.runs * 2);
      expect(output).toMatch(/\| invariant \| violations \|/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  TIMEOUT_MS + 60_000,
);
