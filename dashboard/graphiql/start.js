// Starts GraphiQL against this server: queries and mutations are POSTed to
// /graphql, subscriptions run over /graphql/ws (graphql-transport-ws). The
// Authorization header from the headers editor goes with both: as a request
// header over HTTP and in `connection_init` over the WebSocket.
//
// Open /graphql#token=<token from `hookline token`> to start with the header
// filled in; the fragment never reaches the server and is removed from the
// address bar. ?query=, ?variables= and ?operationName= preset the editors.
(function () {
  'use strict';

  const TOKEN_PLACEHOLDER = '<token from `hookline token`>';

  const DEFAULT_QUERY = `# Who am I? Run with the ▶ button (Ctrl-Enter).
query Viewer {
  viewer { login tenant role }
}

# Every delivery attempt of your tenant, live. Choose it from the ▶ menu,
# then publish an event (from another tab, or with curl).
subscription Attempts {
  deliveryAttempts {
    eventType attemptNumber outcome responseStatus errorKind durationMs
    endpointUrl nextAttemptAt
  }
}
`;

  /** The token from `#token=...`, then the fragment is wiped. */
  function tokenFromFragment() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    const token = params.get('token');
    if (token) {
      history.replaceState(null, '', window.location.pathname + window.location.search);
    }
    return token;
  }

  function wsUrl() {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${window.location.host}/graphql/ws`;
  }

  /** Whether the operation that will run is a subscription. */
  function isSubscription(query, operationName) {
    const text = query.replace(/#[^\n]*/g, '');
    if (operationName) {
      return new RegExp(`\\bsubscription\\s+${operationName}\\b`).test(text);
    }
    return /^\s*subscription\b/.test(text.replace(/^\s+/, ''));
  }

  // One WebSocket client per Authorization value: changing the header in the
  // editor opens a new connection with the new credentials.
  const clients = new Map();
  function wsClient(authorization) {
    const key = authorization ?? '';
    if (!clients.has(key)) {
      for (const client of clients.values()) client.dispose();
      clients.clear();
      clients.set(key, graphqlWs.createClient({
        url: wsUrl(),
        connectionParams: authorization ? { Authorization: authorization } : {},
        lazy: true,
        retryAttempts: 0,
      }));
    }
    return clients.get(key);
  }

  function headerValue(headers, name) {
    const found = Object.keys(headers ?? {}).find((k) => k.toLowerCase() === name);
    return found === undefined ? undefined : String(headers[found]);
  }

  function fetcher(params, options) {
    const headers = options?.headers ?? {};
    const authorization = headerValue(headers, 'authorization');
    if (isSubscription(params.query, params.operationName)) {
      // An observable: GraphiQL shows each result as it arrives.
      return {
        subscribe(observer) {
          const sink = {
            next: (value) => observer.next(value),
            error: (error) => observer.error(
              error instanceof CloseEvent
                ? { errors: [{ message: `socket closed: ${error.code} ${error.reason}` }] }
                : error,
            ),
            complete: () => observer.complete(),
          };
          const dispose = wsClient(authorization).subscribe(params, sink);
          return { unsubscribe: dispose };
        },
      };
    }
    return fetch('/graphql', {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(params),
    }).then((response) => response.json());
  }

  const search = new URLSearchParams(window.location.search);
  const token = tokenFromFragment();
  const headers = JSON.stringify(
    { Authorization: `Bearer ${token ?? TOKEN_PLACEHOLDER}` },
    null,
    2,
  );

  const root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: DEFAULT_QUERY,
      query: search.get('query') ?? undefined,
      variables: search.get('variables') ?? undefined,
      operationName: search.get('operationName') ?? undefined,
      // A token given in the address wins over one GraphiQL stored earlier.
      headers: token ? headers : undefined,
      defaultHeaders: headers,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
      showPersistHeadersSettings: true,
      isHeadersEditorEnabled: true,
    }),
  );
})();
