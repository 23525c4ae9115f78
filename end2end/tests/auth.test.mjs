// Signing in as each role in a real browser: what each sees, what each is kept from.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { USERS, hydrated, signedInPage, useConsoleAndBrowser } from '../support.mjs';

const NAVIGATION = {
  viewer: ['Overview', 'Stacks', 'Releases', 'Runs', 'Health', 'Backups', 'History'],
  operator: ['Overview', 'Stacks', 'Releases', 'Runs', 'Health', 'Backups', 'History', 'Approvals'],
  approver: ['Overview', 'Stacks', 'Releases', 'Runs', 'Health', 'Backups', 'History', 'Approvals', 'Audit'],
  admin: ['Overview', 'Stacks', 'Releases', 'Runs', 'Health', 'Backups', 'History', 'Approvals', 'Audit', 'Notifications', 'Admin'],
};

describe('signing in', () => {
  const running = useConsoleAndBrowser();

  for (const user of USERS) {
    test(`${user.role} sees the navigation of that role`, async () => {
      const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, user);
      assert.deepEqual(await page.locator('nav.nav a').allInnerTexts(), NAVIGATION[user.role]);
      assert.equal(await page.locator('[data-testid="role"]').textContent(), user.role);
      assert.deepEqual(errors, []);
      await context.close();
    });
  }

  test('a viewer gets no admin or operator controls, even by typing the address', async () => {
    const viewer = USERS.find((user) => user.role === 'viewer');
    const { page, context } = await signedInPage(running.browser, running.baseUrl, viewer);
    for (const path of ['/admin', '/audit', '/approvals']) {
      const response = await page.goto(`${running.baseUrl}${path}`);
      assert.equal(response.status(), 403, path);
      assert.match(await page.locator('[data-testid="forbidden"]').innerText(), /Not allowed/);
      assert.equal(await page.locator('form button[data-testid="add-user"]').count(), 0);
      assert.equal(await page.locator('[data-testid="users-table"]').count(), 0);
    }
    await context.close();
  });

  test('a wrong password is refused with a message and no session', async () => {
    const context = await running.browser.newContext();
    const page = await context.newPage();
    await page.goto(`${running.baseUrl}/sign-in`);
    await hydrated(page);
    await page.fill('input[name="name"]', 'admin-user');
    await page.fill('input[name="password"]', 'not-the-password');
    await page.click('[data-testid="sign-in"]');
    await page.waitForSelector('[role="alert"]');
    assert.match(await page.locator('[role="alert"]').innerText(), /Sign-in failed/);
    assert.equal((await context.cookies()).length, 0);
    await context.close();
  });

  test('an admin adds a user who can then sign in', async () => {
    const admin = USERS.find((user) => user.role === 'admin');
    const { page, context } = await signedInPage(running.browser, running.baseUrl, admin, { path: '/admin' });
    await page.fill('form input[name="name"]', 'newcomer');
    await page.selectOption('form select[name="role"] >> nth=0', 'operator');
    await page.fill('form input[name="password"] >> nth=0', 'newcomer-password-1');
    await page.click('[data-testid="add-user"]');
    await page.waitForSelector('tr[data-user="newcomer"]');
    await context.close();
    const newcomer = { name: 'newcomer', role: 'operator', password: 'newcomer-password-1' };
    const signedIn = await signedInPage(running.browser, running.baseUrl, newcomer);
    assert.equal(await signedIn.page.locator('[data-testid="role"]').textContent(), 'operator');
    await signedIn.context.close();
  });

  test('signing out ends the session and returns to the sign-in page', async () => {
    const operator = USERS.find((user) => user.role === 'operator');
    const { page, context } = await signedInPage(running.browser, running.baseUrl, operator);
    await page.click('[data-testid="sign-out"]');
    await page.waitForURL(/\/sign-in/);
    const response = await page.goto(`${running.baseUrl}/runs`);
    assert.match(response.url(), /\/sign-in\?next=%2Fruns$/);
    await context.close();
  });

  test('the sign-in form works without JavaScript', async () => {
    const approver = USERS.find((user) => user.role === 'approver');
    const context = await running.browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${running.baseUrl}/history`);
    await page.fill('input[name="name"]', approver.name);
    await page.fill('input[name="password"]', approver.password);
    await Promise.all([page.waitForURL(`${running.baseUrl}/history`), page.click('[data-testid="sign-in"]')]);
    assert.equal(await page.locator('main h1').innerText(), 'History');
    await context.close();
  });
});

describe('the first admin', () => {
  const running = useConsoleAndBrowser({ users: [] });

  test('a newcomer creates the first admin with the setup link the console printed', async () => {
    const match = /setup_link=(http:\/\/\S+\/sign-in\?setup=[0-9a-f]{64})/.exec(running.console.log.join(''));
    assert.ok(match, 'the console printed a setup link');
    const context = await running.browser.newContext();
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (error) => errors.push(error));
    await page.goto(match[1]);
    await hydrated(page);
    await page.fill('[data-testid="first-admin-name"]', 'founder');
    await page.fill('[data-testid="first-admin-password"]', 'founder-password-123');
    await page.click('[data-testid="create-first-admin"]');
    assert.match(await page.locator('[data-testid="first-admin-created"]').innerText(), /founder is the admin now/);

    await page.fill('input[name="name"][autocomplete="username"]:not([data-testid])', 'founder');
    await page.fill('input[name="password"][autocomplete="current-password"]', 'founder-password-123');
    await page.click('[data-testid="sign-in"]');
    await page.waitForURL(`${running.baseUrl}/`);
    await hydrated(page);
    assert.equal(await page.locator('[data-testid="role"]').textContent(), 'admin');
    assert.deepEqual(errors, []);
    await context.close();
  });
});
