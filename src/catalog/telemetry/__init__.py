"""What the service tells about itself: Prometheus metrics and OpenTelemetry traces.

`metrics` defines the metric families and what feeds them, `exposition` how they are
collected and served (one process or several workers), `tracing` the spans. The ASGI
side is `catalog.api.middleware.observed` (request metrics, the access line) and
`catalog.api.observe` (/metrics, the lifespan).
"""
