// A small typed client for hookline: the operations of operations.graphql,
// sent with `fetch`, typed with what `npm run codegen` generated from
// hookline's schema. No runtime dependencies.
//
//   npm run demo   # HOOKLINE_URL=http://127.0.0.1:8080 HOOKLINE_TOKEN=<admin token>

import { readFileSync } from 'node:fs';

import type { Operations, Subscriptions } from './generated/graphql.js';

/** The operations document: the same text codegen validated. */
const DOCUMENT = readFileSync(new URL('../src/operations.graphql', import.meta.url), 'utf8');

/** A GraphQL error: hookline puts a stable code in `extensions.code`. */
export class HooklineError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(`${code}: ${message}`);
  }
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; [key: string]: unknown } }[];
}

export class HooklineClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  /** Runs one named operation; the name picks both the result and the variables type. */
  async request<N extends keyof Operations>(operationName: N, variables: Operations[N][1]): Promise<Operations[N][0]> {
    const response = await fetch(`${this.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
      body: JSON.stringify({ query: DOCUMENT, operationName, variables }),
    });
    const body = (await response.json()) as GraphQLResponse<Operations[N][0]>;
    const first = body.errors?.[0];
    if (first) throw new HooklineError(first.message, first.extensions?.code ?? 'ERROR');
    if (!body.data) throw new HooklineError(`no data (HTTP ${response.status})`, 'ERROR');
    return body.data;
  }

  /**
   * A subscription of operations.graphql over `graphql-transport-ws`
   * (browsers and Node >= 22 have a global WebSocket), typed by its name like
   * `request`. Returns a function that closes the socket.
   */
  subscribe<N extends keyof Subscriptions>(
    operationName: N,
    variables: Subscriptions[N][1],
    onData: (data: Subscriptions[N][0]) => void,
  ): () => void {
    const url = `${this.baseUrl.replace(/^http/, 'ws')}/graphql/ws`;
    const socket = new WebSocket(url, 'graphql-transport-ws');
    socket.onopen = () =>
      socket.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${this.token}` } }));
    socket.onmessage = (message) => {
      const msg = JSON.parse(String(message.data)) as {
        type: string;
        payload?: GraphQLResponse<Subscriptions[N][0]>;
      };
      if (msg.type === 'connection_ack') {
        socket.send(JSON.stringify({
          id: '1',
          type: 'subscribe',
          payload: { query: DOCUMENT, operationName, variables },
        }));
      } else if (msg.type === 'next' && msg.payload?.data) {
        onData(msg.payload.data);
      } else if (msg.type === 'ping') {
        socket.send(JSON.stringify({ type: 'pong' }));
      }
    };
    return () => socket.close(1000);
  }
}

/** `npm run demo`: lists webhooks, publishes an event and follows its first delivery. */
async function demo(): Promise<void> {
  const url = process.env.HOOKLINE_URL ?? 'http://127.0.0.1:8080';
  const token = process.env.HOOKLINE_TOKEN;
  if (!token) throw new Error('set HOOKLINE_TOKEN to an admin token (hookline token --tenant ... --role admin)');
  const client = new HooklineClient(url, token);

  const { webhooks } = await client.request('ListWebhooks', { first: 5 });
  for (const { node } of webhooks.edges) {
    console.log(`webhook ${node.id} ${node.name} [${node.eventTypes.join(', ')}] ${node.status}`);
  }

  const { publishEvent } = await client.request('PublishEvent', {
    input: { type: 'conversion.created', data: { conversionId: 'cnv_demo' } },
  });
  console.log(`published ${publishEvent.event.id}: ${publishEvent.deliveryCount} deliveries`);

  await new Promise((resolve) => setTimeout(resolve, 1500));
  const { event } = await client.request('EventDeliveries', { eventId: publishEvent.event.id });
  const first = event.deliveries.edges[0]?.node;
  if (!first) return;
  const { delivery } = await client.request('DeliveryWithAttempts', { id: first.id });
  console.log(`delivery ${delivery.id} to ${delivery.endpoint?.url ?? '(deleted endpoint)'}: ${delivery.status}`);
  for (const a of delivery.attempts) {
    const result = a.responseStatus ?? a.errorKind ?? 'no answer';
    console.log(`  attempt ${a.attemptNumber}: ${a.outcome} ${result} in ${a.durationMs} ms`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  demo().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
