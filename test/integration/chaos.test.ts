/**
 * The short chaos set CI runs: `npm run chaos -- --quick` with a fixed seed, on its own stack (a
 * dev server on a database file it restarts, and moto), in a process of its own. Every fault
 * it draws strikes a real worker process, a real server or the strict AWS world; every
 * invariant is checked. It must end with no violation. The full set is `npm run chaos`.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunResult } from '../../chaos/driver';
import { CI_SET } from '../../chaos/run';

const ROOT = join(__dirname, '..', '..');
const TIMEOUT_MS = 15 * 60_000;

function runChaos(out: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const args = [
      '--import',
      'tsx',
      join(ROOT, 'chaos', 'run.ts'),
      '--quick',
      '--seed',
      String(CI_SET.seed),
      '--runs',
      String(CI_SET.runs),
      '--out',
      out,
    ];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (s: string) => (output = (output + s).slice(-40_000));
    child.stdout.setEncoding('utf8').on('data', keep);
    child.stderr.setEncoding('utf8').on('data', keep);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the chaos set did not finish within ${TIMEOUT_MS} ms:\n${output}`));
    }, TIMEOUT_MS);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

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
