// A rollback behind an approval, in two browsers: an operator requests it, a tech lead signs in
// elsewhere, finds it in the inbox with the image diff, approves with the password, and both
// watch the run put the previous version back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { USERS, freePort, hydrated, signedInPage, slipway, useConsoleAndBrowser } from '../support.mjs';

const fixture = resolve(import.meta.dirname, '..', '..', 'tests', 'fixtures', 'portal');
const project = `e2erollback${process.pid}`;
const envDir = mkdtempSync(join(tmpdir(), 'slipway-e2e-rollback-'));


const port = await freePort();
const portalEnv = join(envDir, 'portal.env');
writeFileSync(
  portalEnv,
  readFileSync(join(fixture, 'portal.env'), 'utf8').replace(/^PORTAL_PORT=.*$/m, `PORTAL_PORT=${port}`),
);

async function version() {
  const response = await fetch(`http://127.0.0.1:${port}/api/health`);
  return (await response.json()).version;
}

describe('a rollback behind an approval', () => {
  const running = useConsoleAndBrowser();

  before(() => {
    const dataDir = running.console.dataDir;
    slipway(dataDir, ['stack', 'add', 'portal', '--project', project, '--compose', `${fixture}/docker-compose.yml`, '--env-file', portalEnv]);
    slipway(dataDir, ['deploy', 'portal'], { env: { PORTAL_VERSION: '1.0.0' } });
    slipway(dataDir, ['update', 'portal'], { env: { PORTAL_VERSION: '1.1.0' } });
  });

  after(() => {
    spawnSync('docker-compose', ['-p', project, '-f', `${fixture}/docker-compose.yml`, '--env-file', portalEnv, 'down', '-v', '-t', '5'], {
      env: { ...process.env, DOCKER_HOST: 'unix:///var/run/docker.sock' },
    });
    rmSync(envDir, { recursive: true, force: true });
  });

  test('an operator requests it, a tech lead approves it with the password, both watch it run', async () => {
    assert.equal(await version(), '1.1.0');
    const operator = USERS.find((user) => user.role === 'operator');
    const requester = await signedInPage(running.browser, running.baseUrl, operator, { path: '/stacks/portal' });
    await requester.page.waitForSelector('[data-testid="rollback-target"]');
    await hydrated(requester.page);
    await requester.page.fill('[data-testid="rollback-reason"]', '1.1.0 breaks the invoices page');
    await requester.page.click('[data-testid="request-rollback"]');
    await requester.page.waitForURL(/\/approvals\/[0-9a-f-]+$/);
    const approvalUrl = requester.page.url();
    await requester.page.waitForSelector('[data-testid="approval-status"][data-status="waiting"]');
    assert.equal(await requester.page.locator('[data-testid="decide-form"]').count(), 0, 'the requester cannot decide');

    // The tech lead, in another browser context: the badge, the inbox, the diff.
    const lead = USERS.find((user) => user.role === 'approver');
    const approver = await signedInPage(running.browser, running.baseUrl, lead, { path: '/approvals?show=mine' });
    assert.equal((await approver.page.locator('[data-testid="approvals-waiting"]').innerText()).trim(), '1');
    await approver.page.click('[data-testid="approvals-table"] tbody tr a');
    await approver.page.waitForURL(approvalUrl);
    const diff = await approver.page.locator('[data-testid="approval-images"]').innerText();
    assert.match(diff, /backend\s+slipway-portal-backend:1\.1\.0 \([0-9a-f]+\)\s+slipway-portal-backend:1\.0\.0 \([0-9a-f]+\)/);
    assert.match(await approver.page.locator('[data-testid="approval-reason"]').innerText(), /breaks the invoices/);
    await hydrated(approver.page);
    await approver.page.fill('[data-testid="decide-form"] input[name="password"]', lead.password);
    await approver.page.click('[data-testid="approve"]');

    // Both follow the run it started, live.
    for (const { page } of [approver, requester]) {
      await page.waitForSelector('[data-testid="approval-run"] a', { timeout: 30_000 });
      await page.click('[data-testid="approval-run"] a');
      await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
    }
    for (const { page } of [approver, requester]) {
      await page.waitForSelector('[data-testid="run-status"][data-status="succeeded"]', { timeout: 120_000 });
      assert.match(await page.locator('h1').innerText(), /rollback portal/);
      assert.match(await page.locator('[data-testid="run-status"]').innerText(), /approved \(/);
    }
    assert.equal(await version(), '1.0.0');
    await approver.page.screenshot({ path: resolve(import.meta.dirname, '..', '..', 'target', 'screenshots', 'rollback-run.png') });
    assert.deepEqual(requester.errors, []);
    assert.deepEqual(approver.errors, []);
    await requester.context.close();
    await approver.context.close();
  });

  test('a tech lead approves from a browser without JavaScript', async () => {
    // Requested from the shell this time: back to the update's images.
    const operator = USERS.find((user) => user.role === 'operator');
    const said = slipway(
      running.console.dataDir,
      ['rollback', 'portal', '--reason', 'back to 1.1.0 after the fix', '--as', operator.name],
      { input: `${operator.password}\n` },
    );
    const id = /approval ([0-9a-f-]{36})/.exec(said)[1];
    const lead = USERS.find((user) => user.role === 'approver');
    const context = await running.browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${running.baseUrl}/approvals/${id}`);
    await page.fill('input[name="name"]', lead.name);
    await page.fill('input[name="password"]', lead.password);
    await Promise.all([page.waitForURL(`${running.baseUrl}/approvals/${id}`), page.click('[data-testid="sign-in"]')]);
    assert.match(await page.locator('[data-testid="approval-images"]').innerText(), /slipway-portal-backend:1\.1\.0/);
    await page.fill('[data-testid="decide-form"] input[name="password"]', lead.password);
    // The plain form post answers with a redirect back to this page, rendered anew: wait for
    // that page itself (the URL does not change, so waiting for it would return at once).
    const reloaded = page.waitForResponse(
      (response) =>
        response.request().method() === 'GET' && new URL(response.url()).pathname === `/approvals/${id}`,
    );
    await page.click('[data-testid="approve"]');
    await reloaded;
    await page.waitForLoadState('load');
    assert.match(await page.locator('[data-testid="approval-status"]').innerText(), /executed/);
    assert.equal(await page.locator('[data-testid="approval-run"] a').count(), 1);
    for (let tries = 0; tries < 120 && (await version()) !== '1.1.0'; tries += 1) {
      await new Promise((done) => setTimeout(done, 500));
    }
    assert.equal(await version(), '1.1.0');
    await context.close();
  });

  test("a stack whose policy gates changes offers to ask for an approval instead of updating", async () => {
    slipway(running.console.dataDir, ['stack', 'approvals', 'portal', '--gate-changes', 'true']);
    try {
      const operator = USERS.find((user) => user.role === 'operator');
      const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, operator, { path: '/stacks/portal' });
      await page.click('[data-testid="update-stack"]');
      await page.waitForSelector('[data-testid="needs-approval"]');
      assert.match(await page.locator('[data-testid="needs-approval"]').innerText(), /needs an approval/);
      await page.fill('[data-testid="needs-approval"] input[name="reason"]', 'the weekly release');
      await page.click('[data-testid="request-approval"]');
      await page.waitForURL(/\/approvals\/[0-9a-f-]+$/);
      await page.waitForSelector('[data-testid="approval-status"][data-status="waiting"]');
      assert.match(await page.locator('h1').innerText(), /update portal/);
      assert.deepEqual(errors, []);
      await context.close();
    } finally {
      slipway(running.console.dataDir, ['stack', 'approvals', 'portal', '--gate-changes', 'false']);
    }
  });
});
