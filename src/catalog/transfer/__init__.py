"""Data in and out: the whole catalog as one file (`catalog export`, `catalog import`).

One file holds every user, tag and item, in JSON Lines or CSV (`formats`), with values
written exactly (`records`). An export streams one consistent snapshot (`exporter`); an
import validates each record with the API's rules and merges it by key, in one transaction
(`importer`, `merge`). Export, import into an empty database and export again gives the
same bytes, on SQLite and PostgreSQL alike, and importing a file twice changes nothing.

The file holds the users' password hashes (so a restore keeps logins working) and their
emails: treat it as a secret. `export_catalog(..., passwords=False)` leaves the hashes out.
"""

from catalog.transfer.exporter import ExportReport, export_catalog
from catalog.transfer.formats import Format
from catalog.transfer.importer import ImportReport, import_catalog
from catalog.transfer.merge import Written
from catalog.transfer.records import LineError

__all__ = [
    "ExportReport",
    "Format",
    "ImportReport",
    "LineError",
    "Written",
    "export_catalog",
    "import_catalog",
]
