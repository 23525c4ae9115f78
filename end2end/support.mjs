// Shared set-up for the browser tests: a real `slipway serve` on a free loopback port with
// a store of its own, and Debian's Chromium driven by Playwright. Both are stopped by
// `close()`, also when a test fails.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const repoRoot = resolve(import.meta.dirname, '..');
const slipwayBin = process.env.SLIPWAY_BIN ?? join(repoRoot, 'target', 'debug', 'slipway');

export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** One user per role, each with the password `<role>-password-123`. */
export const USERS = ['viewer', 'operator', 'approver', 'admin'].map((role) => ({
  name: `${role}-user`,
  role,
  password: `${role}-password-123`,
}));

/** Adds a user the way an operator would: `slipway user add`, password on stdin. */
function addUser(dataDir, { name, role, password }) {
  const result = spawnSync(slipwayBin, ['user', 'add', name, '--role', role, '--data-dir', dataDir], {
    input: `${password}\n`,
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`slipway user add ${name} failed: ${result.stderr}`);
}

/**
 * Runs `slipway` to completion with the console's data dir (`env` added, `input` on stdin);
 * throws on failure.
 */
export function slipway(dataDir, args, { env = {}, input } = {}) {
  const result = spawnSync(slipwayBin, [...args, '--data-dir', dataDir], {
    encoding: 'utf8',
    // A change is not watched unless a test sets a stack's window.
    env: { ...process.env, SLIPWAY_WATCH_DEFAULT: '0s', ...env },
    input,
  });
  if (result.status !== 0) throw new Error(`slipway ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

/** Starts `slipway serve` on port 0 with `users` (one per role); resolves once it listens. */
export async function startConsole({ env: extraEnv = {}, users = USERS } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'slipway-e2e-'));
  for (const user of users) addUser(join(dataDir, 'data'), user);
  const env = { ...process.env, RUST_LOG: 'info', SLIPWAY_WATCH_DEFAULT: '0s', ...extraEnv };
  delete env.DATABASE_URL;
  delete env.SLIPWAY_ADDR;
  const child = spawn(slipwayBin, ['serve', '--addr', '127.0.0.1:0', '--data-dir', join(dataDir, 'data')], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  const baseUrl = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`slipway did not start:\n${log.join('')}`)), 30_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      log.push(chunk);
      const match = /console listening url=(http:\/\/[^\s"]+)/.exec(log.join(''));
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`slipway exited with ${code}:\n${log.join('')}`)));
  });
  return {
    baseUrl,
    log,
    dataDir: join(dataDir, 'data'),
    async close() {
      if (child.exitCode === null) {
        const exited = new Promise((done) => child.once('exit', done));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A TCP port free on 127.0.0.1 at the moment of asking. */
export function freePort() {
  return new Promise((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** Launches headless Chromium with a fresh profile. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
  });
}

/** What failed to load in a context (requests, console errors), for `hydrated`'s error. */
const loadFailures = new WeakMap();

function recordLoadFailures(context) {
  const failures = [];
  loadFailures.set(context, failures);
  context.on('requestfailed', (request) => failures.push(`${request.url()}: ${request.failure()?.errorText}`));
  context.on('console', (message) => {
    if (message.type() === 'error') failures.push(`console: ${message.text().slice(0, 300)}`);
  });
}

/** Waits until the WASM has taken over the page: clicks before that are lost. */
export async function hydrated(page) {
  try {
    await page.waitForSelector('body[data-hydrated="true"]', { timeout: 20_000 });
  } catch (error) {
    const failures = loadFailures.get(page.context()) ?? [];
    error.message += `\nwhat failed to load: ${failures.length ? failures.join('\n  ') : 'nothing recorded'}`;
    throw error;
  }
}

/** A fresh browser context signed in as `user` through the sign-in form, on `path`. */
export async function signedInPage(browser, baseUrl, user, { path = '/', ...options } = {}) {
  const context = await browser.newContext(options);
  recordLoadFailures(context);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(`${baseUrl}${path}`);
  await page.waitForURL(/\/sign-in/);
  await hydrated(page);
  await page.fill('input[name="name"]', user.name);
  await page.fill('input[name="password"]', user.password);
  await page.click('[data-testid="sign-in"]');
  await page.waitForURL(`${baseUrl}${path}`);
  await hydrated(page);
  return { page, context, errors };
}

/**
 * Registers hooks that start a console and a browser before the suite's tests and stop both
 * after them; the returned object holds them while the tests run.
 */
export function useConsoleAndBrowser(options = {}) {
  const running = { baseUrl: undefined, browser: undefined, console: undefined };
  before(async () => {
    running.console = await startConsole(options);
    running.baseUrl = running.console.baseUrl;
    running.browser = await launchBrowser();
  });
  after(async () => {
    await running.browser?.close();
    await running.console?.close();
  });
  return running;
}
