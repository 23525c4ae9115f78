// A release of the sample portal through its checklist, in three browsers: a tech lead plans
// release 1.1.0 and ticks the review, an operator ticks the rest, checks again, the gate opens,
// the operator ships it and follows the run, the tech lead's open page ticks the timeline
// live; a viewer sees the release and no button.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { USERS, freePort, hydrated, signedInPage, slipway, useConsoleAndBrowser } from '../support.mjs';

const fixture = resolve(import.meta.dirname, '..', '..', 'tests', 'fixtures', 'portal');
const project = `e2erelease${process.pid}`;
const envDir = mkdtempSync(join(tmpdir(), 'slipway-e2e-release-'));

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

describe('a release through its checklist', () => {
  const running = useConsoleAndBrowser();

  before(() => {
    const dataDir = running.console.dataDir;
    slipway(dataDir, ['stack', 'add', 'portal', '--project', project, '--compose', `${fixture}/docker-compose.yml`, '--env-file', portalEnv]);
    slipway(dataDir, ['deploy', 'portal']);
    // The address the portal's CORS_ORIGIN names.
    slipway(dataDir, ['stack', 'releases', 'portal', '--public-url', 'http://127.0.0.1:18080']);
    slipway(dataDir, ['backup', 'portal']);
    const [backup] = JSON.parse(slipway(dataDir, ['backups', 'portal', '--json']));
    slipway(dataDir, ['verify', 'portal', backup.id]);
  });

  after(() => {
    spawnSync('docker-compose', ['-p', project, '-f', `${fixture}/docker-compose.yml`, '--env-file', portalEnv, 'down', '-v', '-t', '5'], {
      env: { ...process.env, DOCKER_HOST: 'unix:///var/run/docker.sock' },
    });
    rmSync(envDir, { recursive: true, force: true });
  });

  test('planned by a tech lead, ticked by an operator, shipped once the gate opens', async () => {
    assert.equal(await version(), '1.0.0');
    const lead = USERS.find((user) => user.role === 'approver');
    const planner = await signedInPage(running.browser, running.baseUrl, lead, { path: '/releases' });
    await planner.page.fill('[data-testid="release-stack"]', 'portal');
    await planner.page.fill('[data-testid="release-version"]', '1.1.0');
    // A week ahead: a fixed date passes, and the timeline's milestones turn overdue.
    const plannedDay = new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString().slice(0, 10);
    await planner.page.fill('[data-testid="release-at"]', `${plannedDay} 14:00`);
    await planner.page.fill('[data-testid="release-sets"]', 'PORTAL_VERSION=1.1.0');
    // 1.1.0 brings a migration: it ships with a migrate run.
    await planner.page.selectOption('select[name="operation"]', 'migrate');
    await planner.page.click('[data-testid="create-release"]');
    await planner.page.waitForURL(/\/releases\/[0-9a-f-]+$/);
    const releaseUrl = planner.page.url();
    await planner.page.waitForSelector('[data-testid="gate"][data-open="false"]');
    await hydrated(planner.page);
    await planner.page.click('[data-testid="tick-review.approved"]');
    await planner.page.waitForSelector('li[data-item="review.approved"][data-state="pass"]');

    const operator = USERS.find((user) => user.role === 'operator');
    const shipper = await signedInPage(running.browser, running.baseUrl, operator, { path: new URL(releaseUrl).pathname });
    assert.equal(await shipper.page.locator('[data-testid="tick-review.approved"]').count(), 0, 'the review is an approver\'s');
    for (const item of ['review.tests', 'migrations.reviewed', 'dependencies.audit', 'communication.team']) {
      await shipper.page.click(`[data-testid="tick-${item}"]`);
      await shipper.page.waitForSelector(`li[data-item="${item}"][data-state="pass"]`);
    }
    await shipper.page.click('[data-testid="check-release"]');
    await shipper.page.waitForSelector('[data-testid="gate"][data-open="true"]', { timeout: 30_000 });
    assert.match(await shipper.page.locator('[data-testid="release-images"]').innerText(), /backend\s+slipway-portal-backend:1\.0\.0 .*slipway-portal-backend:1\.1\.0/);
    await shipper.page.click('[data-testid="ship-release"]');
    await shipper.page.waitForURL(/\/runs\/[0-9a-f-]+$/);
    await shipper.page.waitForSelector('[data-testid="run-status"][data-status="succeeded"]', { timeout: 120_000 });
    assert.equal(await version(), '1.1.0');
    // The tech lead's page, left open, ticks "execute the deployment" by itself.
    await planner.page.waitForSelector('tr[data-milestone="deploy"][data-state="done"]', { timeout: 30_000 });
    await planner.page.waitForSelector('[data-testid="timeline-chart"] g[data-milestone="verify-now"][data-state="done"]', { timeout: 30_000 });
    await planner.page.screenshot({ path: resolve(import.meta.dirname, '..', '..', 'target', 'screenshots', 'release-timeline.png'), fullPage: true });
    assert.deepEqual(planner.errors, []);
    assert.deepEqual(shipper.errors, []);

    const stakeholder = USERS.find((user) => user.role === 'viewer');
    const viewer = await signedInPage(running.browser, running.baseUrl, stakeholder, { path: new URL(releaseUrl).pathname });
    await viewer.page.waitForSelector('[data-testid="release-state"][data-state="done"]');
    assert.equal(await viewer.page.locator('[data-testid="ship-release"], [data-testid^="tick-"]').count(), 0);
    for (const { context } of [planner, shipper, viewer]) await context.close();
  });
});
