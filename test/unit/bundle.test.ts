/**
 * The two workflow bundles `npm run build` writes (src/bundle.ts): the plain one, and the sealed
 * one a worker with payload encryption runs, whose workflows encode their own failures.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLE_FILE, loadWorkflowBundle, SEALED_BUNDLE_FILE, writeWorkflowBundles } from '../../src/bundle';

test('the build writes a plain and a sealed bundle; each is told apart when loaded, under its own build id', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bundles-'));
  try {
    const [plain, sealed] = await writeWorkflowBundles(dir);
    expect(plain.path).toBe(join(dir, BUNDLE_FILE));
    expect(sealed.path).toBe(join(dir, SEALED_BUNDLE_FILE));
    expect(plain.sealsFailures).toBe(false);
    expect(sealed.sealsFailures).toBe(true);
    expect(sealed.buildId).not.toBe(plain.buildId);
    // Loaded by path (WORKFLOW_BUNDLE_PATH), the file decides, whatever the worker asked for.
    const given = await loadWorkflowBundle(plain.path, { sealedFailures: true });
    expect(given).toMatchObject({ path: plain.path, sealsFailures: false, buildId: plain.buildId });
    expect((await loadWorkflowBundle(sealed.path)).sealsFailures).toBe(true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);
