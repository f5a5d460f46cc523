// The partner portal and CORS in headless Chromium, from pages of other
// origins on 127.0.0.1:
// - a page at PORTAL_ORIGIN (listed in HOOKLINE_CORS_ORIGINS and
//   HOOKLINE_PORTAL_FRAME_ANCESTORS by run.sh) calls /graphql with a token
//   (the browser sends a CORS preflight, which must be answered), and frames
//   the portal URL from createPortalSession: the dashboard signs in as the
//   partner, shows its webhook and not the network's, and hides the
//   tenant-wide cards;
// - a page of another origin is refused both: its fetch fails, and its
//   frame stays empty.
// Exit code 0 = passed.

import assert from 'node:assert/strict';
import http from 'node:http';

import { BASE, TOKEN, gql, launch, run, step } from './harness.mjs';

const LISTED_PORT = Number(process.env.HOOKLINE_PORTAL_TEST_PORT ?? 47613);

/** Serves one page at `/` on `port` (0: any free port). */
function servePage(port, html) {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(html);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      resolve({ origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() });
    });
  });
}

/** Calls hookline's /graphql from inside `page` with `token`: the data, or the error's text. */
function callFrom(page, token) {
  return page.evaluate(async ({ base, token }) => {
    try {
      const res = await fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: '{ viewer { login role } }' }),
      });
      return { data: (await res.json()).data };
    } catch (err) {
      return { error: String(err) };
    }
  }, { base: BASE, token });
}

async function main() {
  await gql(`mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }`, {
    input: { name: 'aff-7 tracker', eventTypes: ['conversion.*'], endpoints: [{ url: 'http://127.0.0.1:9/aff7' }], forLogin: 'aff-7' },
  });
  await gql(`mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }`, {
    input: { name: 'network CRM', eventTypes: ['conversion.*'], endpoints: [{ url: 'http://127.0.0.1:9/crm' }] },
  });
  const { createPortalSession: session } = await gql(
    'mutation { createPortalSession(login: "aff-7", ttlSeconds: 600) { url token } }');
  step('portal session for aff-7');

  const html = `<!doctype html><title>network</title><iframe id="portal" src="${session.url}" width="1200" height="800"></iframe>`;
  const listed = await servePage(LISTED_PORT, html);
  const other = await servePage(0, html);
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await page.goto(`${listed.origin}/`);
    const called = await callFrom(page, TOKEN);
    assert.deepEqual(called.data?.viewer?.role, 'ADMIN', JSON.stringify(called));
    step(`${listed.origin} called /graphql with a token (CORS allowed)`);

    const frame = page.frameLocator('#portal');
    await frame.locator('#viewer-role').filter({ hasText: 'partner' }).waitFor({ timeout: 15_000 });
    await frame.locator('#webhooks-body').getByText('aff-7 tracker').waitFor({ timeout: 15_000 });
    assert.equal(await frame.locator('#webhooks-body').getByText('network CRM').count(), 0,
      "the network's own webhook is not shown to the partner");
    assert.equal(await frame.locator('.chart-card').isVisible(), false, 'tenant-wide chart hidden');
    const address = await page.frames()[1].evaluate(() => location.href);
    assert.ok(!address.includes('token='), `the token left the address bar: ${address}`);
    step('the portal, framed by the listed origin, shows the partner its own webhook only');

    const stranger = await browser.newPage();
    await stranger.goto(`${other.origin}/`);
    const refused = await callFrom(stranger, TOKEN);
    assert.ok(refused.error, `another origin's call must fail: ${JSON.stringify(refused)}`);
    await new Promise((r) => setTimeout(r, 1500));
    const framed = stranger.frames()[1];
    const rendered = framed ? await framed.evaluate(() => document.body?.innerText ?? '').catch(() => '') : '';
    assert.ok(!rendered.includes('aff-7 tracker'), 'another origin must not frame the portal');
    step(`${other.origin}: fetch refused by CORS, portal frame blocked`);
  } finally {
    await browser.close();
    listed.close();
    other.close();
  }
}

run('portal and CORS', 60_000, main);
