// A GraphQL subscription over a native WebSocket, speaking the
// `graphql-transport-ws` protocol, reconnecting with backoff when the socket
// closes. It knows nothing about the page: app.js passes callbacks.
//
//   client -> connection_init {Authorization}     server -> connection_ack
//   client -> subscribe {id, query}               server -> next* (error | complete)
//   either -> ping                                other   -> pong

const PROTOCOL = 'graphql-transport-ws';
const ACK_TIMEOUT_MS = 10_000;
const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

/** The WebSocket URL of the subscription endpoint on this page's server. */
export function subscriptionUrl(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/graphql/ws`;
}

export class LiveSubscription {
  /**
   * @param {object} options
   * @param {string} options.token   the API token (sent in `connection_init`)
   * @param {string} options.query   one subscription document
   * @param {(data: object) => void} options.onData            each `next` payload's data
   * @param {(error: object) => void} options.onError          each GraphQL error (e.g. LAGGED)
   * @param {(state: string, detail?: object) => void} options.onState
   *   `connecting`, `live`, `reconnecting` ({inMs}), `refused` ({reason}) or `stopped`
   */
  constructor({ token, query, onData, onError, onState, url = subscriptionUrl() }) {
    Object.assign(this, { token, query, onData, onError, onState, url });
    this.socket = null;
    this.failures = 0; // consecutive connections that ended before or without an ack
    this.everAcked = false;
    this.stopped = false;
    this.timer = null;
    this.nextId = 1;
    this.skipWait = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, 'signed out');
    this.socket = null;
    this.onState('stopped');
  }

  /** Reconnects at once (the "Reconnect now" button). */
  reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.failures = 0;
    if (this.socket) {
      this.skipWait = true;
      this.socket.close(1000, 'reconnecting');
    } else {
      this.connect();
    }
  }

  connect() {
    clearTimeout(this.timer);
    this.onState('connecting', { reconnect: this.everAcked });
    const socket = new WebSocket(this.url, PROTOCOL);
    this.socket = socket;
    let acked = false;
    let refusal = null;

    const send = (message) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    };

    socket.addEventListener('open', () => {
      send({ type: 'connection_init', payload: { Authorization: `Bearer ${this.token}` } });
      this.timer = setTimeout(() => {
        if (!acked) socket.close(4408, 'no connection_ack');
      }, ACK_TIMEOUT_MS);
    });

    socket.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not ours to understand
      }
      switch (message.type) {
        case 'connection_ack': {
          acked = true;
          clearTimeout(this.timer);
          const reconnected = this.everAcked;
          this.everAcked = true;
          this.failures = 0;
          send({ id: String(this.nextId++), type: 'subscribe', payload: { query: this.query } });
          this.onState('live', { reconnected });
          break;
        }
        case 'next': {
          const payload = message.payload ?? {};
          for (const error of payload.errors ?? []) {
            if (error.extensions?.code === 'UNAUTHENTICATED') refusal = error.message;
            this.onError(error);
          }
          if (payload.data) this.onData(payload.data);
          break;
        }
        case 'error':
          for (const error of message.payload ?? []) this.onError(error);
          break;
        case 'complete':
          // The server ended the stream: the token expired, or it is shutting down.
          socket.close(1000, 'stream complete');
          break;
        case 'ping':
          send({ type: 'pong', payload: message.payload });
          break;
        default:
          break;
      }
    });

    socket.addEventListener('close', (event) => {
      clearTimeout(this.timer);
      if (this.socket === socket) this.socket = null;
      if (this.stopped) return;
      if (event.code === 4403 || event.code === 4401 || refusal) {
        // The token was refused or expired: reconnecting would not help.
        this.onState('refused', { reason: refusal ?? event.reason ?? 'token refused' });
        return;
      }
      if (this.skipWait) {
        this.skipWait = false;
        this.connect();
        return;
      }
      if (!acked) this.failures += 1;
      const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(this.failures, 5));
      const inMs = Math.round(base * (0.8 + Math.random() * 0.4));
      this.onState('reconnecting', { inMs, code: event.code });
      this.timer = setTimeout(() => this.connect(), inMs);
    });
  }
}
