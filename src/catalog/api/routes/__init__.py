"""Route modules, one per resource. Thin: parse, call a service, shape the response."""
