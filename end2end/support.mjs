// Shared set-up for the browser tests: a real `slipway serve` on a free loopback port with
// a store of its own, and Debian's Chromium driven by Playwright. Both are stopped by
// `close()`, also when a test fails.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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

/** Starts `slipway serve` on port 0 and resolves once it prints its address. */
export async function startConsole() {
  const dataDir = mkdtempSync(join(tmpdir(), 'slipway-e2e-'));
  const env = { ...process.env, RUST_LOG: 'info' };
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

/** Launches headless Chromium with a fresh profile. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
  });
}

/** Opens a page and waits until the WASM has taken over: clicks before that are lost. */
export async function openHydrated(browser, url, options = {}) {
  const page = await browser.newPage(options);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(url);
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 20_000 });
  return { page, errors };
}
