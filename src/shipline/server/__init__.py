"""The HTTP server: `create_app(context)` — a thin FastAPI layer over the services.

Routers validate input, call one service, map the result; no business rules here.
"""
