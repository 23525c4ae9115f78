// The console's frame in a real browser: it renders, navigates, hydrates and fits a phone.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { USERS, hydrated, signedInPage, useConsoleAndBrowser } from '../support.mjs';

const ALL_SECTIONS = [
  'Overview', 'Stacks', 'Releases', 'Runs', 'Health',
  'Backups', 'History', 'Approvals', 'Audit', 'Notifications', 'Admin',
];
const admin = USERS.find((user) => user.role === 'admin');

describe('the console shell', () => {
  const running = useConsoleAndBrowser();

  test('renders the header and every section in the navigation', async () => {
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, admin);
    assert.equal(await page.locator('.brand').innerText(), 'Slipway');
    assert.deepEqual(await page.locator('nav.nav a').allInnerTexts(), ALL_SECTIONS);
    assert.equal(await page.locator('nav.nav a[aria-current="page"]').innerText(), 'Overview');
    assert.equal(await page.title(), 'Overview · Slipway');
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('comes alive when its code fails to arrive: a reload for the loader, retries for a page chunk', async () => {
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, admin);
    let loads = 0;
    // Counted when a document is committed: a page may hydrate before its `load` event.
    page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) loads += 1; });
    // What a browser on the Docker host sees when a container starts mid-load: the first
    // document after the reload gets no chunk loader at all (its modulepreload included).
    const dropped = [];
    await context.route('**/pkg/__wasm_split.*.js', (route) => {
      if (loads >= 2) return route.continue();
      dropped.push(route.request().url());
      return route.abort('internetdisconnected');
    });
    const failures = new Map();
    await context.route('**/pkg/split___audit_route_view_*.wasm', (route) => {
      const url = route.request().url();
      const count = failures.get(url) ?? 0;
      if (count >= 2) return route.continue();
      failures.set(url, count + 1);
      dropped.push(url);
      return route.abort('internetdisconnected');
    });

    await page.reload();
    await hydrated(page);
    assert.ok(dropped.length >= 1, 'the loader was fetched and dropped');
    assert.equal(loads, 2, 'the dropped loader cost one reload of the page');

    // The Audit page's chunk, fetched on navigation, is fetched again until it arrives.
    await page.evaluate(() => { window.__sameDocument = true; });
    await page.locator('nav.nav a', { hasText: 'Audit' }).click();
    await page.waitForURL(`${running.baseUrl}/audit`);
    await page.locator('main h1', { hasText: 'Audit' }).waitFor();
    assert.deepEqual([...failures.values()], [2], dropped.join('\n'));
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload for a chunk');
    assert.deepEqual(errors, [], 'a failure the page recovers from is not an error');
    await context.close();
  });

  test('comes alive when its own chunk never arrives while it loads: one reload', async () => {
    const { page, context } = await signedInPage(running.browser, running.baseUrl, admin);
    let loads = 0;
    page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) loads += 1; });
    // The Runs page's chunk gets no answer for as long as the first document asks.
    let dropped = 0;
    await context.route('**/pkg/split___runs_route_view_*.wasm', (route) => {
      if (loads >= 2) return route.continue();
      dropped += 1;
      return route.abort('internetdisconnected');
    });
    await page.goto(`${running.baseUrl}/runs`);
    await hydrated(page);
    assert.ok(dropped >= 6, `the loader tried ${dropped} times`);
    assert.equal(loads, 2, 'one reload once the loader gave up');
    assert.equal(await page.locator('main h1').innerText(), 'Runs');
    await context.close();
  });

  test('navigates between sections without reloading the page', async () => {
    const { page, context } = await signedInPage(running.browser, running.baseUrl, admin);
    // A marker on window survives client-side navigation and dies with a full reload.
    await page.evaluate(() => { window.__sameDocument = true; });
    await page.locator('nav.nav a', { hasText: 'Health' }).click();
    await page.waitForURL(`${running.baseUrl}/health`);
    assert.equal(await page.locator('main h1').innerText(), 'Health');
    await page.locator('p.lead', { hasText: 'container and HTTP probes' }).waitFor();
    assert.equal(await page.locator('nav.nav a[aria-current="page"]').innerText(), 'Health');
    assert.equal(await page.title(), 'Health · Slipway');
    assert.equal(await page.evaluate(() => window.__sameDocument), true);
    await context.close();
  });

  test('the console card refreshes from the server when asked', async () => {
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, admin);
    const checkedAt = page.locator('[data-testid="checked-at"]');
    const before = await checkedAt.innerText();
    assert.match(await page.locator('[data-testid="console-card"]').innerText(), /SQLite/);
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/console_status') && r.status() === 200);
    await page.locator('[data-testid="refresh-status"]').click();
    await answered;
    await page.waitForFunction(
      (previous) => document.querySelector('[data-testid="checked-at"]')?.textContent !== previous,
      before,
    );
    assert.notEqual(await checkedAt.innerText(), before);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('an unknown address shows the 404 page with a way back', async () => {
    const { page, context } = await signedInPage(running.browser, running.baseUrl, admin);
    const response = await page.goto(`${running.baseUrl}/no/such/page`);
    assert.equal(response.status(), 404);
    assert.equal(await page.locator('main h1').innerText(), 'Page not found');
    await hydrated(page);
    await page.locator('main a', { hasText: 'Back to the overview' }).click();
    await page.waitForURL(`${running.baseUrl}/`);
    assert.equal(await page.locator('main h1').innerText(), 'Overview');
    await context.close();
  });

  test('fits a phone screen without sideways scrolling of the page', async () => {
    const { page, context } = await signedInPage(running.browser, running.baseUrl, admin, {
      viewport: { width: 390, height: 844 },
    });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
    await page.locator('nav.nav a', { hasText: 'Admin' }).click();
    await page.waitForURL(`${running.baseUrl}/admin`);
    assert.equal(await page.locator('main h1').innerText(), 'Admin');
    await context.close();
  });

  test('saves screenshots for the README', async () => {
    const dir = resolve(import.meta.dirname, '..', '..', 'target', 'screenshots');
    mkdirSync(dir, { recursive: true });
    const { page, context } = await signedInPage(running.browser, running.baseUrl, admin, {
      viewport: { width: 1280, height: 760 },
    });
    await page.waitForSelector('[data-testid="checked-at"]');
    await page.screenshot({ path: join(dir, 'overview.png') });
    await page.goto(`${running.baseUrl}/admin`);
    await page.waitForSelector('[data-testid="users-table"]');
    await page.screenshot({ path: join(dir, 'admin.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${running.baseUrl}/`);
    await page.waitForSelector('[data-testid="checked-at"]');
    await page.screenshot({ path: join(dir, 'overview-phone.png') });
    await context.close();
  });
});
