"""The list shape matrix (issue 14): every kind of item-list request, timed one at a time.

A *shape* is one kind of list request: which filters are present, which sort, a count or
not, offset or cursor pages, on which endpoint. `python -m bench.shapes` (or `make bench
BENCH_ARGS=--shapes`) serves the service on the benchmark's dataset (PostgreSQL, or an
SQLite copy of it), sends every shape of the matrix one request at a time, N times in
round-robin order, prints each shape's median and p90 and the worst shape, and checks every
answer against plain SQL computed independently of the service (`oracle`). It exits
non-zero when any answer is wrong.

Layout: `params` chooses the request values from the data, `matrix` lists the shapes,
`oracle` computes the expected answers in SQL, `check` compares an answer with them (and
knows the documented refusals), `timing` sends and times, `sqlite_copy` builds the SQLite
dataset, `cli` is the command line.
"""
