// The History page in a real browser: a viewer filters the runs by stack and outcome and
// opens one. The runs are real: a stack started by the command line, and one whose image
// does not exist, whose start fails.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { USERS, hydrated, signedInPage, slipway, useConsoleAndBrowser } from '../support.mjs';

const dir = mkdtempSync(join(tmpdir(), 'slipway-e2e-history-'));
const projects = { histok: `e2ehistok${process.pid}`, histbad: `e2ehistbad${process.pid}` };
writeFileSync(join(dir, 'ok.yml'), ['services:', '  web:', '    image: slipway-portal-frontend:1.0.0', ''].join('\n'));
writeFileSync(join(dir, 'bad.yml'), ['services:', '  web:', '    image: slipway-no-such-image:1', ''].join('\n'));

describe('the history', () => {
  const running = useConsoleAndBrowser();

  after(() => {
    for (const [name, project] of Object.entries(projects)) {
      spawnSync('docker-compose', ['-p', project, '-f', join(dir, name === 'histok' ? 'ok.yml' : 'bad.yml'), 'down', '-t', '1'], {
        env: { ...process.env, DOCKER_HOST: 'unix:///var/run/docker.sock' },
      });
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('a viewer filters the history by stack and outcome and opens a run', async () => {
    const dataDir = running.console.dataDir;
    slipway(dataDir, ['stack', 'add', 'histok', '--project', projects.histok, '--compose', join(dir, 'ok.yml')]);
    slipway(dataDir, ['stack', 'add', 'histbad', '--project', projects.histbad, '--compose', join(dir, 'bad.yml')]);
    slipway(dataDir, ['start', 'histok']);
    assert.throws(() => slipway(dataDir, ['start', 'histbad']), /slipway start histbad failed/);
    slipway(dataDir, ['stop', 'histok']);

    const viewer = USERS.find((user) => user.role === 'viewer');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, viewer, { path: '/history' });
    await hydrated(page);
    const rows = page.locator('[data-testid="history-table"] tbody tr');
    assert.equal(await rows.count(), 3);
    // Starting and stopping are not changes: the delivery metrics count none, over 13 weeks.
    const delivery = page.locator('[data-testid="delivery-table"]');
    assert.match(await delivery.innerText(), /Deployment frequency\s+0\.0 \/ week \(0\)/);
    assert.equal(await page.locator('[data-testid="delivery-chart"] rect').count(), 2 * 13);

    const filters = page.locator('[data-testid="history-filters"]');
    await filters.locator('input[name="stack"]').fill('histbad');
    await filters.locator('select[name="outcome"]').selectOption('failed');
    await filters.locator('[data-testid="filter-history"]').click();
    await page.waitForURL(/\/history\?.*stack=histbad.*outcome=failed/);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="history-table"] tbody tr').length === 1);
    const row = rows.first();
    assert.match(await row.innerText(), /histbad[\s\S]*start[\s\S]*failed/);
    assert.match(
      await page.locator('[data-testid="history-csv"]').getAttribute('href'),
      /^\/history\.csv\?stack=histbad&outcome=failed$/,
    );

    await row.locator('a').click();
    await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
    await page.locator('[data-testid="run-status"][data-status="failed"]').waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });
});
