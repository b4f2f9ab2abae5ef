/**
 * The workflow bundle the worker runs, and the build id it is known by. `npm run build` writes
 * the bundle beside the compiled code (`lib/workflow-bundle.js`), so a worker starts without
 * bundling and every worker of one build runs byte-for-byte the same workflow code; its hash is
 * the Worker Deployment Version's build id. Run from the sources, the worker bundles at start,
 * and the hash is that bundle's.
 *
 * With payload encryption on, the worker runs the sealed bundle instead (`workflow-bundle-sealed.js`):
 * the same workflows with the failure converter of src/failure-converter.ts compiled in, so a
 * failure raised in workflow code has its message and stack trace encrypted like an activity's.
 * Its build id differs: turning encryption on is a new version of the workflow code.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { SEALED_FAILURES_MARKER } from './failure-converter';

/** The bundle's file name beside the compiled code. */
export const BUNDLE_FILE = 'workflow-bundle.js';
/** The sealed bundle's (failures encoded for the codec), for workers with payload encryption on. */
export const SEALED_BUNDLE_FILE = 'workflow-bundle-sealed.js';

export interface BundleChoice {
  /** Compile src/failure-converter.ts in: failures raised in workflow code are sealed too. */
  sealedFailures?: boolean;
}

export interface WorkflowBundle {
  code: string;
  /** The first 16 hex digits of the code's SHA-256. */
  buildId: string;
  /** The file it was read from, or undefined when it was bundled now. */
  path?: string;
  /** Whether its workflows seal their failures (src/failure-converter.ts compiled in). */
  sealsFailures: boolean;
}

export const buildIdOf = (code: string): string => createHash('sha256').update(code).digest('hex').slice(0, 16);

/** A logger that says nothing: for bundling, where webpack's report is noise. */
export const silentLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

/** Whether a bundle's code has the sealing failure converter compiled in (its marker, kept by webpack). */
export const sealsFailures = (code: string): boolean => code.includes(SEALED_FAILURES_MARKER);

/** Bundles the workflows of this source tree now. */
export async function bundleWorkflows(
  choice: BundleChoice = {},
  workflowsPath = require.resolve('./workflows'),
): Promise<WorkflowBundle> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    logger: silentLogger,
    ...(choice.sealedFailures ? { failureConverterPath: require.resolve('./failure-converter') } : {}),
  });
  return { code, buildId: buildIdOf(code), sealsFailures: sealsFailures(code) };
}

/**
 * The bundle to run: the file `path` names (WORKFLOW_BUNDLE_PATH), else the prebuilt one beside
 * this module (the sealed one when `choice.sealedFailures`), else one bundled now.
 */
export async function loadWorkflowBundle(path?: string, choice: BundleChoice = {}): Promise<WorkflowBundle> {
  const file = path ?? join(__dirname, choice.sealedFailures ? SEALED_BUNDLE_FILE : BUNDLE_FILE);
  if (path || existsSync(file)) {
    const code = await readFile(file, 'utf8');
    return { code, buildId: buildIdOf(code), path: file, sealsFailures: sealsFailures(code) };
  }
  return bundleWorkflows(choice);
}

/** `npm run build`'s last step: lib/workflow-bundle.js and the sealed one, their build ids on stdout. */
export async function writeWorkflowBundles(dir = __dirname): Promise<WorkflowBundle[]> {
  const written: WorkflowBundle[] = [];
  for (const [file, sealedFailures] of [
    [BUNDLE_FILE, false],
    [SEALED_BUNDLE_FILE, true],
  ] as const) {
    const bundle = await bundleWorkflows({ sealedFailures });
    const out = join(dir, file);
    await writeFile(out, bundle.code);
    written.push({ ...bundle, path: out });
  }
  return written;
}

if (require.main === module) {
  writeWorkflowBundles().then(
    (bundles) => {
      for (const b of bundles) process.stdout.write(`${b.path}: build id ${b.buildId}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`bundle: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
