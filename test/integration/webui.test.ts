/**
 * Approval through the real Temporal Web UI: headless Chromium lists the waiting migration by its
 * search attributes, reads its summary, timeline and current details, is refused an early
 * Update and a bad Signal, and approves with "Send a Signal"; with payload encryption on it
 * reads the same through the codec server. Screenshots are kept in test-artifacts/.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@temporalio/client';
import { chromium, type Browser, type Page } from 'playwright-core';
import { dataConverterFromEnv, ENCRYPTED_ENCODING } from '../../src/codec';
import { startCodecServer } from '../../src/codec-server';
import { statusQuery } from '../../src/shared/migration';
import { setEnv } from '../harness/cli';
import { connectClient, temporalNamespace, temporalUiUrl, type ConnectedClient } from '../harness/env';
import { addressHolder, instance, startMigration, waitForPhase } from '../harness/migration';
import { startScenario } from '../harness/scenario';
import { sealedWorkflowBundle, startWorker } from '../harness/worker';
import { listed } from '../harness/visibility';
import { pollUntil } from '../harness/net';
import { migrationSummary } from '../../src/cli/start-run';
import { AWAITING_APPROVAL_QUERY } from '../../src/shared/search-attributes';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(__dirname, '..', '..', 'test-artifacts');

let temporal: ConnectedClient;
let browser: Browser;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: run \`bash scripts/bootstrap.sh --chromium\` (Debian's chromium package) or set CHROMIUM_BIN`,
    );
  temporal = await connectClient();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
});
afterAll(async () => {
  while (open.length) await open.pop()?.close();
  await browser?.close();
  await temporal?.close();
});

/** Waits until one of the page's frames shows `text` (the UI renders Markdown in sandboxed frames). */
async function shownInFrames(page: Page, text: string | RegExp, timeoutMs = 30_000): Promise<void> {
  await pollUntil(
    `a frame showing ${String(text)}`,
    async () => {
      for (const frame of page.frames()) {
        const body = await frame
          .locator('body')
          .innerText({ timeout: 1000 })
          .catch(() => '');
        if (typeof text === 'string' ? body.includes(text) : text.test(body)) return true;
      }
      return undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/**
 * Opens "More Actions" → "Send a Signal" or "Send an Update", picks `name` from the ones the
 * workflow declares, types `payload` and sends it.
 */
async function sendMessage(page: Page, kind: 'signal' | 'update', name: string, payload: unknown): Promise<void> {
  await page
    .getByRole('button', { name: /More Actions/i })
    .filter({ visible: true })
    .first()
    .click();
  await page.locator(`[data-testid="${kind}-button"]`).filter({ visible: true }).first().click();
  const dialog = page.getByRole('dialog').filter({ visible: true }).first();
  await dialog.waitFor();
  // The UI lists the signals and updates the workflow declares (with their descriptions).
  const select = dialog.locator(`[data-testid="${kind}-select-button"]`);
  if (await select.count()) {
    await select.click();
    await page
      .getByRole('option', { name: new RegExp(`^${name}`) })
      .first()
      .click();
  } else {
    await dialog.locator(`#${kind}-name`).fill(name);
  }
  const editor = dialog.locator('.cm-content').first();
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(JSON.stringify(payload));
  await page.screenshot({ path: join(ARTIFACTS, `webui-${kind}-dialog.png`) });
  await dialog.locator('[data-testid="confirm-modal-button"]').click();
}

/** A signal, sent: the UI says "Workflow signaled" whether or not the run acts on it. */
async function sendSignal(page: Page, name: string, payload: unknown): Promise<void> {
  await sendMessage(page, 'signal', name, payload);
  await page
    .getByText(/Workflow signaled/i)
    .first()
    .waitFor();
}

test('"Send a Signal" → approve in the Web UI stops the old instance', async () => {
  const s = await startScenario({ maxAttempts: 3 });
  open.push(s);
  const w = await startWorker({ clients: s.clients });
  open.push({ close: () => w.stop() });
  const handle = await startMigration(temporal.client, w.taskQueue, s.plan);
  const waiting = await waitForPhase(handle, 'awaiting-approval');

  await mkdir(ARTIFACTS, { recursive: true });
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });

  // The saved query of the docs lists the waiting migration with its summary.
  await listed(temporal.client, AWAITING_APPROVAL_QUERY, [handle.workflowId]);
  await page.goto(
    `${temporalUiUrl()}/namespaces/${temporalNamespace()}/workflows?query=${encodeURIComponent(AWAITING_APPROVAL_QUERY)}`,
  );
  await page.getByText(handle.workflowId).first().waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'webui-awaiting-approval.png') });

  const url = `${temporalUiUrl()}/namespaces/${temporalNamespace()}/workflows/${encodeURIComponent(handle.workflowId)}`;
  await page.goto(url);
  await page.getByText(handle.workflowId).first().waitFor();
  // The timeline names each activity's phase and instance, and the approval wait.
  await page.getByText(`waiting for approval (${s.plan.approval.timeout})`).first().waitFor();
  await page.getByText(`eip-switch on ${waiting.newInstanceId}`).first().waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'webui-timeline.png') });
  // The current details (User Metadata) show the phase table while it waits.
  await page
    .getByRole('tab', { name: /User Metadata/i })
    .or(page.getByText('User Metadata', { exact: true }))
    .first()
    .click();
  // The UI renders each Markdown block (summary, details, current details) in a sandboxed frame.
  await shownInFrames(page, migrationSummary(s.plan));
  await shownInFrames(page, s.plan.elasticIp.allocationId); // in the static details only
  await shownInFrames(page, /awaiting-approval/);
  await shownInFrames(page, /Elastic IP switch/);
  await page.screenshot({ path: join(ARTIFACTS, 'webui-current-details.png') });

  // The decide Update answers in the dialog: a refusal is shown at once, and nothing is decided.
  await sendMessage(page, 'update', 'decide', { decision: 'approve' });
  await page
    .getByText(/approve needs "by"/)
    .first()
    .waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'webui-update-refused.png') });
  await page.keyboard.press('Escape');
  // A Signal the run refuses is reported as sent by the UI; the run shows the refusal at once.
  await sendSignal(page, 'approve', { comment: 'forgot my name' });
  await page.reload();
  await page
    .getByRole('tab', { name: /User Metadata/i })
    .or(page.getByText('User Metadata', { exact: true }))
    .first()
    .click();
  await shownInFrames(page, /Refused, not acted on/);
  await shownInFrames(page, /approve: approve needs .by.: the name of the person deciding/); // Markdown curls the quotes
  await page.screenshot({ path: join(ARTIFACTS, 'webui-signal-refused.png') });
  expect((await handle.query(statusQuery)).approval).toBeUndefined();

  await sendSignal(page, 'approve', { by: 'Web UI tester', comment: 'approved in the browser' });
  const report = await handle.result();

  expect(report.approval).toMatchObject({ decision: 'approved', by: 'Web UI tester', via: 'signal' });
  expect((await instance(s.direct, s.plan.region, s.source.instanceId)).State?.Name).toBe('stopped');
  expect(await addressHolder(s.direct, s.plan)).toBe(report.after.instanceId);
  expect((await handle.query(statusQuery)).phase).toBe('completed');

  await page.reload();
  await page
    .getByText(/Completed/i)
    .first()
    .waitFor();
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'webui-approval.png'), fullPage: false });
  await page.close();
});

test('with payload encryption on, the Web UI reads the phase table and the signals through the codec server, and an approval sent from it is encrypted', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'webui-codec-'));
  const keyFile = join(dir, 'keys');
  // A rotated keyring: the worker encrypts with k2 and could still read k1.
  await writeFile(keyFile, `k1 ${randomBytes(32).toString('hex')}\nk2 ${randomBytes(32).toString('hex')}\n`);
  const restore = setEnv({ MIGRATION_PAYLOAD_KEY_FILE: keyFile });
  open.push({
    close: async () => {
      restore();
      await rm(dir, { recursive: true, force: true });
    },
  });
  const converter = dataConverterFromEnv();
  const codec = converter?.payloadCodecs?.[0];
  if (!converter || !codec) throw new Error('no data converter from the key file');
  const uiOrigin = new URL(temporalUiUrl()).origin;
  const server = await startCodecServer({ codec, port: 0, origins: [uiOrigin] });
  open.push(server);

  const s = await startScenario({ maxAttempts: 3 });
  open.push(s);
  const w = await startWorker({ clients: s.clients, bundle: await sealedWorkflowBundle() });
  open.push({ close: () => w.stop() });
  // The client encrypts too, as the CLI does with the same key file.
  const client = new Client({
    connection: temporal.connection,
    namespace: temporalNamespace(),
    dataConverter: converter,
  });
  const handle = await startMigration(client, w.taskQueue, s.plan);
  await waitForPhase(handle, 'awaiting-approval');
  const history = JSON.stringify(await handle.fetchHistory());
  expect(history).not.toContain(s.plan.source.instanceId); // nothing of the plan readable on the server

  const detailsTab = (page: Page) =>
    page
      .getByRole('tab', { name: /User Metadata/i })
      .or(page.getByText('User Metadata', { exact: true }))
      .first();
  const url = `${temporalUiUrl()}/namespaces/${temporalNamespace()}/workflows/${encodeURIComponent(handle.workflowId)}`;

  // Without the codec server the page shows none of it.
  const blind = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  await blind.goto(url);
  await blind.getByText(handle.workflowId).first().waitFor();
  await detailsTab(blind).click();
  await expect(shownInFrames(blind, /Elastic IP switch/, 5_000)).rejects.toThrow(/not ready/);
  await blind.close();

  // With it (the UI's browser-level codec endpoint setting), the phase table and the signals are readable.
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  await context.addInitScript({
    // The endpoint the UI's codec settings keep in the browser, overriding the server's (none here).
    content: `localStorage.setItem('endpoint', ${JSON.stringify(JSON.stringify(server.url))}); localStorage.setItem('overrideRemoteCodecConfiguration', 'true');`,
  });
  const page = await context.newPage();
  await page.goto(url);
  await page.getByText(handle.workflowId).first().waitFor();
  await detailsTab(page).click();
  await shownInFrames(page, /awaiting-approval/);
  await shownInFrames(page, /Elastic IP switch/);
  await page.screenshot({ path: join(ARTIFACTS, 'webui-codec-details.png') });
  // The signal list comes from the workflow's (encrypted) metadata: approve is offered by name.
  await sendSignal(page, 'approve', { by: 'codec tester' });
  const report = await handle.result();
  expect(report.approval).toMatchObject({ decision: 'approved', by: 'codec tester', via: 'signal' });
  // The UI encoded the signal through the codec server: it is encrypted in the history too.
  const signalled = ((await handle.fetchHistory()).events ?? []).find(
    (e) => e.workflowExecutionSignaledEventAttributes,
  );
  const payload = signalled?.workflowExecutionSignaledEventAttributes?.input?.payloads?.[0];
  expect(Buffer.from(payload?.metadata?.encoding ?? []).toString()).toBe(ENCRYPTED_ENCODING);
  expect(Buffer.from(payload?.metadata?.['encryption-key-id'] ?? []).toString()).toBe('k2');
  await context.close();
});
