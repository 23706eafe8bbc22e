"""Domain errors raised by the services; the API maps each to one HTTP status."""

from __future__ import annotations


class CatalogError(Exception):
    """Base class: `detail` is safe to show to the client."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(CatalogError):
    status_code = 404


class ConflictError(CatalogError):
    status_code = 409


class AuthenticationError(CatalogError):
    """The caller is not (or no longer) authenticated."""

    status_code = 401


class PermissionDeniedError(CatalogError):
    """The caller is known but may not do this."""

    status_code = 403

    def __init__(self, detail: str = "Not enough permissions") -> None:
        super().__init__(detail)


class PreconditionFailedError(CatalogError):
    """The resource changed since the version the client's condition names (If-Match)."""

    status_code = 412

    def __init__(self, detail: str = "The resource was changed by someone else") -> None:
        super().__init__(detail)


class PreconditionRequiredError(CatalogError):
    """The server requires the write to be conditional (If-Match) and it was not."""

    status_code = 428

    def __init__(self, detail: str = "This write requires an If-Match header") -> None:
        super().__init__(detail)
