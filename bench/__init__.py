"""Load benchmark of the Catalog service against a Starlette + asyncpg baseline (`make bench`)."""
