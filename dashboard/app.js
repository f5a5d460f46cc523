// hookline dashboard: sign in with a token, then webhooks, their deliveries
// and recoveries (recovery.js), a live feed of attempts, hookline's
// operational events (ops.js) and a chart of the last hour. Plain DOM code, no
// framework; everything goes through the GraphQL API at /graphql.

import { LiveSubscription } from './live.js';
import { renderChart, formatMs } from './chart.js';
import { $, h, showError, fullTime, clock, timeCell, badge } from './dom.js';
import { RecoveryPanel } from './recovery.js';
import { OpsFeed } from './ops.js';

const TOKEN_KEY = 'hookline.token';
const LIVE_ROWS_KEPT = 200;
const REFRESH_EVERY_MS = 30_000;

const Q = {
  viewer: '{ viewer { tenant login role } }',
  webhooks: `{ webhooks(first: 100) {
      edges { node { id name eventTypes createdAt lastSentAt status disabledReason
        endpoints { id url headers { name value } rateLimitPerSecond status disabledReason consecutiveFailures
          lastHour { attempts successRate durationP95Ms } } } }
      pageInfo { hasNextPage } } }`,
  createWebhook: `mutation CreateWebhook($input: CreateWebhookInput!) {
      createWebhook(input: $input) { secret webhook { id name } } }`,
  deliveries: `query Deliveries($id: ID!) { webhook(id: $id) { id name deliveries(first: 50) { edges { node {
      id status attemptCount lastResponseStatus createdAt nextAttemptAt endpoint { url } event { type }
      attempts { attemptNumber outcome responseStatus durationMs errorKind errorMessage startedAt } } } } } }`,
  retry: 'mutation Retry($id: ID!) { retryDelivery(id: $id) { id status } }',
  enableEndpoint: 'mutation Enable($id: ID!) { enableEndpoint(id: $id) { id status } }',
  updateWebhook: `mutation UpdateWebhook($id: ID!, $input: UpdateWebhookInput!) {
      updateWebhook(id: $id, input: $input) { id name status } }`,
  deleteWebhook: 'mutation DeleteWebhook($id: ID!) { deleteWebhook(id: $id) { deletedId } }',
  disableEndpoint: 'mutation Disable($id: ID!) { disableEndpoint(id: $id) { id status } }',
  sendTest: 'mutation SendTest($id: ID!) { sendTestEvent(webhookId: $id) { deliveries { id } } }',
  metrics: '{ attemptMetrics(bucketSeconds: 60) { start succeeded failed meanDurationMs maxDurationMs } }',
  live: `subscription LiveAttempts { deliveryAttempts {
      id attemptNumber outcome responseStatus durationMs errorKind errorMessage
      eventType endpointUrl startedAt webhookId deliveryId } }`,
};

const state = {
  token: null,
  viewer: null,
  webhooks: [],
  selected: null, // id of the webhook whose deliveries are shown
  expanded: new Set(), // ids of deliveries whose attempts are shown
  feed: null,
  ops: null, // the operational events' feed
  recovery: null, // the selected webhook's recoveries
  timers: [],
  throttles: new Map(),
};

// ---------------------------------------------------------------- helpers

class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

/** One GraphQL request; throws ApiError with `errors[0]`'s message and code. */
async function gql(query, variables = {}) {
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${state.token}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    throw new ApiError(`hookline did not answer (${err.message})`, 'NETWORK');
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`unexpected answer from hookline (HTTP ${response.status})`, `HTTP_${response.status}`);
  }
  const first = body.errors?.[0];
  if (first) {
    const error = new ApiError(first.message, first.extensions?.code ?? 'ERROR');
    if (error.code === 'UNAUTHENTICATED' && state.viewer) signOut(`Signed out: ${first.message}`);
    throw error;
  }
  return body.data;
}

let noticeTimer = null;
function notice(text) {
  const box = $('notice');
  box.textContent = text;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (box.hidden = true), 5000);
}

/** Runs `fn` once, `ms` after the first call; calls in between fold into it. */
function throttle(key, ms, fn) {
  if (state.throttles.has(key)) return;
  state.throttles.set(key, setTimeout(() => {
    state.throttles.delete(key);
    fn();
  }, ms));
}

// ---------------------------------------------------------------- sign-in

async function signIn(token) {
  state.token = token.trim().replace(/^bearer\s+/i, '');
  const data = await gql(Q.viewer);
  state.viewer = data.viewer;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  showDashboard();
}

function signOut(message = null) {
  state.feed?.stop();
  state.feed = null;
  state.ops?.stop();
  state.ops = null;
  state.recovery?.hide();
  state.timers.forEach(clearInterval);
  state.timers = [];
  state.throttles.forEach((id, key) => (key.startsWith('frame:') ? cancelAnimationFrame(id) : clearTimeout(id)));
  state.throttles.clear();
  Object.assign(state, { token: null, viewer: null, webhooks: [], selected: null });
  state.expanded.clear();
  sessionStorage.removeItem(TOKEN_KEY);
  $('live-list').replaceChildren();
  $('webhooks-body').replaceChildren();
  $('secret-value').textContent = '';
  $('secret-box').hidden = true;
  $('deliveries').hidden = true;
  $('dashboard').hidden = true;
  $('viewer').hidden = true;
  $('sign-in').hidden = false;
  $('token-input').value = '';
  showError($('sign-in-error'), message ? { message } : null);
  $('token-input').focus();
}

function showDashboard() {
  const { tenant, login, role } = state.viewer;
  $('viewer-tenant').textContent = tenant;
  $('viewer-login').textContent = login;
  $('viewer-role').textContent = role.toLowerCase();
  $('viewer').hidden = false;
  $('sign-in').hidden = true;
  $('dashboard').hidden = false;
  document.body.classList.toggle('is-admin', role === 'ADMIN');
  const partner = role === 'PARTNER';
  document.body.classList.toggle('is-partner', partner);
  // A partner manages its own webhooks as an admin manages all of them.
  const manages = role === 'ADMIN' || partner;
  for (const el of document.querySelectorAll('.admin-only')) {
    el.disabled = !manages;
    el.dataset.title ??= el.title;
    el.title = manages ? el.dataset.title : 'Needs an admin token';
  }
  loadWebhooks();
  state.timers.push(setInterval(loadWebhooks, REFRESH_EVERY_MS));
  if (partner) return;
  refreshChart();
  startLiveFeed();
  state.ops = new OpsFeed({ token: state.token, gql });
  state.ops.start();
  state.timers.push(setInterval(refreshChart, REFRESH_EVERY_MS));
}

// ---------------------------------------------------------------- webhooks

async function loadWebhooks() {
  try {
    const data = await gql(Q.webhooks);
    state.webhooks = data.webhooks.edges.map((e) => e.node);
    const more = data.webhooks.pageInfo.hasNextPage ? ' (the 100 newest shown)' : '';
    const n = state.webhooks.length;
    $('webhooks-count').textContent = `${n} webhook${n === 1 ? '' : 's'}${more}`;
    showError($('webhooks-error'), null);
    renderWebhooks();
  } catch (err) {
    showError($('webhooks-error'), err);
  }
}

function renderWebhooks() {
  const body = $('webhooks-body');
  if (!state.webhooks.length) {
    body.replaceChildren(h('tr', {}, h('td', { colspan: 6, class: 'empty' },
      'No webhooks yet. Create one with “New webhook”: it receives the events whose type matches.')));
    return;
  }
  body.replaceChildren(...state.webhooks.map((w) => h('tr', {
    class: w.id === state.selected ? 'selected' : null,
    'data-testid': 'webhook-row',
    'data-id': w.id,
    onclick: () => selectWebhook(w.id),
  },
  h('td', { class: 'name' }, h('button', {
    type: 'button', class: 'link', 'aria-label': `Show the deliveries of ${w.name}`,
    'aria-pressed': String(w.id === state.selected),
    onclick: (event) => { event.stopPropagation(); selectWebhook(w.id); },
  }, w.name)),
  h('td', {}, w.eventTypes.map((t) => h('span', { class: 'chip' }, t))),
  h('td', { class: 'urls' }, w.endpoints.map(endpointLine)),
  h('td', { class: 'nowrap' }, timeCell(w.createdAt)),
  h('td', { class: 'nowrap' }, w.lastSentAt ? timeCell(w.lastSentAt) : h('span', { class: 'muted' }, 'never')),
  h('td', {}, badge(w.status, w.status.toLowerCase(), w.disabledReason)),
  )));
}

/** One endpoint of a webhook row: its URL, health over the last hour, and
 *  a button that disables or enables it alone. */
function endpointLine(e) {
  const disabled = e.status === 'DISABLED';
  const hour = e.lastHour;
  const health = hour.attempts
    ? `${Math.round(hour.successRate * 100)} % of ${hour.attempts} attempts succeeded in the last hour, p95 ${formatMs(hour.durationP95Ms)}`
    : 'no attempts in the last hour';
  const streak = e.consecutiveFailures ? `, ${e.consecutiveFailures} failures in a row` : '';
  return h('div', { class: 'endpoint', 'data-testid': 'endpoint', 'data-status': e.status },
    h('span', { class: 'url', title: e.url }, e.url),
    h('span', { class: 'health muted', title: health + streak },
      hour.attempts ? `${Math.round(hour.successRate * 100)} %` : '–'),
    disabled ? badge('DISABLED', 'disabled', e.disabledReason) : null,
    h('button', {
      type: 'button', class: 'small-button secondary',
      'aria-label': `${disabled ? 'Enable' : 'Disable'} the endpoint ${e.url}`,
      onclick: (event) => { event.stopPropagation(); setEndpoint(e, disabled); },
    }, disabled ? 'Enable' : 'Disable'));
}

async function setEndpoint(endpoint, enable) {
  try {
    await gql(enable ? Q.enableEndpoint : Q.disableEndpoint, { id: endpoint.id });
    notice(`Endpoint ${endpoint.url} ${enable ? 'enabled' : 'disabled'}.`);
    showError($('webhooks-error'), null);
    await loadWebhooks();
  } catch (err) {
    showError($('webhooks-error'), err);
  }
}

function toggleNewWebhook(open) {
  $('new-webhook-form').hidden = !open;
  $('new-webhook-toggle').setAttribute('aria-expanded', String(open));
  showError($('new-webhook-error'), null);
  if (open) $('wh-name').focus();
}

async function createWebhook(event) {
  event.preventDefault();
  const input = {
    name: $('wh-name').value.trim(),
    eventTypes: $('wh-events').value.split(',').map((s) => s.trim()).filter(Boolean),
    endpoints: [{ url: $('wh-url').value.trim() }],
  };
  $('wh-create').disabled = true;
  try {
    const data = await gql(Q.createWebhook, { input });
    const { secret, webhook } = data.createWebhook;
    event.target.reset();
    toggleNewWebhook(false);
    $('secret-value').textContent = secret;
    $('secret-box').hidden = false;
    notice(`Webhook “${webhook.name}” created.`);
    await loadWebhooks();
  } catch (err) {
    showError($('new-webhook-error'), err);
  } finally {
    $('wh-create').disabled = false;
  }
}

async function copySecret() {
  const text = $('secret-value').textContent;
  try {
    await navigator.clipboard.writeText(text);
    notice('Secret copied to the clipboard.');
  } catch {
    const range = document.createRange();
    range.selectNodeContents($('secret-value'));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    notice('Copying is not allowed here: the secret is selected, press Ctrl+C.');
  }
}

// ---------------------------------------------------------------- deliveries

function selectWebhook(id) {
  if (state.selected !== id) {
    state.expanded.clear();
    toggleEditWebhook(false);
  }
  state.selected = id;
  renderWebhooks();
  $('deliveries').hidden = false;
  const webhook = state.webhooks.find((w) => w.id === id);
  $('deliveries-title').textContent = `Deliveries · ${webhook?.name ?? id}`;
  renderWebhookActions();
  loadDeliveries();
  state.recovery.show(id);
}

// ---------------------------------------------------------------- managing a webhook

const selectedWebhook = () => state.webhooks.find((w) => w.id === state.selected);

/** Pause or resume, and a delete that asks once more, for the selected webhook. */
function renderWebhookActions() {
  const webhook = selectedWebhook();
  const pause = $('webhook-pause');
  pause.textContent = webhook?.status === 'ACTIVE' ? 'Pause' : 'Resume';
  pause.setAttribute('aria-label', `${pause.textContent} the webhook ${webhook?.name ?? ''}`);
  const remove = $('webhook-delete');
  remove.textContent = 'Delete';
  delete remove.dataset.confirm;
}

async function pauseOrResume() {
  const webhook = selectedWebhook();
  if (!webhook) return;
  const status = webhook.status === 'ACTIVE' ? 'PAUSED' : 'ACTIVE';
  try {
    await gql(Q.updateWebhook, { id: webhook.id, input: { status } });
    notice(`Webhook “${webhook.name}” ${status === 'PAUSED' ? 'paused' : 'resumed'}.`);
    showError($('deliveries-error'), null);
    await loadWebhooks();
    renderWebhookActions();
  } catch (err) {
    showError($('deliveries-error'), err);
  }
}

async function deleteSelectedWebhook() {
  const webhook = selectedWebhook();
  const button = $('webhook-delete');
  if (!webhook) return;
  if (!button.dataset.confirm) {
    button.dataset.confirm = 'yes';
    button.textContent = 'Confirm delete';
    return;
  }
  try {
    await gql(Q.deleteWebhook, { id: webhook.id });
    notice(`Webhook “${webhook.name}” deleted with its deliveries.`);
    state.selected = null;
    state.recovery.hide();
    $('deliveries').hidden = true;
    await loadWebhooks();
  } catch (err) {
    showError($('deliveries-error'), err);
  } finally {
    renderWebhookActions();
  }
}

function toggleEditWebhook(open) {
  const webhook = selectedWebhook();
  $('edit-webhook-form').hidden = !open;
  $('webhook-edit').setAttribute('aria-expanded', String(open));
  showError($('edit-webhook-error'), null);
  if (!open || !webhook) return;
  $('ed-name').value = webhook.name;
  $('ed-events').value = webhook.eventTypes.join(', ');
  $('ed-urls').value = webhook.endpoints.map((e) => e.url).join('\n');
  $('ed-name').focus();
}

async function saveWebhook(event) {
  event.preventDefault();
  const webhook = selectedWebhook();
  if (!webhook) return;
  const urls = $('ed-urls').value.split('\n').map((u) => u.trim()).filter(Boolean);
  const input = {
    name: $('ed-name').value.trim(),
    eventTypes: $('ed-events').value.split(',').map((t) => t.trim()).filter(Boolean),
  };
  const current = webhook.endpoints.map((e) => e.url);
  if (urls.join('\n') !== current.join('\n')) {
    // A URL that stays keeps its headers and its rate limit (the list
    // replaces them all).
    input.endpoints = urls.map((url) => {
      const kept = webhook.endpoints.find((e) => e.url === url);
      return { url, headers: kept?.headers ?? [], rateLimitPerSecond: kept?.rateLimitPerSecond ?? null };
    });
  }
  $('ed-save').disabled = true;
  try {
    const data = await gql(Q.updateWebhook, { id: webhook.id, input });
    toggleEditWebhook(false);
    notice(`Webhook “${data.updateWebhook.name}” saved.`);
    await loadWebhooks();
    selectWebhook(webhook.id);
  } catch (err) {
    showError($('edit-webhook-error'), err);
  } finally {
    $('ed-save').disabled = false;
  }
}

async function loadDeliveries() {
  const id = state.selected;
  if (!id) return;
  try {
    const data = await gql(Q.deliveries, { id });
    if (state.selected !== id) return; // another webhook was chosen meanwhile
    $('deliveries-title').textContent = `Deliveries · ${data.webhook.name}`;
    showError($('deliveries-error'), null);
    renderDeliveries(data.webhook.deliveries.edges.map((e) => e.node));
  } catch (err) {
    showError($('deliveries-error'), err);
  }
}

function renderDeliveries(deliveries) {
  const body = $('deliveries-body');
  if (!deliveries.length) {
    body.replaceChildren(h('tr', {}, h('td', { colspan: 7, class: 'empty' },
      'No deliveries yet: publish a matching event, or press “Send test event”.')));
    return;
  }
  const rows = [];
  for (const d of deliveries) {
    const open = state.expanded.has(d.id);
    const panelId = `attempts-${d.id}`;
    const next = d.nextAttemptAt ? `next attempt at ${fullTime(d.nextAttemptAt)}` : null;
    rows.push(h('tr', { class: `delivery${open ? ' open' : ''}`, 'data-testid': 'delivery-row', 'data-id': d.id },
      h('td', {}, h('button', {
        type: 'button', class: 'expander', 'aria-expanded': String(open), 'aria-controls': panelId,
        'aria-label': `${open ? 'Hide' : 'Show'} the ${d.attempts.length} attempts of delivery ${d.id}`,
        onclick: () => {
          if (open) state.expanded.delete(d.id);
          else state.expanded.add(d.id);
          renderDeliveries(deliveries);
        },
      }, open ? '▾' : '▸')),
      h('td', { class: 'nowrap' }, timeCell(d.createdAt)),
      h('td', {}, h('span', { class: 'event-type' }, d.event.type),
        d.endpoint ? h('div', { class: 'url muted small', title: d.endpoint.url }, d.endpoint.url) : null),
      h('td', {}, badge(d.status, d.status.toLowerCase(), next)),
      h('td', { class: 'num' }, d.attemptCount),
      h('td', { class: 'num' }, d.lastResponseStatus ?? '—'),
      h('td', { class: 'row-actions' }, h('button', {
        type: 'button', class: 'secondary small-button admin-only', disabled: state.viewer.role !== 'ADMIN',
        'aria-label': `Retry delivery ${d.id} now`, onclick: (e) => retryDelivery(d.id, e.currentTarget),
      }, 'Retry')),
    ));
    if (open) rows.push(h('tr', { class: 'attempts-row', id: panelId }, h('td', { colspan: 7 }, attemptsTable(d))));
  }
  body.replaceChildren(...rows);
}

function attemptsTable(delivery) {
  if (!delivery.attempts.length) return h('p', { class: 'muted small' }, 'Not attempted yet.');
  return h('table', { class: 'attempts', 'aria-label': `Attempts of delivery ${delivery.id}` },
    h('thead', {}, h('tr', {}, ['#', 'Started', 'Outcome', 'HTTP', 'Duration', 'Error']
      .map((t) => h('th', { scope: 'col', class: ['#', 'HTTP', 'Duration'].includes(t) ? 'num' : null }, t)))),
    h('tbody', {}, delivery.attempts.map((a) => h('tr', {},
      h('td', { class: 'num' }, a.attemptNumber),
      h('td', { class: 'nowrap' }, h('time', { datetime: a.startedAt, title: fullTime(a.startedAt) }, clock(a.startedAt))),
      h('td', {}, badge(a.outcome)),
      h('td', { class: 'num' }, a.responseStatus ?? '—'),
      h('td', { class: 'num' }, formatMs(a.durationMs)),
      h('td', { class: 'error-text' }, a.errorKind ? `${a.errorKind}: ${a.errorMessage ?? ''}` : ''),
    ))));
}

async function retryDelivery(id, button) {
  button.disabled = true;
  try {
    const data = await gql(Q.retry, { id });
    notice(`Delivery ${id} queued again (${data.retryDelivery.status.toLowerCase()}).`);
    showError($('deliveries-error'), null);
    await loadDeliveries();
  } catch (err) {
    showError($('deliveries-error'), err);
    button.disabled = false;
  }
}

async function sendTestEvent() {
  const button = $('send-test');
  button.disabled = true;
  try {
    const data = await gql(Q.sendTest, { id: state.selected });
    const n = data.sendTestEvent.deliveries.length;
    notice(`Test event sent to ${n} endpoint${n === 1 ? '' : 's'}.`);
    showError($('deliveries-error'), null);
    await loadDeliveries();
  } catch (err) {
    showError($('deliveries-error'), err);
  } finally {
    button.disabled = state.viewer?.role !== 'ADMIN';
  }
}

// ---------------------------------------------------------------- live feed

const LIVE_STATES = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'disconnected',
  refused: 'token refused',
  stopped: 'stopped',
};

function startLiveFeed() {
  state.feed = new LiveSubscription({
    token: state.token,
    query: Q.live,
    onData: (data) => addLiveAttempt(data.deliveryAttempts),
    onError: (error) => {
      if (error.extensions?.code === 'LAGGED') addLiveRow(laggedRow(error.extensions.dropped));
      else notice(`Live feed: ${error.message} (${error.extensions?.code ?? 'ERROR'})`);
    },
    onState: (name, detail = {}) => {
      const label = $('live-state');
      label.dataset.state = name;
      let text = LIVE_STATES[name] ?? name;
      if (name === 'reconnecting') text = `disconnected, retrying in ${Math.ceil(detail.inMs / 1000)} s`;
      if (name === 'refused') text = `stopped: ${detail.reason}`;
      label.textContent = text;
      $('live-reconnect').hidden = name !== 'reconnecting';
      if (name === 'live' && detail.reconnected) {
        addLiveRow(h('li', { class: 'live-row gap', 'data-testid': 'live-gap' },
          `${clock(new Date().toISOString())} reconnected: attempts made while disconnected are not listed here`));
        refreshChart();
      }
    },
  });
  state.feed.start();
}

function addLiveRow(row) {
  const list = $('live-list');
  list.prepend(row);
  while (list.children.length > LIVE_ROWS_KEPT) list.lastElementChild.remove();
  $('live-empty').hidden = true;
}

function addLiveAttempt(a) {
  const ok = a.outcome === 'SUCCEEDED';
  const result = a.responseStatus != null ? `HTTP ${a.responseStatus}` : (a.errorKind ?? 'no answer');
  addLiveRow(h('li', {
    class: `live-row ${ok ? 'ok' : 'fail'}`, 'data-testid': 'live-attempt',
    'data-outcome': a.outcome, 'data-event-type': a.eventType, 'data-delivery-id': a.deliveryId,
  },
  h('div', { class: 'line' },
    h('time', { datetime: a.startedAt, title: fullTime(a.startedAt) }, clock(a.startedAt)),
    h('span', { class: 'event-type' }, a.eventType),
    badge(a.outcome)),
  h('div', { class: 'line details' },
    h('span', { class: 'url', title: a.endpointUrl }, a.endpointUrl),
    h('span', { title: 'attempt number' }, `attempt ${a.attemptNumber}`),
    h('span', { title: 'response status' }, result),
    h('span', { title: 'duration' }, formatMs(a.durationMs))),
  !ok && a.errorMessage ? h('div', { class: 'line error-text' }, a.errorMessage) : null,
  ));
  // The chart and the webhooks' "last sent" follow at once, from the
  // attempt itself (redrawn at most once a frame); the server's figures
  // replace them later, throttled so that a burst costs a few queries.
  foldIntoChart(a);
  const webhook = state.webhooks.find((w) => w.id === a.webhookId);
  if (webhook && (!webhook.lastSentAt || webhook.lastSentAt < a.startedAt)) {
    webhook.lastSentAt = a.startedAt;
    onNextFrame('webhooks', renderWebhooks);
  } else if (!webhook) {
    // A webhook made elsewhere (another tab, the API): list it soon.
    throttle('webhooks-new', 1000, loadWebhooks);
  }
  throttle('chart', 10_000, refreshChart);
  throttle('webhooks', 10_000, loadWebhooks);
  if (a.webhookId === state.selected) throttle('deliveries', 1500, loadDeliveries);
}

/** Runs `fn` before the next paint; calls in between fold into it. */
function onNextFrame(key, fn) {
  const pending = `frame:${key}`;
  if (state.throttles.has(pending)) return;
  state.throttles.set(pending, requestAnimationFrame(() => {
    state.throttles.delete(pending);
    fn();
  }));
}

/** Counts a live attempt in its minute of the chart, as the server will. */
function foldIntoChart(a) {
  if (!lastBuckets) return;
  const bucketMs = 60_000;
  const at = Date.parse(a.startedAt);
  const start = Math.floor(at / bucketMs) * bucketMs;
  let bucket = lastBuckets.find((b) => Date.parse(b.start) === start);
  if (!bucket) {
    const newest = lastBuckets.length ? Date.parse(lastBuckets[lastBuckets.length - 1].start) : -Infinity;
    if (start < newest) return; // an old minute the chart no longer shows
    bucket = { start: new Date(start).toISOString(), succeeded: 0, failed: 0, meanDurationMs: 0, maxDurationMs: 0 };
    lastBuckets.push(bucket);
  }
  const n = bucket.succeeded + bucket.failed;
  bucket.meanDurationMs = (bucket.meanDurationMs * n + a.durationMs) / (n + 1);
  bucket.maxDurationMs = Math.max(bucket.maxDurationMs, a.durationMs);
  if (a.outcome === 'SUCCEEDED') bucket.succeeded += 1;
  else bucket.failed += 1;
  onNextFrame('chart', drawChart);
}

function laggedRow(dropped) {
  return h('li', { class: 'live-row lagged', 'data-testid': 'live-lagged' },
    h('strong', {}, `Missed ${dropped} attempt${dropped === 1 ? '' : 's'}`),
    ' — the feed fell behind; they are in the deliveries and the chart.');
}

// ---------------------------------------------------------------- chart

let lastBuckets = null;

async function refreshChart() {
  try {
    const data = await gql(Q.metrics);
    lastBuckets = data.attemptMetrics;
    drawChart();
    showError($('chart-error'), null);
  } catch (err) {
    showError($('chart-error'), err);
  }
}

function drawChart() {
  if (!lastBuckets || $('dashboard').hidden) return;
  const s = renderChart($('chart'), lastBuckets);
  $('chart-summary').textContent = s.total
    ? `${s.total} attempt${s.total === 1 ? '' : 's'} · ${(s.successRate * 100).toFixed(1)} % succeeded · ` +
      `mean ${formatMs(s.meanMs)} · slowest ${formatMs(s.maxMs)}`
    : 'No attempts in the last hour.';
}

// ---------------------------------------------------------------- wiring

function wire() {
  state.recovery = new RecoveryPanel({ gql, notice, isAdmin: () => state.viewer?.role === 'ADMIN' });
  $('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = $('token-input').value;
    if (!token.trim()) {
      showError($('sign-in-error'), { message: 'Paste a token first.' });
      return;
    }
    $('sign-in-button').disabled = true;
    try {
      await signIn(token);
    } catch (err) {
      state.token = null;
      showError($('sign-in-error'), err);
    } finally {
      $('sign-in-button').disabled = false;
    }
  });
  $('sign-out').addEventListener('click', () => signOut());
  $('new-webhook-toggle').addEventListener('click', () => toggleNewWebhook($('new-webhook-form').hidden));
  $('wh-cancel').addEventListener('click', () => toggleNewWebhook(false));
  $('new-webhook-form').addEventListener('submit', createWebhook);
  $('secret-copy').addEventListener('click', copySecret);
  $('secret-done').addEventListener('click', () => {
    $('secret-box').hidden = true;
    $('secret-value').textContent = '';
  });
  $('send-test').addEventListener('click', sendTestEvent);
  $('webhook-pause').addEventListener('click', pauseOrResume);
  $('webhook-delete').addEventListener('click', deleteSelectedWebhook);
  $('webhook-edit').addEventListener('click', () => toggleEditWebhook($('edit-webhook-form').hidden));
  $('ed-cancel').addEventListener('click', () => toggleEditWebhook(false));
  $('edit-webhook-form').addEventListener('submit', saveWebhook);
  $('deliveries-refresh').addEventListener('click', loadDeliveries);
  $('deliveries-close').addEventListener('click', () => {
    toggleEditWebhook(false);
    state.recovery.hide();
    state.selected = null;
    $('deliveries').hidden = true;
    renderWebhooks();
  });
  $('live-reconnect').addEventListener('click', () => state.feed?.reconnectNow());
  $('live-clear').addEventListener('click', () => {
    $('live-list').replaceChildren();
    $('live-empty').hidden = false;
  });
  new ResizeObserver(() => throttle('resize', 150, drawChart)).observe($('chart'));
}

/** A portal link carries its partner token in the fragment (`#token=…`),
 * which never reaches a server; it is taken once and removed from the address. */
function portalToken() {
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  if (token) history.replaceState(null, '', location.pathname + location.search);
  return token;
}

async function boot() {
  wire();
  const saved = portalToken() ?? sessionStorage.getItem(TOKEN_KEY);
  if (!saved) {
    signOut();
    return;
  }
  try {
    await signIn(saved);
  } catch (err) {
    signOut(`Sign in again: ${err.message}`);
  }
}

boot();
