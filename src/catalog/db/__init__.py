"""Database layer: URLs, engines, sessions and the declarative base."""
