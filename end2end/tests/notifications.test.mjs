// Notifications in a real browser: an admin adds a signed-webhook channel pointing at a local
// receiver, is shown its signing secret once, sends a test message, and sees it delivered in
// the channel's log; the receiver got it, signed with that secret.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { USERS, hydrated, signedInPage, useConsoleAndBrowser } from '../support.mjs';

describe('notifications', () => {
  const running = useConsoleAndBrowser();
  const received = [];
  let receiver;
  let receiverUrl;

  before(async () => {
    receiver = createServer((request, response) => {
      const chunks = [];
      request.on('data', (chunk) => chunks.push(chunk));
      request.on('end', () => {
        received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        response.end('ok');
      });
    });
    await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${receiver.address().port}/hooks/e2e-address-secret`;
  });

  after(() => receiver.close());

  test('an admin adds a channel and sends a test message', async () => {
    const admin = USERS.find((user) => user.role === 'admin');
    const { page, context, errors } = await signedInPage(running.browser, running.baseUrl, admin, { path: '/notifications' });
    await hydrated(page);
    await page.locator('[data-testid="no-channels"]').waitFor();

    await page.locator('[data-testid="channel-name"]').fill('release-hook');
    await page.locator('[data-testid="channel-kind"]').selectOption('webhook');
    await page.locator('[data-testid="channel-address"]').fill(receiverUrl);
    await page.locator('input[name="events[]"][value="approval.requested"]').check();
    await page.locator('[data-testid="add-channel"]').click();
    const secret = (await page.locator('[data-testid="signing-secret"] code').innerText()).trim();
    assert.match(secret, /^[0-9a-f]{64}$/);
    const row = page.locator('[data-testid="channels-table"] tr[data-channel="release-hook"]');
    await row.waitFor();
    const shown = await row.innerText();
    assert.match(shown, /webhook[\s\S]*http:\/\/127\.0\.0\.1:\d+\/…cret/);
    assert.match(shown, /run\.failed, approval\.requested, backup\.failed, backup\.unverified, rollback\.emergency/);
    assert.doesNotMatch(shown, /e2e-address-secret/);

    await row.locator('a').click();
    await page.waitForURL(/\/notifications\/[0-9a-f-]+$/);
    await page.locator('[data-testid="no-deliveries"]').waitFor();
    await page.locator('[data-testid="send-test"]').click();
    // The log reloads by itself: the test message goes from waiting to sent.
    await page.locator('[data-testid="deliveries-table"] tr[data-status="sent"]').waitFor({ timeout: 20_000 });
    assert.match(await page.locator('[data-testid="deliveries-table"]').innerText(), /test[\s\S]*Test message for channel release-hook/);

    assert.equal(received.length, 1);
    const [{ headers, body }] = received;
    const expected = createHmac('sha256', secret).update(`${headers['x-slipway-timestamp']}.${body}`).digest('hex');
    assert.equal(headers['x-slipway-signature'], `sha256=${expected}`);
    assert.equal(JSON.parse(body).event, 'test');
    assert.deepEqual(errors, []);
    await context.close();
  });
});
