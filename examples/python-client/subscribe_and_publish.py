"""hookline from Python with gql: subscribe to deliveryAttempts, publish, watch.

Starts a webhook receiver on 127.0.0.1, creates a webhook to it, opens a
`deliveryAttempts` subscription over the WebSocket (graphql-transport-ws, the
token in `connection_init`), publishes a `conversion.status_changed` event
over HTTP, and prints the attempt the subscription reports. Exit code 0 once
the attempt arrived and succeeded.

    HOOKLINE_URL=http://127.0.0.1:8080 HOOKLINE_TOKEN=<admin token> python subscribe_and_publish.py

The server must allow private endpoints (`hookline serve --allow-private-endpoints`):
the receiver is on 127.0.0.1.
"""

import asyncio
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gql import Client, gql
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.websockets import WebsocketsTransport

CREATE_WEBHOOK = gql("""
mutation CreateWebhook($input: CreateWebhookInput!) {
  createWebhook(input: $input) { webhook { id } }
}
""")

PUBLISH = gql("""
mutation Publish($input: PublishEventInput!) {
  publishEvent(input: $input) { event { id } deliveryCount }
}
""")

ATTEMPTS = gql("""
subscription Attempts($webhookId: ID!) {
  deliveryAttempts(filter: { webhookId: $webhookId }) {
    eventId eventType attemptNumber outcome responseStatus durationMs endpointUrl
  }
}
""")


class Receiver(BaseHTTPRequestHandler):
    """Answers every delivery 200."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


async def main(url: str, token: str) -> int:
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    receiver_url = f"http://127.0.0.1:{receiver.server_port}/hooks"

    headers = {"Authorization": f"Bearer {token}"}
    http = Client(transport=AIOHTTPTransport(url=f"{url}/graphql", headers=headers))
    ws_url = url.replace("http", "ws", 1) + "/graphql/ws"
    ws = Client(transport=WebsocketsTransport(url=ws_url, init_payload=headers))

    async with http as api:
        created = await api.execute(CREATE_WEBHOOK, variable_values={"input": {
            "name": "python example",
            "eventTypes": ["conversion.*"],
            "endpoints": [{"url": receiver_url}],
        }})
        webhook_id = created["createWebhook"]["webhook"]["id"]
        print(f"webhook {webhook_id} -> {receiver_url}")

        async def publish_soon():
            # Give the subscription a moment to start, then publish.
            await asyncio.sleep(0.5)
            published = await api.execute(PUBLISH, variable_values={"input": {
                "type": "conversion.status_changed",
                "data": {"conversionId": "cnv_py", "status": "approved"},
            }})
            event = published["publishEvent"]
            print(f"published {event['event']['id']} to {event['deliveryCount']} endpoint(s)")
            return event["event"]["id"]

        async with ws as live:
            publishing = asyncio.create_task(publish_soon())
            attempts = live.subscribe(ATTEMPTS, variable_values={"webhookId": webhook_id})
            async with asyncio.timeout(30):
                async for item in attempts:
                    attempt = item["deliveryAttempts"]
                    break
            await attempts.aclose()
            event_id = await publishing
            print(
                f"attempt {attempt['attemptNumber']} of {attempt['eventId']} ({attempt['eventType']}) "
                f"to {attempt['endpointUrl']}: {attempt['outcome']} {attempt['responseStatus']} "
                f"in {attempt['durationMs']} ms"
            )
    receiver.shutdown()
    return 0 if attempt["outcome"] == "SUCCEEDED" and attempt["eventId"] == event_id else 1


if __name__ == "__main__":
    base = os.environ.get("HOOKLINE_URL", "http://127.0.0.1:8080").rstrip("/")
    token = os.environ.get("HOOKLINE_TOKEN")
    if not token:
        sys.exit("set HOOKLINE_TOKEN to an admin token (hookline token --tenant default --role admin)")
    sys.exit(asyncio.run(main(base, token)))
