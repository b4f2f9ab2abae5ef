/**
 * Payload encryption (src/codec.ts): with MIGRATION_PAYLOAD_KEY_FILE set, the worker and the CLI
 * encrypt every payload; the history Temporal keeps holds none of the plan in plain text, and a
 * client with the key reads the run as usual.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, type WorkflowHandle } from '@temporalio/client';
import { dataConverterFromEnv, ENCRYPTED_ENCODING } from '../../src/codec';
import type { Plan } from '../../src/plan/schema';
import { decideUpdate, PHASES, statusQuery } from '../../src/shared/migration';
import { runCli, setEnv } from '../harness/cli';
import { connectClient, temporalAddress, temporalNamespace, type ConnectedClient } from '../harness/env';
import { startMigration, waitForPhase } from '../harness/migration';
import { failureOf } from '../harness/outcome';
import { payloadsOf } from '../harness/recorded';
import { startScenario, type Scenario } from '../harness/scenario';
import { testPlan } from '../harness/seed';
import { sealedWorkflowBundle, startWorker } from '../harness/worker';

/** Every value of the status query's `phase`. */
const MIGRATION_PHASES: string[] = [
  ...PHASES.map((p) => p.name),
  ...[
    'awaiting-approval',
    'relaunching',
    'rolling-back',
    'finalizing',
    'completed',
    'cancelled',
    'rolled-back',
    'failed',
  ],
];

let temporal: ConnectedClient;
let dir: string;
let restoreEnv: () => void;

beforeAll(async () => {
  temporal = await connectClient();
  dir = await mkdtemp(join(tmpdir(), 'codec-key-'));
  await writeFile(join(dir, 'key'), randomBytes(32).toString('hex'));
  restoreEnv = setEnv({
    MIGRATION_PAYLOAD_KEY_FILE: join(dir, 'key'),
    TEMPORAL_ADDRESS: temporalAddress(),
    TEMPORAL_NAMESPACE: temporalNamespace(),
    TEMPORAL_PROFILE: undefined,
  });
});
afterAll(async () => {
  restoreEnv?.();
  await rm(dir, { recursive: true, force: true });
  await temporal?.close();
});

/**
 * A migration waiting for approval, run by a worker with the key (the sealed bundle, as
 * src/worker.ts runs with a key file) and started by a client with the same key as the CLI's.
 */
async function keyedMigration(
  body: (run: { s: Scenario; plan: Plan; handle: WorkflowHandle }) => Promise<void>,
): Promise<void> {
  const s = await startScenario({ maxAttempts: 3 });
  const w = await startWorker({ clients: s.clients, bundle: await sealedWorkflowBundle() });
  try {
    const plan = testPlan(s.source, s.world.ports);
    const keyed = new Client({
      connection: temporal.connection,
      namespace: temporalNamespace(),
      dataConverter: dataConverterFromEnv(),
    });
    const handle = await startMigration(keyed, w.taskQueue, plan);
    await waitForPhase(handle, 'awaiting-approval');
    await body({ s, plan, handle });
  } finally {
    await w.stop();
    await s.close();
  }
}

test('with a key file, every payload of a migration is encrypted; worker and CLI read them', async () => {
  await keyedMigration(async ({ s, plan, handle }) => {
    const approved = await runCli(['approve', handle.workflowId, '--by', 'alice', '--comment', 'looks right']);
    expect(approved.code).toBe(0);
    const report = await handle.result();
    expect(report.outcome).toBe('completed');
    expect(report.approval).toMatchObject({ by: 'alice', comment: 'looks right' });
    expect((await handle.query(statusQuery)).phase).toBe('completed');
    const shown = await runCli(['report', handle.workflowId, '--format', 'json']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout).planName).toBe(plan.name);

    // What the server holds: only encrypted payloads, nothing of the plan readable.
    const history = await temporal.client.workflow.getHandle(handle.workflowId).fetchHistory();
    // Patches (workflow code versions) leave plain markers and a TemporalChangeVersion search
    // attribute, written by the SDK's core, not the data converter: they hold only patch ids of
    // the code, nothing of the plan. Nothing else may be plain.
    type HistoryEvent = (typeof history.events & object)[number];
    const changeVersion = (e: HistoryEvent) =>
      e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? undefined;
    const isPatch = (e: HistoryEvent) =>
      e.markerRecordedEventAttributes?.markerName === 'core_patch' ||
      (changeVersion(e) !== undefined && Object.keys(changeVersion(e) ?? {}).join() === 'TemporalChangeVersion');
    const patchTexts = payloadsOf((history.events ?? []).filter(isPatch)).map((p) =>
      Buffer.from(p.data).toString('utf8'),
    );
    expect(patchTexts.length).toBeGreaterThan(0);
    for (const text of patchTexts)
      expect(text).toMatch(/^(\{"id":"[a-z-]+","deprecated":false\}|\["[a-z-]+"(,"[a-z-]+")*\])$/);
    // Search attributes are indexed by the server, so never encrypted (the docs say so): ours
    // hold only the phase and the plan's name, which the workflow id shows anyway.
    const indexed = (history.events ?? []).flatMap((e) =>
      Object.entries(
        e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ??
          e.workflowExecutionStartedEventAttributes?.searchAttributes?.indexedFields ??
          {},
      ),
    );
    const indexedValues = indexed
      .filter(([k]) => k !== 'TemporalChangeVersion')
      .map(([k, p]) => [k, JSON.parse(Buffer.from(p.data as Uint8Array).toString('utf8'))] as const);
    expect(new Set(indexedValues.map(([k]) => k))).toEqual(new Set(['PlanName', 'MigrationPhase']));
    for (const [k, v] of indexedValues)
      expect(k === 'PlanName' ? v === plan.name : MIGRATION_PHASES.includes(v)).toBe(true);
    const withoutIndexed = (e: HistoryEvent) =>
      e.upsertWorkflowSearchAttributesEventAttributes
        ? undefined
        : e.workflowExecutionStartedEventAttributes
          ? {
              ...e,
              workflowExecutionStartedEventAttributes: {
                ...e.workflowExecutionStartedEventAttributes,
                searchAttributes: undefined,
              },
            }
          : e;
    const others = (history.events ?? [])
      .filter((e) => !isPatch(e))
      .map(withoutIndexed)
      .filter((e): e is HistoryEvent => e !== undefined);
    // Any event that holds a plain payload, by its attributes' name (none may).
    const plainIn = others.filter((e) =>
      payloadsOf(e).some((p) => Buffer.from(p.metadata.encoding ?? []).toString() !== ENCRYPTED_ENCODING),
    );
    expect(
      plainIn.map((e) => Object.keys(e).find((k) => k.endsWith('Attributes') && (e as Record<string, unknown>)[k])),
    ).toEqual([]);
    const payloads = payloadsOf(others);
    expect(payloads.length).toBeGreaterThan(30);
    const encodings = new Set(payloads.map((p) => Buffer.from(p.metadata.encoding ?? []).toString()));
    expect([...encodings]).toEqual([ENCRYPTED_ENCODING]);
    const raw = payloads.map((p) => Buffer.from(p.data).toString('latin1')).join('\n');
    for (const plain of [
      plan.name,
      s.source.instanceId,
      plan.elasticIp.allocationId,
      'alice',
      'looks right',
      '"outcome"',
    ])
      expect(raw).not.toContain(plain);
    for (const p of payloads) expect(() => JSON.parse(Buffer.from(p.data).toString('utf8'))).toThrow();

    // A client without the key cannot read the result.
    const unkeyed = await temporal.client.workflow
      .getHandle(handle.workflowId)
      .result()
      .catch((e: unknown) => e);
    expect(unkeyed).toBeInstanceOf(Error);
  });
});

test('a failure raised in workflow code (a rejection) is sealed: the history holds no word of it; the CLI reads it', async () => {
  await keyedMigration(async ({ plan, handle }) => {
    const reason = 'the quota request is still open';
    await handle.executeUpdate(decideUpdate, { args: [{ decision: 'reject', by: 'carol', reason }] });
    // A client with the key reads the run's own failure as it was raised.
    const { failure, report } = await failureOf(handle);
    expect(failure.message).toMatch(/^migration rejected and rolled back: .*the quota request is still open/);
    expect(report.outcome).toBe('rolled back');

    const history = await temporal.client.workflow.getHandle(handle.workflowId).fetchHistory();
    const ended = (history.events ?? []).find((e) => e.workflowExecutionFailedEventAttributes);
    const stored = ended?.workflowExecutionFailedEventAttributes?.failure;
    expect(stored?.message).toBe('Encoded failure');
    expect(stored?.stackTrace ?? '').toBe('');
    expect(Buffer.from(stored?.encodedAttributes?.metadata?.encoding ?? []).toString()).toBe(ENCRYPTED_ENCODING);
    // Nothing of the reason, the person or the plan anywhere in the history's failures.
    const failures = JSON.stringify(
      (history.events ?? []).map((e) => ({
        ...e.workflowExecutionFailedEventAttributes?.failure,
        ...e.workflowExecutionUpdateCompletedEventAttributes?.outcome?.failure,
        ...e.activityTaskFailedEventAttributes?.failure,
      })),
    );
    for (const plain of [reason, 'carol', plan.name, 'rolled back']) expect(failures).not.toContain(plain);

    // The CLI, with the same key, tells the reason.
    const shown = await runCli(['status', handle.workflowId]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(reason);
  });
});
