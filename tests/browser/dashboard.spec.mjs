// End-to-end test of the hookline dashboard in headless Chromium.
//
// Needs a running hookline (HOOKLINE_URL, e.g. http://127.0.0.1:41234) and an
// admin token for it (HOOKLINE_TOKEN); run.sh provides both. The script starts
// its own webhook receiver on 127.0.0.1, drives the page like a person would
// (sign in, create a webhook, watch the live feed), publishes events through
// the API, checks what the page shows, and saves a full-page screenshot to
// HOOKLINE_SCREENSHOT (default: docs/dashboard.png). Exit code 0 = passed.

import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { BASE, TOKEN, gql, launch, run, step, watchProblems } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCREENSHOT = path.resolve(ROOT, process.env.HOOKLINE_SCREENSHOT ?? 'docs/dashboard.png');

// ------------------------------------------------------------- receiver

/** A webhook receiver: 200 on every path but /flaky, which answers 503. */
function startReceiver() {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      const flaky = req.url.startsWith('/flaky');
      res.writeHead(flaky ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(flaky ? 'try again later' : 'ok');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}`, received, close: () => server.close() });
    });
  });
}

// ------------------------------------------------------------- API

const publish = (type, data) =>
  gql('mutation($input: PublishEventInput!) { publishEvent(input: $input) { event { id } deliveryCount } }',
    { input: { type, data } });

// ------------------------------------------------------------- the test

async function main() {
  const receiver = await startReceiver();
  step(`receiver on ${receiver.url}`);

  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);

    // The page may talk to hookline only, and must not trip its CSP.
    const server = new URL(BASE);
    const foreign = [];
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (url.protocol !== 'data:' && url.host !== server.host) foreign.push(req.url());
    });
    const problems = watchProblems(page);

    await page.goto(`${BASE}/`);
    step('opened the dashboard');

    // Sign in.
    await page.getByLabel('API token (JWT)').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#viewer-tenant', { hasText: 'demo' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('hookline.token')), TOKEN);
    await page.locator('[data-testid="live-state"][data-state="live"]').waitFor();
    step('signed in; live feed connected');

    // Create a webhook through the form.
    await page.getByRole('button', { name: 'New webhook' }).click();
    await page.getByLabel('Name', { exact: true }).fill('CRM (local receiver)');
    await page.getByLabel('Event types', { exact: true }).fill('*');
    await page.getByLabel('Endpoint URL', { exact: true }).fill(`${receiver.url}/hooks/crm`);
    await page.getByRole('button', { name: 'Create webhook' }).click();
    await page.getByTestId('webhook-secret').waitFor({ state: 'visible' });
    const secret = await page.getByTestId('webhook-secret').textContent();
    assert.match(secret, /^whsec_/, `the new secret is shown once (got ${JSON.stringify(secret)})`);
    await page.getByTestId('webhook-row').filter({ hasText: 'CRM (local receiver)' }).waitFor();
    step('created a webhook in the UI');

    // A form error shows the server's message and code.
    await page.getByRole('button', { name: 'New webhook' }).click();
    await page.getByLabel('Name', { exact: true }).fill('broken');
    await page.getByLabel('Event types', { exact: true }).fill('*');
    await page.getByLabel('Endpoint URL', { exact: true }).fill('not a url');
    await page.getByRole('button', { name: 'Create webhook' }).click();
    await page.locator('#new-webhook-error', { hasText: 'BAD_USER_INPUT' }).waitFor();
    await page.getByRole('button', { name: 'Cancel' }).click();
    step('form errors show errors[0].message and extensions.code');

    // A second, failing webhook (made through the API) so the page shows failures too.
    await gql(`mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }`, {
      input: {
        name: 'Partner API (flaky)', eventTypes: ['conversion.*'],
        endpoints: [{ url: `${receiver.url}/flaky/partner` }],
        retryPolicy: { maxAttempts: 2, initialIntervalMs: 300, maxIntervalMs: 1000 }, timeoutMs: 2000,
      },
    });

    // Publish through the API; the attempt must reach the page over the subscription.
    const published = await publish('conversion.created', { conversionId: 'cnv_1' });
    assert.equal(published.publishEvent.deliveryCount, 2);
    step(`published ${published.publishEvent.event.id}`);
    const row = page.locator(
      '[data-testid="live-attempt"][data-event-type="conversion.created"][data-outcome="SUCCEEDED"]').first();
    await row.waitFor({ timeout: 20_000 });
    const text = await row.innerText();
    assert.match(text, /conversion\.created/);
    assert.match(text, /SUCCEEDED/);
    assert.match(text, /HTTP 200/);
    assert.match(text, /\/hooks\/crm/);
    step('live attempt row: conversion.created SUCCEEDED');

    const delivered = receiver.received.find((r) => r.path === '/hooks/crm' && r.body.includes('cnv_1'));
    assert.ok(delivered, 'the receiver got the event');
    assert.match(delivered.headers['webhook-signature'], /^v1,/);

    // The failing webhook's attempts show up as FAILED rows.
    await page.locator('[data-testid="live-attempt"][data-outcome="FAILED"]').first().waitFor({ timeout: 20_000 });
    step('failed attempt row shown');

    // The chart and the webhook's "last sent" follow the live feed at once
    // (the queries that confirm them run at most every 10 s).
    const chartTotal = () => page.evaluate(() =>
      Number(document.querySelector('[data-testid="chart-summary"]').innerText.match(/^(\d+) attempt/)?.[1] ?? 0));
    const totalBefore = await chartTotal();
    await publish('conversion.created', { conversionId: 'cnv_now' });
    const newest = page.locator('[data-testid="live-attempt"][data-event-type="conversion.created"]').first();
    await page.waitForFunction((before) => {
      const m = document.querySelector('[data-testid="chart-summary"]').innerText.match(/^(\d+) attempt/);
      return m && Number(m[1]) > before;
    }, totalBefore, { timeout: 1_000 });
    const crmRow = page.getByTestId('webhook-row').filter({ hasText: 'CRM (local receiver)' });
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('[data-testid="live-attempt"]')]
        .filter((r) => r.innerText.includes('/hooks/crm'));
      const latest = rows[0]?.querySelector('time')?.getAttribute('datetime');
      const cell = [...document.querySelectorAll('[data-testid="webhook-row"]')]
        .find((r) => r.innerText.includes('CRM (local receiver)'))?.querySelectorAll('time')[1];
      return latest && cell && cell.getAttribute('datetime') >= latest;
    }, null, { timeout: 1_000 });
    assert.ok(await newest.count() >= 1 && await crmRow.count() === 1);
    step(`chart (${totalBefore} → ${await chartTotal()} attempts) and last sent follow the feed at once`);

    // A little more traffic, so that the chart and the feed have something to show.
    for (const [type, data] of [
      ['affiliate.created', { affiliateId: 'aff_7' }],
      ['offer.updated', { offerId: 'off_12' }],
      ['conversion.created', { conversionId: 'cnv_2' }],
    ]) await publish(type, data);

    // Deliveries of the webhook, with expandable attempts, retry and test event.
    await page.getByRole('button', { name: 'Show the deliveries of CRM (local receiver)' }).click();
    const deliveries = page.getByTestId('delivery-row');
    await deliveries.filter({ hasText: 'conversion.created' }).first().waitFor();
    await page.getByRole('button', { name: 'Send test event' }).click();
    await page.locator('#notice', { hasText: 'Test event sent to 1 endpoint' }).waitFor();
    await deliveries.filter({ hasText: 'webhook.test' }).first().waitFor();
    const first = deliveries.filter({ hasText: 'conversion.created' }).first();
    await first.getByRole('button', { name: /^Retry delivery/ }).click();
    await page.locator('#notice', { hasText: 'queued again' }).waitFor();
    await first.getByRole('button', { name: /^Show the \d+ attempts/ }).click();
    await page.locator('table.attempts tbody tr').first().waitFor();
    assert.match(await page.locator('table.attempts').first().innerText(), /SUCCEEDED/);
    step('deliveries panel: test event, retry, attempts');

    // The chart counts the attempts of the last hour.
    await page.getByTestId('chart-summary').filter({ hasText: /succeeded · mean/ }).waitFor({ timeout: 20_000 });
    const bars = await page.locator('#chart rect.ok').count();
    assert.ok(bars >= 1, 'the chart draws succeeded bars');
    assert.ok(await page.locator('#chart rect.fail').count() >= 1, 'the chart draws failed bars');
    step(`chart: ${await page.getByTestId('chart-summary').innerText()}`);

    // The webhooks table follows the live feed (throttled): both webhooks, and when they last sent.
    await page.locator('#webhooks-count', { hasText: '2 webhooks' }).waitFor({ timeout: 20_000 });
    const crm = page.getByTestId('webhook-row').filter({ hasText: 'CRM (local receiver)' });
    await crm.locator('td', { hasText: /ago|just now/ }).nth(1).waitFor();
    step('webhooks table: 2 webhooks, last sent shown');

    // Endpoint health: disable the CRM endpoint from its row, see it and its
    // webhook disabled, enable it again.
    await crm.getByRole('button', { name: /^Disable the endpoint/ }).click();
    await page.locator('#notice', { hasText: 'disabled' }).waitFor();
    await crm.locator('[data-testid="endpoint"][data-status="DISABLED"]').waitFor();
    assert.match(await crm.innerText(), /DISABLED/);
    await crm.getByRole('button', { name: /^Enable the endpoint/ }).click();
    await crm.locator('[data-testid="endpoint"][data-status="ACTIVE"]').waitFor();
    assert.match(await crm.locator('td').last().innerText(), /ACTIVE/);
    step('endpoint disabled and enabled from its row');

    // Disabling it was reported as an operational event, live.
    await page.locator('[data-testid="ops-event"][data-type="hookline.endpoint.disabled"]').waitFor();
    assert.match(await page.getByTestId('ops-list').innerText(), /was disabled/);
    step('operational event shown: hookline.endpoint.disabled');

    // Managing the webhook from its panel: pause and resume, then edit.
    await page.getByRole('button', { name: 'Show the deliveries of CRM (local receiver)' }).click();
    await page.getByRole('button', { name: /^Pause the webhook/ }).click();
    await page.locator('#notice', { hasText: 'paused' }).waitFor();
    await crm.locator('td').last().filter({ hasText: 'PAUSED' }).waitFor();
    await page.getByRole('button', { name: /^Resume the webhook/ }).click();
    await crm.locator('td').last().filter({ hasText: 'ACTIVE' }).waitFor();
    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    assert.equal(await page.locator('#ed-name').inputValue(), 'CRM (local receiver)');
    await page.locator('#ed-name').fill('CRM (local receiver) v2');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#notice', { hasText: 'saved' }).waitFor();
    await page.getByTestId('webhook-row').filter({ hasText: 'CRM (local receiver) v2' }).waitFor();
    step('webhook paused, resumed and renamed from its panel');

    // Recovery: the flaky partner's failed deliveries of the last hour are
    // queued again from its panel; the job's progress follows until done.
    await page.locator('[data-testid="ops-event"][data-type="hookline.delivery.exhausted"]').first().waitFor();
    await page.getByRole('button', { name: /^Show the deliveries of Partner API/ }).click();
    await page.getByRole('button', { name: 'Recover…' }).click();
    assert.ok(await page.getByLabel('Created since').inputValue(), 'the window starts an hour ago by default');
    await page.getByRole('button', { name: 'Start recovery' }).click();
    await page.locator('#notice', { hasText: 'Recovery started' }).waitFor();
    const job = page.getByTestId('recovery-job').first();
    await job.and(page.locator('[data-state="COMPLETED"]')).waitFor({ timeout: 20_000 });
    await job.getByTestId('recovery-counts').filter({ hasText: /(\d+) of \1 queued/ }).waitFor();
    await job.getByTestId('recovery-counts').filter({ hasText: /0 open/ }).waitFor({ timeout: 20_000 });
    const counts = await job.getByTestId('recovery-counts').innerText();
    assert.match(counts, /[1-9]\d* of [1-9]\d* queued/, counts);
    assert.match(counts, /failed again/, counts);
    step(`recovery from the panel: ${counts}`);

    // Let the retries settle, then take the picture.
    await page.waitForTimeout(1000);
    await page.locator('#notice').evaluate((n) => { n.hidden = true; });
    // From the top: scrolled, the sticky header would be drawn mid-page.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    step(`screenshot: ${path.relative(ROOT, SCREENSHOT)}`);

    // Deleting asks once more, then the webhook is gone.
    await page.getByRole('button', { name: /^Show the deliveries of Partner API/ }).click();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('button', { name: 'Confirm delete' }).click();
    await page.locator('#notice', { hasText: 'deleted' }).waitFor();
    await page.locator('#webhooks-count', { hasText: '1 webhook' }).waitFor();
    step('webhook deleted after confirming');

    // Signing out forgets the token.
    await page.getByRole('button', { name: 'Sign out and forget the token' }).click();
    await page.getByLabel('API token (JWT)').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('hookline.token')), null);
    step('signed out');

    assert.deepEqual(foreign, [], 'requests to other hosts');
    assert.deepEqual(problems, [], 'console errors (CSP violations included)');
  } finally {
    await browser.close();
    receiver.close();
  }
}

await run('browser', 90_000, main);
