"""The middleware, one module each; `stack.py` is the stack: one list, outermost first.

Every request goes through them top to bottom, and its response back up:

1. `security_headers`: the security headers on every response, the last-resort 500 too.
2. `request_id`: X-Request-ID echoed or minted, on the response and on every log line.
3. `server_errors`: the last-resort 500 for an exception nothing inside handled.
4. `observed`: request metrics and the access line (METRICS / ACCESS_LOG; else absent),
   outside everything that answers, so its 503s, 413s... are counted and logged.
5. CORS (Starlette's, with CORS_ORIGINS).
6. `hosts`: ALLOWED_HOSTS (when set).
7. `limits`: body, query string and parameter count, before routing and any parsing.
8. `methods`: OPTIONS with the path's `Allow` list (the 405 handler is its neighbour),
   then HEAD: the GET route's status and headers, without the body.
9. `consistency` (`catalog.api.consistency`, with read replicas): X-Catalog-LSN.
10. `deadline`: the whole-request deadline, and cancellation when the client leaves.

Then FastAPI's own (exception handlers, routing, dependencies, the endpoint).
"""
