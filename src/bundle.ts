/**
 * The workflow bundle the worker runs, and the build id it is known by. `npm run build` writes
 * the bundle beside the compiled code (`lib/workflow-bundle.js`), so a worker starts without
 * bundling and every worker of one build runs byte-for-byte the same workflow code; its hash is
 * the Worker Deployment Version's build id. Run from the sources, the worker bundles at start,
 * and the hash is that bundle's.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

/** The bundle's file name beside the compiled code. */
export const BUNDLE_FILE = 'workflow-bundle.js';

export interface WorkflowBundle {
  code: string;
  /** The first 16 hex digits of the code's SHA-256. */
  buildId: string;
  /** The file it was read from, or undefined when it was bundled now. */
  path?: string;
}

export const buildIdOf = (code: string): string => createHash('sha256').update(code).digest('hex').slice(0, 16);

/** A logger that says nothing: for bundling, where webpack's report is noise. */
export const silentLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

/** Bundles the workflows of this source tree now. */
export async function bundleWorkflows(workflowsPath = require.resolve('./workflows')): Promise<WorkflowBundle> {
  const { code } = await bundleWorkflowCode({ workflowsPath, logger: silentLogger });
  return { code, buildId: buildIdOf(code) };
}

/**
 * The bundle to run: the file `path` names (WORKFLOW_BUNDLE_PATH), else the prebuilt one beside
 * this module, else one bundled now.
 */
export async function loadWorkflowBundle(path?: string): Promise<WorkflowBundle> {
  const file = path ?? join(__dirname, BUNDLE_FILE);
  if (path || existsSync(file)) {
    const code = await readFile(file, 'utf8');
    return { code, buildId: buildIdOf(code), path: file };
  }
  return bundleWorkflows();
}

/** `npm run build`'s last step: lib/workflow-bundle.js, and its build id on stdout. */
export async function writeWorkflowBundle(out = join(__dirname, BUNDLE_FILE)): Promise<WorkflowBundle> {
  const bundle = await bundleWorkflows();
  await writeFile(out, bundle.code);
  return { ...bundle, path: out };
}

if (require.main === module) {
  writeWorkflowBundle().then(
    (b) => process.stdout.write(`${b.path}: build id ${b.buildId}\n`),
    (err: unknown) => {
      process.stderr.write(`bundle: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
