"""/docs, /redoc and the admin's sign-in page in Chromium with the network cut off.

Every request that does not go to the service itself is aborted (as offline, behind a
strict proxy, or air-gapped). The pages must still render: Swagger UI with every operation
of the OpenAPI document, ReDoc likewise, the admin's form; with nothing asked of another
host and no console error (a blocked asset, or a script or style refused by the content
security policy). The browser set-up is the admin's (tests/admin/test_admin_browser.py).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import Route

from tests.admin.test_admin_browser import Visit, browser, chromium, served, visit

__all__ = ["browser", "chromium", "served", "visit"]  # fixtures, used by name


@pytest.fixture
async def offline(visit: Visit) -> Visit:
    """`visit`, with every request to another host refused as if there were no network."""

    async def only_the_service(route: Route) -> None:
        if route.request.url.startswith(visit.base_url + "/"):
            await route.continue_()
        else:
            await route.abort("internetdisconnected")

    await visit.context.route("**/*", only_the_service)
    return visit


def _operations(base_url: str) -> list[dict[str, Any]]:
    document = httpx.get(f"{base_url}/openapi.json").json()
    methods = {"get", "post", "put", "patch", "delete"}
    return [
        operation
        for operations in document["paths"].values()
        for method, operation in operations.items()
        if method in methods
    ]


def _nothing_from_elsewhere(visit: Visit) -> None:
    assert visit.requested
    assert [url for url in visit.requested if not url.startswith(visit.base_url + "/")] == []
    assert visit.console_errors == []


async def test_swagger_ui_renders_every_operation_offline(offline: Visit) -> None:
    operations = _operations(offline.base_url)
    page = offline.page

    await page.goto(offline.url("/docs"))
    await page.wait_for_selector(".opblock-summary")

    assert await page.locator(".opblock").count() == len(operations)
    assert "Catalog" in await page.inner_text(".information-container")
    _nothing_from_elsewhere(offline)


async def test_redoc_renders_every_operation_offline(offline: Visit) -> None:
    operations = _operations(offline.base_url)
    page = offline.page

    await page.goto(offline.url("/redoc"))
    await page.wait_for_selector("[data-section-id^='operation/']")

    rendered = page.locator("[data-section-id^='operation/']")
    assert await rendered.count() == len(operations)
    summaries = {operation["summary"] for operation in operations}
    assert {await heading.inner_text() for heading in await page.locator("h2").all()} >= (summaries)
    _nothing_from_elsewhere(offline)


async def test_the_admin_sign_in_page_renders_offline(offline: Visit) -> None:
    page = offline.page

    await page.goto(offline.url("/admin"))
    await page.wait_for_url(offline.url("/admin/login"))
    await page.wait_for_selector("#username")

    assert await page.locator("button[type=submit]").is_visible()
    _nothing_from_elsewhere(offline)
