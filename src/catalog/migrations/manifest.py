"""Released migrations: the sha256 of each, recorded in `checksums.txt` beside `versions/`.

A migration is *released* once its checksum is recorded: from then on it may have run on
some database, so its file never changes again (a fix is a new migration). The manifest is
in `sha256sum` format, so `cd src/catalog/migrations/versions && sha256sum -c
../checksums.txt` checks it without Python. `catalog db record` adds the migrations not yet
recorded; it never rewrites a recorded line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from catalog.migrations.runner import MIGRATIONS_DIR

VERSIONS_DIR = MIGRATIONS_DIR / "versions"
MANIFEST = MIGRATIONS_DIR / "checksums.txt"
HEADER = (
    "# Released migrations (sha256sum format). Never edit a listed file: write a new\n"
    "# migration instead. `catalog db record` appends new ones; see README, Shipping a\n"
    "# schema change.\n"
)


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def migration_files(versions: Path | None = None) -> list[Path]:
    folder = versions or VERSIONS_DIR
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def recorded(manifest: Path | None = None) -> dict[str, str]:
    """File name -> recorded sha256."""
    manifest = manifest or MANIFEST
    if not manifest.is_file():
        return {}
    entries: dict[str, str] = {}
    for line in manifest.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        digest, name = line.split(maxsplit=1)
        entries[name.lstrip("*")] = digest
    return entries


@dataclass(frozen=True)
class Verdict:
    changed: list[str]  # released and edited since: the one thing never allowed
    missing: list[str]  # released and deleted (or renamed)
    unrecorded: list[str]  # not released yet

    def problems(self) -> list[str]:
        """One sentence per problem, each saying what to do."""
        lines = [
            f"{name} is a released migration (its checksum is in {MANIFEST.name}) and has "
            "changed: never edit a released migration, restore it (git checkout) and write "
            "a new migration with `catalog db revision -m MESSAGE` instead"
            for name in self.changed
        ]
        lines += [
            f"{name} is a released migration (its checksum is in {MANIFEST.name}) and is "
            "gone: restore it; databases may be at its revision"
            for name in self.missing
        ]
        lines += [
            f"{name} is not recorded in {MANIFEST.name}: once it is final, run "
            "`catalog db record` and commit the manifest with it"
            for name in self.unrecorded
        ]
        return lines


def verify(versions: Path | None = None, manifest: Path | None = None) -> Verdict:
    released = recorded(manifest)
    present = {path.name: checksum(path) for path in migration_files(versions)}
    return Verdict(
        changed=sorted(n for n, d in released.items() if n in present and present[n] != d),
        missing=sorted(n for n in released if n not in present),
        unrecorded=sorted(n for n in present if n not in released),
    )


def record(versions: Path | None = None, manifest: Path | None = None) -> list[str]:
    """Append the unrecorded migrations' checksums; return their names.

    Refuses (ValueError) while a released migration has changed or gone: recording must
    never bless an edit.
    """
    versions, manifest = versions or VERSIONS_DIR, manifest or MANIFEST
    verdict = verify(versions, manifest)
    if verdict.changed or verdict.missing:
        raise ValueError("; ".join(verdict.problems()[: len(verdict.changed + verdict.missing)]))
    if not verdict.unrecorded:
        return []
    text = manifest.read_text() if manifest.is_file() else HEADER
    if not text.endswith("\n"):
        text += "\n"
    text += "".join(f"{checksum(versions / n)}  {n}\n" for n in verdict.unrecorded)
    manifest.write_text(text)
    return verdict.unrecorded
