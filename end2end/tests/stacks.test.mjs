// A stack's page in a real browser shows the live state of the sample portal's services.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { USERS, freePort, hydrated, signedInPage, slipway, useConsoleAndBrowser } from '../support.mjs';

const fixture = resolve(import.meta.dirname, '..', '..', 'tests', 'fixtures', 'portal');
const project = `e2eportal${process.pid}`;
// A one-service stack whose healthcheck never passes: its deploy waits, long enough to cancel.
const stuckProject = `e2estuck${process.pid}`;
const stuckDir = mkdtempSync(join(tmpdir(), 'slipway-e2e-stuck-'));
writeFileSync(
  join(stuckDir, 'docker-compose.yml'),
  [
    'services:',
    '  web:',
    '    image: slipway-portal-frontend:1.0.0',
    '    healthcheck:',
    '      test: ["CMD", "/portal", "probe", "http://127.0.0.1:9/"]',
    '      interval: 1s',
    '    x-slipway: { role: app }',
    '',
  ].join('\n'),
);

/** docker-compose on the sample portal, as an operator would run it. */
function compose(port, ...args) {
  const result = spawnSync('docker-compose', ['-p', project, '--env-file', 'portal.env', ...args], {
    cwd: fixture,
    encoding: 'utf8',
    env: { ...process.env, PORTAL_PORT: String(port), DOCKER_HOST: 'unix:///var/run/docker.sock' },
  });
  if (result.status !== 0) throw new Error(`docker-compose ${args.join(' ')}: ${result.stderr}`);
}


// The console reads the compose file with the same port, so its rollout probe finds the edge.
// It reads a stack's variables from the env file only, never from its own environment.
const port = await freePort();
const portalEnv = join(stuckDir, 'portal.env');
writeFileSync(
  portalEnv,
  readFileSync(join(fixture, 'portal.env'), 'utf8').replace(/^PORTAL_PORT=.*$/m, `PORTAL_PORT=${port}`),
);

describe('a stack page', () => {
  const running = useConsoleAndBrowser();

  before(() => {
    compose(port, 'up', '-d');
  });

  after(() => {
    compose(port, 'down', '-v', '-t', '5');
    spawnSync('docker-compose', ['-p', stuckProject, 'down', '-v', '-t', '1'], {
      cwd: stuckDir,
      env: { ...process.env, DOCKER_HOST: 'unix:///var/run/docker.sock' },
    });
    rmSync(stuckDir, { recursive: true, force: true });
  });

  test('shows every service healthy, then a stopped one without a reload', async () => {
    slipway(running.console.dataDir, [
      'stack', 'add', 'portal', '--project', project,
      '--compose', `${fixture}/docker-compose.yml`, '--env-file', portalEnv,
    ]);
    const viewer = USERS.find((user) => user.role === 'viewer');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, viewer, {
      path: '/stacks/portal',
      viewport: { width: 1280, height: 720 },
    });
    // Health comes and goes with the engine's own checks: poll the page as a person would.
    await page.waitForFunction(
      () => document.querySelectorAll('tr[data-health="healthy"]').length === 5,
      null,
      { timeout: 60_000 },
    );
    assert.match(await page.locator('tr[data-service="edge"]').innerText(), new RegExp(`127\\.0\\.0\\.1:${port}→8080`));
    // The stack's name is the title, as rendered and once hydrated.
    assert.equal(await page.title(), 'portal · Slipway');
    await page.screenshot({ path: resolve(import.meta.dirname, '..', '..', 'target', 'screenshots', 'stack.png') });

    // Logs follow the stack over server-sent events: a line the backend writes now shows up
    // without the page asking for the logs again. The troubleshooting checks run on demand.
    await page.waitForFunction(
      () => document.querySelector('[data-testid="log-lines"]')?.textContent.includes('listening on :4000'),
      null,
      { timeout: 30_000 },
    );
    let logFetches = 0;
    page.on('request', (request) => {
      if (request.url().endsWith('/api/stack_logs')) logFetches += 1;
    });
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/_fail`)).status, 500);
    await page.waitForFunction(
      () => document.querySelector('[data-testid="log-lines"]').textContent.includes('simulated failure requested on /_fail'),
      null,
      { timeout: 30_000 },
    );
    assert.equal(logFetches, 0, 'the new line came over the stream');
    await page.click('[data-testid="run-checks"]');
    await page.waitForSelector('[data-testid="usage-table"] tbody tr', { timeout: 30_000 });
    assert.match(await page.locator('[data-testid="engine-facts"]').innerText(), /Docker \d/);
    assert.match(await page.locator('[data-testid="db-connections"]').innerText(), /^\d+$/);

    compose(port, 'stop', '-t', '5', 'frontend');
    await page.waitForSelector('tr[data-service="frontend"][data-state="exited"]', { timeout: 30_000 });
    assert.equal(await page.locator('[data-testid="start-stack"]').count(), 0, 'a viewer gets no Start button');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('an operator stops and starts the stack from its page', async () => {
    const operator = USERS.find((user) => user.role === 'operator');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, operator, {
      path: '/stacks/portal',
    });
    // Each button starts a run, followed on its own page, step by step.
    // Stop: one step per service; Start: the network and volumes first, then each service,
    // then the edge pointed at the app's containers.
    for (const [button, state, stepCount] of [['stop-stack', 'exited', 5], ['start-stack', 'running', 7]]) {
      await page.goto(`${running.baseUrl}/stacks/portal`);
      await hydrated(page);
      await page.click(`[data-testid="${button}"]`);
      await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
      await page.waitForSelector('[data-testid="run-status"][data-status="succeeded"]', { timeout: 120_000 });
      const steps = await page.locator('[data-testid="run-steps"] tbody tr').count();
      assert.equal(steps, stepCount);
      await page.goto(`${running.baseUrl}/stacks/portal`);
      await page.waitForFunction(
        (wanted) => document.querySelectorAll(`tr[data-state="${wanted}"]`).length === 5,
        state,
        { timeout: 120_000 },
      );
    }
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('an operator updates the stack and watches the steps complete live', async () => {
    const operator = USERS.find((user) => user.role === 'operator');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, operator, {
      path: '/stacks/portal',
    });
    // The run page follows the run over server-sent events, not by asking again and again.
    const streams = [];
    let runFetches = 0;
    page.on('request', (request) => {
      if (/\/api\/runs\/[0-9a-f-]+\/events/.test(request.url())) streams.push(request.url());
      if (request.url().endsWith('/api/run')) runFetches += 1;
    });
    await page.click('[data-testid="update-stack"]');
    await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
    // Live: a step is seen running while a later one still waits, and a step's lines appear
    // while the run goes on.
    await page.waitForFunction(
      () =>
        document.querySelector('tr[data-status="running"]') !== null &&
        document.querySelector('tr[data-status="pending"]') !== null,
      null,
      { timeout: 30_000 },
    );
    await page.waitForFunction(
      () =>
        document.querySelector('[data-testid="run-lines"]').textContent.includes('beside') &&
        document.querySelector('[data-testid="run-status"]').dataset.status === 'running',
      null,
      { timeout: 60_000 },
    );
    await page.waitForSelector('[data-testid="run-status"][data-status="succeeded"]', { timeout: 120_000 });
    assert.equal(streams.length, 1, `one event stream: ${streams}`);
    assert.ok(runFetches <= 1, `the run was fetched ${runFetches} times`);
    // Backup, pin, two replacements, rollout probe, verification, watch, removal, record.
    assert.equal(await page.locator('[data-testid="run-steps"] tbody tr[data-status="succeeded"]').count(), 9);
    assert.match(await page.locator('[data-testid="run-lines"]').innerText(), /all \d+ checks passed/);
    await page.locator('[data-testid="run-verification"][data-verification="passed"]').waitFor();
    assert.match(await page.locator('[data-testid="run-lines"]').innerText(), /rollout probe: 0 failed of \d+ requests/);
    await page.screenshot({ path: resolve(import.meta.dirname, '..', '..', 'target', 'screenshots', 'run.png') });

    // Without JavaScript the server renders the same run page in full: steps and lines.
    const runUrl = page.url();
    const noScript = await running.browser.newContext({ javaScriptEnabled: false });
    const plain = await noScript.newPage();
    await plain.goto(runUrl);
    await plain.fill('input[name="name"]', operator.name);
    await plain.fill('input[name="password"]', operator.password);
    await Promise.all([plain.waitForURL(runUrl), plain.click('[data-testid="sign-in"]')]);
    assert.ok(await plain.locator('[data-testid="run-steps"]').isVisible());
    assert.equal(await plain.locator('[data-testid="run-steps"] tbody tr[data-status="succeeded"]').count(), 9);
    assert.match(await plain.locator('[data-testid="run-lines"]').innerText(), /rollout probe: 0 failed/);
    await noScript.close();
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('an operator backs up from the Backups page, sees it listed live, proves it and asks to restore it; an admin approves', async () => {
    const operator = USERS.find((user) => user.role === 'operator');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, operator, {
      path: '/backups?stack=portal',
    });
    await page.waitForSelector('[data-testid="stack-backups"]');
    await hydrated(page);
    const before = await page.locator('[data-testid="backups-table"] tbody tr').count();
    await page.click('[data-testid="back-up-now"]');
    await page.waitForSelector('[data-testid="run-started"] a');
    // The page asks again on its own: the new backup appears without a reload.
    await page.waitForFunction(
      (count) => document.querySelectorAll('[data-testid="backups-table"] tbody tr').length > count,
      before,
      { timeout: 60_000 },
    );
    const row = page.locator('[data-testid="backups-table"] tbody tr').first();
    const listed = await row.innerText();
    assert.match(listed, /manual/);
    assert.match(listed, /unverified/);
    assert.match(listed, /rows in \d+ tables/);
    // This portal was started by docker-compose and never migrated: no head, and no error text
    // taken for one.
    assert.doesNotMatch(listed, /ERROR/);

    // A restore drill proves it: the run follows live, and the inventory says verified.
    const id = await row.getAttribute('data-backup');
    await page.click(`[data-testid="verify-${id}"]`);
    await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
    await page.waitForSelector('[data-testid="run-status"][data-status="succeeded"]', { timeout: 120_000 });
    assert.match(await page.locator('[data-testid="run-lines"]').innerText(), /every table holds the rows recorded/);
    await page.goto(`${running.baseUrl}/backups?stack=portal`);
    await page.waitForSelector('[data-testid="backups-table"]');
    const state = await page.locator(`tr[data-backup="${id}"] [data-testid="backup-state"]`).innerText();
    assert.match(state, /verified \(restored in \d+\.\d s\)/);
    await page.screenshot({ path: resolve(import.meta.dirname, '..', '..', 'target', 'screenshots', 'backups.png') });

    // The operator asks for a restore into the live database, after saying the live data goes.
    await hydrated(page);
    await page.click(`[data-testid="restore-${id}"]`);
    const form = page.locator(`tr[data-backup="${id}"] form:has([data-testid="restore-run-${id}"])`);
    await form.locator('input[name="reason"]').fill('back to the morning data');
    // The confirmation is required: the form does not submit without it.
    assert.equal(await form.evaluate((element) => element.checkValidity()), false);
    await form.locator('input[required][type="checkbox"]').check();
    await page.click(`[data-testid="restore-run-${id}"]`);
    await page.waitForURL(/\/approvals\/[0-9a-f-]+$/);
    const approvalUrl = page.url();
    assert.match(await page.locator('[data-testid="approval-facts"]').innerText(), /rows written after .* are lost/);
    // The stack's page shows the newest verified backup and its age.
    await page.goto(`${running.baseUrl}/stacks/portal`);
    assert.match(await page.locator('[data-testid="backup-summary"]').innerText(), /Newest verified backup: .* ago/);
    assert.deepEqual(errors, []);
    await context.close();

    // An admin approves it with the password; the restore runs.
    const admin = USERS.find((user) => user.role === 'admin');
    const adminPage = await signedInPage(running.browser, running.baseUrl, admin, { path: new URL(approvalUrl).pathname });
    await adminPage.page.fill('[data-testid="decide-form"] input[name="password"]', admin.password);
    await adminPage.page.click('[data-testid="approve"]');
    await adminPage.page.waitForSelector('[data-testid="approval-run"] a', { timeout: 30_000 });
    await adminPage.page.click('[data-testid="approval-run"] a');
    await adminPage.page.waitForURL(/\/runs\/[0-9a-f-]+$/);
    await adminPage.page.waitForSelector('[data-testid="run-status"][data-status="succeeded"]', { timeout: 180_000 });
    assert.match(await adminPage.page.locator('[data-testid="run-lines"]').innerText(), /every table holds the rows recorded/);
    assert.deepEqual(adminPage.errors, []);
    await adminPage.context.close();
  });

  test('an admin puts the managed edge in front of a stack that publishes its ports, not of one with its own edge', async () => {
    // A web service that publishes its port and nothing for Slipway: never started here.
    const plainDir = mkdtempSync(join(tmpdir(), 'slipway-e2e-plain-'));
    writeFileSync(
      join(plainDir, 'docker-compose.yml'),
      ['services:', '  web:', '    image: slipway-portal-frontend:1.0.0', '    ports: ["127.0.0.1:18999:3000"]', ''].join('\n'),
    );
    // The same behind a proxy of the team's own.
    writeFileSync(
      join(plainDir, 'own-edge.yml'),
      [
        'services:',
        '  web:',
        '    image: slipway-portal-frontend:1.0.0',
        '  edge:',
        '    image: slipway-portal-edge:1.0.0',
        '    ports: ["127.0.0.1:18998:8080"]',
        '    x-slipway: { role: edge }',
        '',
      ].join('\n'),
    );
    for (const [name, file] of [['plainweb', 'docker-compose.yml'], ['ownedge', 'own-edge.yml']]) {
      slipway(running.console.dataDir, [
        'stack', 'add', name, '--project', `e2e${name}${process.pid}`, '--compose', join(plainDir, file),
      ]);
    }
    const admin = USERS.find((user) => user.role === 'admin');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, admin, {
      path: '/stacks/ownedge',
    });
    await hydrated(page);
    const form = page.locator('[data-testid="managed-edge"]');
    await form.locator('input[name="managed"]').check();
    await form.locator('[data-testid="save-managed-edge"]').click();
    await form.locator('[role="alert"]', { hasText: 'its own edge (service edge)' }).waitFor();

    await page.goto(`${running.baseUrl}/stacks/plainweb`);
    await hydrated(page);
    await form.locator('input[name="managed"]').check();
    await form.locator('[data-testid="save-managed-edge"]').click();
    await form.locator('[role="status"]', { hasText: 'deploy the stack to apply it' }).waitFor();
    assert.match(slipway(running.console.dataDir, ['stack', 'edge', 'plainweb']), /edge is in front/);
    assert.match(slipway(running.console.dataDir, ['stack', 'edge', 'ownedge']), /no managed edge/);
    assert.deepEqual(errors, []);
    await context.close();
    rmSync(plainDir, { recursive: true, force: true });
  });

  test('an admin reads the compose model and activates a profile; a viewer sees no model', async () => {
    // A file with a service only in the `debug` profile and a secret in its env file.
    const dir = mkdtempSync(join(tmpdir(), 'slipway-e2e-profiles-'));
    writeFileSync(
      join(dir, 'docker-compose.yml'),
      [
        'services:',
        '  web:',
        '    image: slipway-portal-frontend:1.0.0',
        '    command: frontend --note "two words"',
        '    environment: [API_TOKEN]',
        '  debugger:',
        '    image: slipway-portal-frontend:1.0.0',
        '    profiles: [debug]',
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'app.env'), 'API_TOKEN=a-token-nobody-may-read-4711\n');
    slipway(running.console.dataDir, [
      'stack', 'add', 'profiled', '--project', `e2eprofiled${process.pid}`,
      '--compose', join(dir, 'docker-compose.yml'), '--env-file', join(dir, 'app.env'),
    ]);
    const admin = USERS.find((user) => user.role === 'admin');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, admin, {
      path: '/stacks/profiled',
    });
    await hydrated(page);
    const card = page.locator('[data-testid="compose-model"]');
    await card.locator('[data-testid="show-compose-model"]').click();
    const model = card.locator('[data-testid="compose-model-text"]');
    await model.waitFor();
    let text = await model.innerText();
    assert.match(text, /- frontend\n\s*- --note\n\s*- two words/);
    assert.doesNotMatch(text, /debugger/);
    assert.doesNotMatch(text, /a-token-nobody-may-read-4711/);

    await card.locator('[data-testid="profiles"]').fill('nosuch');
    await card.locator('[data-testid="save-profiles"]').click();
    await card.locator('[role="alert"]', { hasText: 'names no profile "nosuch" (it names: debug)' }).waitFor();
    await card.locator('[data-testid="profiles"]').fill('debug');
    await card.locator('[data-testid="save-profiles"]').click();
    await card.locator('[role="status"]', { hasText: 'deploy the stack to apply it' }).waitFor();
    await card.locator('[data-testid="show-compose-model"]').click();
    await page.waitForFunction(
      () => document.querySelector('[data-testid="compose-model-text"]')?.innerText.includes('debugger'),
    );
    assert.match(slipway(running.console.dataDir, ['stack', 'profiles', 'profiled']), /active profiles: debug;/);
    assert.deepEqual(errors, []);
    await context.close();

    const viewer = USERS.find((user) => user.role === 'viewer');
    const seen = await signedInPage(running.browser, running.baseUrl, viewer, { path: '/stacks/profiled' });
    await hydrated(seen.page);
    await seen.page.locator('h1', { hasText: 'profiled' }).waitFor();
    assert.equal(await seen.page.locator('[data-testid="compose-model"]').count(), 0);
    await seen.context.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an operator cancels a deploy while it waits for health', async () => {
    slipway(running.console.dataDir, [
      'stack', 'add', 'stuck', '--project', stuckProject, '--compose', join(stuckDir, 'docker-compose.yml'),
    ]);
    const operator = USERS.find((user) => user.role === 'operator');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, operator, {
      path: '/stacks/stuck',
    });
    await page.click('[data-testid="deploy-stack"]');
    await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
    await page.waitForFunction(
      () => [...document.querySelectorAll('tr[data-status="running"]')].some((row) => row.textContent.includes('Wait until web')),
      null,
      { timeout: 30_000 },
    );
    await page.click('[data-testid="cancel-run"]');
    // The wait would last two minutes; the cancel ends it within seconds, shown live.
    await page.waitForSelector('[data-testid="run-status"][data-status="cancelled"]', { timeout: 15_000 });
    assert.equal(await page.locator('[data-testid="cancel-run"]').count(), 0, 'nothing left to cancel');
    assert.match(await page.locator('[data-testid="run-lines"]').innerText(), /cancelled while waiting/);
    assert.deepEqual(errors, []);
    await context.close();
  });
});
