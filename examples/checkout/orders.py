"""The `orders` service of the checkout example: Python 3's standard library only.

POST /orders {"user": "u-1", "sku": "sku-1", "quantity": 1} looks the user up (USERS_URL),
checks stock (INVENTORY_URL), authorizes the payment (PAYMENTS_URL) and answers 201 with
the order. GET /healthz answers 200 once it listens. Every address comes from the
environment, as envd hands it over.
"""

import itertools
import json
import os
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PRICES = {"sku-1": 42.5, "sku-2": 19.99}
ORDER_IDS = itertools.count(1001)


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Orders(BaseHTTPRequestHandler):
    def answer(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path == "/healthz":
            return self.answer(200, {"status": "ok"})
        self.answer(404, {"error": "no such endpoint"})

    def do_POST(self):
        if self.path != "/orders":
            return self.answer(404, {"error": "no such endpoint"})
        length = int(self.headers.get("Content-Length", "0"))
        order = json.loads(self.rfile.read(length) or b"{}")
        status, user = call(os.environ["USERS_URL"], "GET", f"/users/{order['user']}")
        if status != 200:
            return self.answer(422, {"error": f"unknown user {order['user']}"})
        status, stock = call(os.environ["INVENTORY_URL"], "GET", f"/stock/{order['sku']}")
        if status != 200 or stock["available"] < order.get("quantity", 1):
            return self.answer(409, {"error": f"{order['sku']} is out of stock"})
        order_id = f"ord-{next(ORDER_IDS)}"
        amount = round(PRICES.get(order["sku"], 10.0) * order.get("quantity", 1), 2)
        status, payment = call(
            os.environ["PAYMENTS_URL"],
            "POST",
            "/payments",
            {"orderId": order_id, "amount": amount, "currency": "EUR"},
        )
        if status != 201:
            return self.answer(502, {"error": "payment failed", "payments": payment})
        self.answer(
            201,
            {
                "id": order_id,
                "user": user["name"],
                "sku": order["sku"],
                "amount": amount,
                "payment": payment["status"],
            },
        )

    def log_message(self, format, *args):
        sys.stderr.write("orders: " + format % args + "\n")


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Orders)
    print(f"orders listening on port {server.server_address[1]}", flush=True)
    server.serve_forever()
