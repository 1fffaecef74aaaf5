"""The HTTP admin interface: commands, state as JSON, Prometheus metrics and a status page.

It runs inside the proxy's own event loop (uvicorn serving a Starlette app),
so every handler must stay asynchronous and cheap: a slow admin request must
never delay forwarding. `redis_proxy.admin.server.start_admin` is the entry point.
"""
