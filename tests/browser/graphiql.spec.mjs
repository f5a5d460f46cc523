// GraphiQL at GET /graphql in headless Chromium with every host but hookline's
// unreachable: Chromium goes through a proxy that does not exist (loopback
// bypasses it), and the page's requests to any other host are aborted and
// counted. It must render from the binary's own files, run `viewer` over
// HTTP with the token given in the address, and receive a `deliveryAttempts`
// item over the WebSocket when an event is published.
//
// Needs a running hookline (HOOKLINE_URL) and an admin token for it
// (HOOKLINE_TOKEN); run.sh provides both. HOOKLINE_GRAPHIQL_SCREENSHOT=FILE
// saves what the page looks like at the end. Exit code 0 = passed.

import assert from 'node:assert/strict';
import http from 'node:http';

import { BASE, TOKEN, gql, launch, run, step, watchProblems } from './harness.mjs';

/** A receiver on 127.0.0.1 that answers 200 to everything. */
function startReceiver() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({ url: `http://127.0.0.1:${server.address().port}/graphiql`, close: () => server.close() });
    });
  });
}

/** The text of GraphiQL's result pane. */
const resultText = (page) => page.locator('.graphiql-response').innerText();

async function main() {
  const receiver = await startReceiver();
  await gql('mutation { createEventType(input: { name: "graphiql.tested", description: "GraphiQL browser test" }) { name } }');
  await gql(`mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }`, {
    input: { name: 'graphiql test', eventTypes: ['graphiql.tested'], endpoints: [{ url: receiver.url }] },
  });
  step(`webhook to ${receiver.url}`);

  // No way out: a proxy nobody listens on, for everything but loopback.
  const browser = await launch(['--proxy-server=http://127.0.0.1:9', '--proxy-bypass-list=127.0.0.1;localhost']);
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const server = new URL(BASE);
    const foreign = [];
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.protocol === 'data:' || url.host === server.host) return route.continue();
      foreign.push(url.href);
      return route.abort('internetdisconnected');
    });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const problems = watchProblems(page);
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));

    // 1. viewer over HTTP, with the token from the fragment in the headers editor.
    const viewer = encodeURIComponent('query Viewer { viewer { login tenant role } }');
    await page.goto(`${BASE}/graphql?query=${viewer}#token=${TOKEN}`);
    await page.locator('.graphiql-execute-button').waitFor();
    assert.equal(new URL(page.url()).hash, '', 'the token is wiped from the address bar');
    step('GraphiQL rendered');
    const headersEditor = await page.locator('.graphiql-editor-tool').innerText();
    assert.match(headersEditor, /Authorization/, 'the headers editor holds the Authorization header');
    await page.locator('.graphiql-execute-button').click();
    await page.waitForFunction(
      () => document.querySelector('.graphiql-response')?.innerText.includes('"tenant"'),
    );
    const answer = await resultText(page);
    assert.match(answer, /"tenant": "demo"/, `viewer answered: ${answer}`);
    assert.match(answer, /"role": "ADMIN"/);
    step('ran viewer');

    // 2. a subscription over the WebSocket, then an event to deliver.
    const attempts = encodeURIComponent(
      // The dashboard test's receivers are gone by now: only successes here.
      'subscription Attempts { deliveryAttempts(filter: { outcome: SUCCEEDED }) '
        + '{ eventType attemptNumber outcome responseStatus } }',
    );
    await page.goto(`${BASE}/graphql?query=${attempts}#token=${TOKEN}`);
    await page.locator('.graphiql-execute-button').click();
    // Publish until an item arrives: the subscription starts asynchronously.
    let published = 0;
    const deadline = Date.now() + 20_000;
    for (;;) {
      await gql('mutation($input: PublishEventInput!) { publishEvent(input: $input) { deliveryCount } }',
        { input: { type: 'graphiql.tested', data: { n: published } } });
      published += 1;
      const text = await resultText(page);
      if (text.includes('"deliveryAttempts"')) {
        assert.match(text, /"eventType": "graphiql.tested"/, `subscription item: ${text}`);
        assert.match(text, /"outcome": "SUCCEEDED"/);
        break;
      }
      assert.ok(Date.now() < deadline, `no deliveryAttempts item after ${published} publishes; pane: ${text}`);
      await page.waitForTimeout(500);
    }
    assert.ok(sockets.some((url) => url.endsWith('/graphql/ws')), `sockets opened: ${sockets}`);
    step(`received a deliveryAttempts item (${published} published)`);
    if (process.env.HOOKLINE_GRAPHIQL_SCREENSHOT) {
      await page.screenshot({ path: process.env.HOOKLINE_GRAPHIQL_SCREENSHOT });
    }

    assert.deepEqual(foreign, [], 'requests to other hosts');
    assert.deepEqual(problems, [], 'console errors (CSP violations included)');
  } finally {
    await browser.close();
    receiver.close();
  }
}

await run('GraphiQL', 60_000, main);
