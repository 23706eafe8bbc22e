"""Catalog: users, their items and tags over HTTP."""
