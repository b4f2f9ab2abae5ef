/**
 * `npm run demo -- --auto-approve` runs to the end on its own stack (its own dev server and moto)
 * and prints the report with measured figures and the recovered interruption.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { PHASES } from '../../src/shared/migration';
import { AWAITING_APPROVAL_QUERY } from '../../src/shared/search-attributes';

const ROOT = join(__dirname, '..', '..');

function runDemo(timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'demo.ts'), '--auto-approve'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the demo did not finish within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test('npm run demo -- --auto-approve migrates, recovers a Spot interruption and prints the report', async () => {
  const { code, out } = await runDemo(240_000);
  expect({ code, tail: out.slice(-3000) }).toMatchObject({ code: 0 });
  // Every phase in order, then the approval and the guardian's recovery.
  const phases = PHASES.map((p) => p.name);
  expect(phases.indexOf('security-group')).toBeLessThan(phases.indexOf('start'));
  const at = phases.map((p) => out.indexOf(` ${p} succeeded`));
  expect(at.every((i) => i >= 0)).toBe(true);
  expect([...at].sort((a, b) => a - b)).toEqual(at);
  expect(out).toMatch(/approved by demo/);
  // The saved query of the Web UI, and the notifications it would send (no MIGRATION_NOTIFY_URLS here).
  expect(out).toContain(`/namespaces/default/workflows?query=${encodeURIComponent(AWAITING_APPROVAL_QUERY)}`);
  expect(out).toMatch(
    /✉ notification \(set MIGRATION_NOTIFY_URLS to send it\): \*video-message-app\* \([a-z0-9-]+\) waits for approval/,
  );
  expect(out).toMatch(/✉ notification [^\n]*: (i-[0-9a-f]+) replaced by (i-[0-9a-f]+)/);
  expect(out).toMatch(/✉ notification [^\n]*: migration completed; the service runs on i-[0-9a-f]+/);
  const recovered = /recovered: (i-[0-9a-f]+) → (i-[0-9a-f]+) \(([a-z0-9.]+)@([a-z0-9-]+), spot\), replaced/.exec(out);
  expect(recovered).not.toBeNull();
  expect(recovered?.[1]).not.toBe(recovered?.[2]);
  // The pool just interrupted (the plan's first type, in its one subnet's zone) is skipped.
  expect(recovered?.[3]).not.toBe('g4dn.xlarge');
  expect(out).toContain(`skipped, as just interrupted: g4dn.xlarge@${recovered?.[4]} (interrupted at `);
  expect(out).toMatch(/ledger: [\d.]+ h on Spot, 0 h on-demand; \$[\d.]+ against \$[\d.]+ all on-demand/);
  expect(out).toMatch(/the Elastic IP [\d.]+ is on (i-[0-9a-f]+)/);
  expect(/the Elastic IP [\d.]+ is on (i-[0-9a-f]+)/.exec(out)?.[1]).toBe(recovered?.[2]);
  expect(out).toMatch(/\/health → 200/);
  // The report, with measured figures.
  expect(out).toContain('# Migration report: video-message-app');
  expect(out).toContain('- Outcome: **completed**');
  expect(out).toMatch(/Speech synthesis \(voice clone request\): [\d.]+ s \(measured\)/);
  expect(out).toMatch(/\| averageMs \| [\d.]+ ms \(measured\) \| 50 ms \(configured\) \|/);
  expect(out).toMatch(/\| name \| Tesla T4 \(measured\) \|/);
  expect(out).toContain('everything stopped');
});
