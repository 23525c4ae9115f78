// The Health page in a real browser: the sample portal, probed by the console every 2 s,
// shows green; a service stopped behind Slipway's back turns red without a reload, and its
// sparkline's newest bar shows the failed checks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { USERS, freePort, hydrated, signedInPage, slipway, useConsoleAndBrowser } from '../support.mjs';

const fixture = resolve(import.meta.dirname, '..', '..', 'tests', 'fixtures', 'portal');
const project = `e2ehealth${process.pid}`;
const envDir = mkdtempSync(join(tmpdir(), 'slipway-e2e-health-'));
const port = await freePort();
const portalEnv = join(envDir, 'portal.env');
writeFileSync(
  portalEnv,
  readFileSync(join(fixture, 'portal.env'), 'utf8').replace(/^PORTAL_PORT=.*$/m, `PORTAL_PORT=${port}`),
);
const docker = (args) => spawnSync('docker', args, { encoding: 'utf8' });

describe('the Health page', () => {
  const running = useConsoleAndBrowser();

  before(() => {
    const dataDir = running.console.dataDir;
    slipway(dataDir, ['stack', 'add', 'portal', '--project', project, '--compose', `${fixture}/docker-compose.yml`, '--env-file', portalEnv]);
    slipway(dataDir, ['stack', 'health', 'portal', '--every', '2s', '--watch', '0s']);
    slipway(dataDir, ['deploy', 'portal'], { env: { PORTAL_VERSION: '1.0.0' } });
  });

  after(() => {
    spawnSync('docker-compose', ['-p', project, '-f', `${fixture}/docker-compose.yml`, '--env-file', portalEnv, 'down', '-v', '-t', '5'], {
      env: { ...process.env, DOCKER_HOST: 'unix:///var/run/docker.sock' },
    });
    rmSync(envDir, { recursive: true, force: true });
  });

  test('shows the portal green, then a stopped service red without a reload', async () => {
    const viewer = USERS.find((user) => user.role === 'viewer');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, viewer, { path: '/health' });
    await hydrated(page);
    await page.evaluate(() => { window.__sameDocument = true; });
    const portal = page.locator('[data-testid="health-stack"][data-stack="portal"]');
    // The containers' checks come first, the HTTP probes a moment later: wait for all eleven.
    const summary = portal.locator('[data-testid="health-summary"]');
    await summary.filter({ hasText: /^healthy: all 11 checks pass$/ }).waitFor({ timeout: 60_000 });
    const frontend = portal.locator('[data-testid="health-probe"][data-service="frontend"][data-probe="container"]');
    assert.equal(await frontend.getAttribute('data-state'), 'passing');
    assert.equal(await frontend.locator('rect.bar.failed').count(), 0);

    const stopped = docker(['stop', '-t', '1', `${project}-frontend-1`]);
    assert.equal(stopped.status, 0, stopped.stderr);
    await frontend.and(page.locator('[data-state="failing"]')).waitFor({ timeout: 30_000 });
    assert.match(await frontend.locator('[data-testid="health-detail"]').innerText(), /frontend-1 is exited/);
    assert.match(await portal.locator('[data-testid="health-summary"]').innerText(), /^failing: \d of 11 checks fail$/);
    // The newest ten-minute bar now holds failed checks: drawn whole, in red.
    const bars = frontend.locator('[data-testid="sparkline"] rect');
    const newest = bars.last();
    assert.equal(await newest.getAttribute('data-bar'), '143');
    assert.equal(await newest.getAttribute('class'), 'bar failed');
    assert.equal(await page.evaluate(() => window.__sameDocument), true);
    const shots = resolve(import.meta.dirname, '..', '..', 'target', 'screenshots');
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'health.png'), fullPage: true });
    assert.deepEqual(errors, []);
    await context.close();
  });
});
