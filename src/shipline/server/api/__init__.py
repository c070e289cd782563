"""The API's routers, one module per resource; `create_app` mounts them."""

# Every API route is under this path (the probes and /metrics are not).
API_PREFIX = "/api/v1"
