"""Data access and business rules, one module per resource. No HTTP in here.

Services take the caller's `UnitOfWork` (one per request or command), read and write
through it, never commit (leaving the unit of work does), and raise `catalog.errors`
exceptions that the API maps to status codes and the CLI to one-line errors.
"""
