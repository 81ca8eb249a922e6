"""A fake staging `users` service for the checkout example, so it runs with no network.

GET /users/ID answers the user; IDs of the form u-N exist, others get 404.
"""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Users(BaseHTTPRequestHandler):
    def do_GET(self):
        user = self.path.removeprefix("/users/")
        if self.path.startswith("/users/u-") and user[2:].isdigit():
            status, body = 200, {"id": user, "name": f"User {user[2:]}", "tier": "standard"}
        else:
            status, body = 404, {"error": f"no user {user}"}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Users).serve_forever()
