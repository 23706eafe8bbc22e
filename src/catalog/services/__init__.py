"""Data access and business rules, one module per resource. No HTTP in here.

Services take a session, flush but never commit (the caller's unit of work does),
and raise `catalog.errors` exceptions that the API maps to status codes.
"""
