"""Private PostgreSQL infrastructure started by the project's own code, on this machine.

PostgreSQL instances and streaming replicas (`postgres`), PgBouncer (`pgbouncer`), and a
Patroni cluster behind HAProxy with etcd as its store (`patroni`, `etcd`, `haproxy`), each
on free loopback ports in a temp dir, for the real-infrastructure tests and for
`python -m deploy.cluster`. See deploy/README.md.
"""
