/**
 * Approval through the real Temporal Web UI: headless Chromium opens the waiting migration,
 * uses "Send a Signal" to send `approve` with a JSON payload, and the workflow then stops the
 * old instance. A screenshot of the workflow page is kept in test-artifacts/.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { statusQuery } from '../../src/shared/migration';
import { connectClient, temporalNamespace, temporalUiUrl, type ConnectedClient } from '../harness/env';
import { addressHolder, instance, startMigration, waitForPhase } from '../harness/migration';
import { startScenario } from '../harness/scenario';
import { startWorker } from '../harness/worker';

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

async function sendSignal(page: Page, name: string, payload: unknown): Promise<void> {
  await page
    .getByRole('button', { name: /More Actions/i })
    .filter({ visible: true })
    .first()
    .click();
  await page.locator('[data-testid="signal-button"]').filter({ visible: true }).first().click();
  const dialog = page.locator('[data-testid="signal-confirmation-modal"]').filter({ visible: true });
  await dialog.waitFor();
  // The UI lists the signals the workflow declares (with their descriptions).
  const select = dialog.locator('[data-testid="signal-select-button"]');
  if (await select.count()) {
    await select.click();
    await page
      .getByRole('option', { name: new RegExp(`^${name}`) })
      .first()
      .click();
  } else {
    await dialog.locator('#signal-name').fill(name);
  }
  const editor = dialog.locator('.cm-content').first();
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(JSON.stringify(payload));
  await page.screenshot({ path: join(ARTIFACTS, 'webui-signal-dialog.png') });
  await dialog.locator('[data-testid="confirm-modal-button"]').click();
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
  await waitForPhase(handle, 'awaiting-approval');

  await mkdir(ARTIFACTS, { recursive: true });
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  const url = `${temporalUiUrl()}/namespaces/${temporalNamespace()}/workflows/${encodeURIComponent(handle.workflowId)}`;
  await page.goto(url);
  await page.getByText(handle.workflowId).first().waitFor();
  // The current details (User Metadata) show the phase table while it waits.
  await page
    .getByRole('tab', { name: /User Metadata/i })
    .or(page.getByText('User Metadata', { exact: true }))
    .first()
    .click();
  // The UI renders the Markdown in a sandboxed frame.
  const details = page.frameLocator('iframe').first();
  await details
    .getByText(/awaiting-approval/)
    .first()
    .waitFor();
  await details
    .getByText(/Elastic IP switch/)
    .first()
    .waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'webui-current-details.png') });

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
