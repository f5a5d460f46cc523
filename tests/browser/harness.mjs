// What the browser specs share: the hookline they test (HOOKLINE_URL and an
// admin token in HOOKLINE_TOKEN, which run.sh provides), timed steps, a
// GraphQL helper, headless Chromium, the page problems they must not see,
// and running a spec under an overall deadline.

import { chromium } from 'playwright-core';

export const BASE = process.env.HOOKLINE_URL;
export const TOKEN = process.env.HOOKLINE_TOKEN;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

if (!BASE || !TOKEN) {
  console.error('set HOOKLINE_URL and HOOKLINE_TOKEN (run tests/browser/run.sh)');
  process.exit(2);
}

const started = Date.now();
const elapsed = () => ((Date.now() - started) / 1000).toFixed(1);

/** Logs a step with the seconds since the spec started. */
export const step = (what) => console.log(`  [${elapsed()}s] ${what}`);

/** Runs one operation with the admin token; throws on any GraphQL error. */
export async function gql(query, variables = {}) {
  const res = await fetch(`${BASE}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors?.length) throw new Error(`GraphQL: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** Headless Debian Chromium; each launch gets a fresh, temporary profile. */
export function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

/** Collects the page's console errors and uncaught errors (CSP violations included). */
export function watchProblems(page) {
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  return problems;
}

/** Runs `main` and exits 0 when it passed, 1 when it threw or overran `timeoutMs`. */
export async function run(name, timeoutMs, main) {
  const watchdog = setTimeout(() => {
    console.error(`FAILED: the ${name} test took longer than ${timeoutMs / 1000} s`);
    process.exit(1);
  }, timeoutMs);
  try {
    await main();
    clearTimeout(watchdog);
    console.log(`${name} test passed in ${elapsed()} s`);
  } catch (err) {
    clearTimeout(watchdog);
    console.error(`FAILED: ${err.stack ?? err}`);
    process.exit(1);
  }
}
