"""pgBackRest for the private servers: continuous WAL archiving, base backups, and PITR.

`BackRestRepository` keeps a repository (and pgBackRest's config, logs and locks) in a
temp dir owned by the service user. Give its `archive_settings()` to the servers, call
`attach()` with their data dirs and ports, then `create_stanza()` and `backup()` once
they run. `restore_instance()` builds a new, private PostgreSQL from the repository,
recovered to a named restore point (`pg_create_restore_point`) or a time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.ports import HOST
from deploy.postgres import SUPERUSER, PostgresInstance
from deploy.procs import find_binary, give_to_service_user, private_dir, remove_dir, run, wait_until

PGBACKREST_BIN = "/usr/bin/pgbackrest"
STANZA = "catalog"
TIMEOUT = 300.0


class BackRestRepository:
    """A pgBackRest repository for one stanza: the servers of one cluster (its members)."""

    def __init__(self, name: str = "pgbackrest") -> None:
        self.binary = find_binary(PGBACKREST_BIN)
        self.dir = private_dir(name)
        self.config_path = self.dir / "pgbackrest.conf"
        for sub in ("repo", "log", "lock", "spool"):
            (self.dir / sub).mkdir(mode=0o750)
            give_to_service_user(self.dir / sub)
        self.members: list[tuple[Path, int, Path]] = []

    def archive_settings(self) -> dict[str, str]:
        """postgresql.conf settings that archive every WAL segment into this repository."""
        return {
            "archive_mode": "on",
            # Run in the server's data dir: "$PWD" names this server's own data dir (several
            # servers of one stanza on one machine, each pushing its own WAL).
            "archive_command": f"{self.binary} {self._config_option()} --stanza={STANZA} "
            '--pg1-path="$PWD" archive-push %p',
            # A quiet server still closes a segment (and so archives it) this often.
            "archive_timeout": "60s",
        }

    def _config_option(self) -> str:
        return f"--config={self.config_path}"

    def attach(self, members: Sequence[tuple[Path, int, Path]]) -> None:
        """The servers (data dir, port, socket dir) this stanza backs up; writes the config."""
        self.members = list(members)
        lines = [
            "[global]",
            f"repo1-path={self.dir / 'repo'}",
            "repo1-retention-full=2",
            f"log-path={self.dir / 'log'}",
            f"lock-path={self.dir / 'lock'}",
            f"spool-path={self.dir / 'spool'}",
            "log-level-console=warn",
            "log-level-file=info",
            "start-fast=y",  # a backup starts with an immediate checkpoint
            "compress-type=lz4",
            "process-max=2",
            "",
            f"[{STANZA}]",
        ]
        for number, (data_dir, port, socket_dir) in enumerate(self.members, 1):
            lines += [
                f"pg{number}-path={data_dir}",
                f"pg{number}-port={port}",
                f"pg{number}-socket-path={socket_dir}",
                f"pg{number}-user={SUPERUSER}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")
        give_to_service_user(self.config_path)

    def command(self, *args: str, timeout: float = TIMEOUT) -> str:
        """Run `pgbackrest ARGS` for this stanza, as the service user; its output."""
        return run(
            [self.binary, self._config_option(), f"--stanza={STANZA}", *args],
            cwd=self.dir,
            timeout=timeout,
        )

    def create_stanza(self) -> None:
        """Initialize the stanza, then check that WAL archiving reaches the repository."""
        self.command("stanza-create")
        self.command("check")

    def backup(self, kind: str = "full") -> None:
        """A base backup (full, diff or incr) from the current primary."""
        self.command("backup", f"--type={kind}")

    def info(self) -> str:
        return self.command("info")

    def restore_instance(
        self,
        name: str,
        *,
        target_name: str | None = None,
        target_time: str | None = None,
        start_timeout: float = TIMEOUT,
    ) -> tuple[PostgresInstance, float]:
        """A new private server recovered to the restore point or time; it and the seconds
        from the start of `pgbackrest restore` until it accepts writes (the recovery time).
        """
        if (target_name is None) == (target_time is None):
            raise ValueError("give exactly one of target_name and target_time")
        target = (
            ["--type=name", f"--target={target_name}"]
            if target_name is not None
            else ["--type=time", f"--target={target_time}"]
        )
        # No archiving on the copy: its new timeline must not mix with the original's.
        instance = PostgresInstance(name, settings={"archive_mode": "off"})
        started = time.monotonic()
        self.command(
            "restore",
            f"--pg1-path={instance.data_dir}",
            "--target-action=promote",
            *target,
        )
        try:
            instance.start(timeout=start_timeout)
            wait_until(
                lambda: not instance.in_recovery(),
                timeout=start_timeout,
                what=f"{name} recovering to its target and promoting",
            )
        except Exception:
            instance.close()
            raise
        return instance, time.monotonic() - started

    def close(self) -> None:
        remove_dir(self.dir)


__all__ = ["HOST", "BackRestRepository", "with_archiving"]


def with_archiving(dcs: Mapping[str, Any], repository: BackRestRepository) -> dict[str, Any]:
    """Patroni DCS settings that make every node archive into `repository` when it leads."""
    postgresql = dict(dcs.get("postgresql", {}))
    postgresql["parameters"] = dict(postgresql.get("parameters", {})) | (
        repository.archive_settings()
    )
    return dict(dcs) | {"postgresql": postgresql}
