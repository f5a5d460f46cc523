// hookline's own operational events (`hookline.endpoint.failing`,
// `.disabled`, `.recovered`, `hookline.delivery.exhausted`): the latest
// ones, then each new one as it is published, over its own subscription.

import { LiveSubscription } from './live.js';
import { $, h, clock, fullTime } from './dom.js';

const KEPT = 30;
const TYPES = ['endpoint.failing', 'endpoint.disabled', 'endpoint.recovered', 'delivery.exhausted'];
const FIELDS = 'id type createdAt data';
const LATEST = `{ ${TYPES.map((t) => `${t.replace('.', '_')}: events(first: 10, filter: { type: "hookline.${t}" }) {
    edges { node { ${FIELDS} } } }`).join('\n')} }`;
const LIVE = `subscription Operational { eventsPublished(filter: { type: "hookline.*" }) { ${FIELDS} } }`;

/** What an operational event says, in a line. */
function describe(event) {
  const d = event.data ?? {};
  switch (event.type) {
    case 'hookline.endpoint.failing':
      return `${d.url} is failing: ${d.consecutiveFailures} failed attempts in a row`;
    case 'hookline.endpoint.disabled':
      return `${d.url} was disabled: ${d.reason}`;
    case 'hookline.endpoint.recovered':
      return `${d.url} recovered after ${d.failedAttempts} failed attempts`;
    case 'hookline.delivery.exhausted':
      return `${d.eventType} to ${d.url} failed its last attempt (${d.lastResponseStatus ?? d.errorKind ?? 'no answer'})`;
    default:
      return event.type;
  }
}

export class OpsFeed {
  /**
   * @param {object} options
   * @param {string} options.token
   * @param {(query: string, variables?: object) => Promise<object>} options.gql
   */
  constructor({ token, gql }) {
    Object.assign(this, { token, gql });
    this.seen = new Set();
    this.feed = null;
  }

  async start() {
    this.feed = new LiveSubscription({
      token: this.token,
      query: LIVE,
      onData: (data) => this.add(data.eventsPublished),
      onError: () => {},
      onState: (name) => { $('ops-list').dataset.state = name; },
    });
    this.feed.start();
    try {
      const data = await this.gql(LATEST);
      const events = Object.values(data).flatMap((c) => c.edges.map((e) => e.node));
      events.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
      events.forEach((event) => this.add(event));
    } catch {
      // The live feed still shows new ones.
    }
  }

  stop() {
    this.feed?.stop();
    this.feed = null;
    this.seen.clear();
    $('ops-list').replaceChildren();
    $('ops-empty').hidden = false;
  }

  add(event) {
    if (this.seen.has(event.id)) return;
    this.seen.add(event.id);
    const list = $('ops-list');
    const kind = event.type.split('.').pop();
    list.prepend(h('li', { class: `live-row ops-row ${kind}`, 'data-testid': 'ops-event', 'data-type': event.type },
      h('div', { class: 'line' },
        h('time', { datetime: event.createdAt, title: fullTime(event.createdAt) }, clock(event.createdAt)),
        h('span', { class: 'event-type' }, event.type)),
      h('div', { class: 'line details' }, describe(event))));
    while (list.children.length > KEPT) list.lastElementChild.remove();
    $('ops-empty').hidden = true;
  }
}
