/**
 * `npm run bench -- --quick` runs every benchmark to the end on its own stack (its own dev server
 * and moto) and writes results with every section. Figures are not judged here: this machine's
 * load decides them; BENCHMARKS.md says how to read them.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScript } from '../harness/script';

const TIMEOUT_MS = 10 * 60_000;

/** A small fleet (2 migrations, 10 guardians): the section's code runs to the end; its figures at size come from `npm run bench`. */
const runBench = (out: string) => runScript('bench/run.ts', ['--quick', '--fleet', '2,10', '--out', out], TIMEOUT_MS);

test(
  'npm run bench -- --quick writes results with every section',
  async () => {
    const out = await mkdtemp(join(tmpdir(), 'bench-quick-'));
    try {
      const { code, output } = await runBench(out);
      expect({ code, tail: output.slice(-3000) }).toMatchObject({ code: 0 });
      const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as {
        mode: string;
        machine: Record<string, unknown>;
        sections: Record<string, unknown>;
      };
      expect(results.mode).toBe('quick');
      expect(results.machine).toEqual(
        expect.objectContaining({
          cpus: expect.any(Number),
          cpuModel: expect.any(String),
          memoryGiB: expect.any(Number),
          node: expect.any(String),
          // The versions of the binaries the stack ran, whether or not the environment names them.
          temporalCli: expect.stringMatching(/^temporal version \d/),
          moto: expect.stringMatching(/^\d+\.\d+/),
        }),
      );
      expect(Object.keys(results.sections).sort()).toEqual(['fleet', 'longLife', 'migration', 'recovery', 'warning']);
      const recovery = results.sections.recovery as { recorded: { n: number; median: number } };
      expect(recovery.recorded.n).toBe(3);
      expect(recovery.recorded.median).toBeGreaterThan(0);
      // Downtime per interruption: a boot-on-demand case and the warm spare, which took the address.
      const warning = results.sections.warning as { cases: { name: string; samples: { viaSpare: boolean }[] }[] };
      expect(warning.cases.map((c) => [c.name, c.samples.map((x) => x.viaSpare)])).toEqual([
        ['interruption only', [false]],
        ['warm spare', [true]],
      ]);
      const md = await readFile(join(out, 'BENCHMARKS.md'), 'utf8');
      expect(md).toContain('<!-- bench:figures:begin');
      expect(md).toContain('1 recovery');
      expect(md).toContain('5 long life');
      expect(md).toContain('2 downtime');
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  },
  TIMEOUT_MS + 30_000,
);
