"""Places one order against the service under test (ENVD_SERVICE_URL) and prints it.

Run through envd: `envd run -f examples/checkout/envd.toml -- python3 examples/checkout/place_order.py`.
Exits 1 unless the order is accepted.
"""

import json
import os
import sys
import urllib.request

body = json.dumps({"user": sys.argv[1] if len(sys.argv) > 1 else "u-7", "sku": "sku-1", "quantity": 1})
request = urllib.request.Request(
    os.environ["ENVD_SERVICE_URL"] + "/orders",
    data=body.encode(),
    method="POST",
    headers={"Content-Type": "application/json"},
)
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(response.status, response.read().decode())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
    sys.exit(1)
