"""The admin in a real browser: Debian's Chromium driven by Playwright, against `catalog serve`.

The service runs as it would in production (its own process, uvicorn, settings from the
environment with ADMIN=on) on a free loopback port, over the suite's database, so these
run on SQLite and PostgreSQL. Chromium comes from `make infra` (Playwright cannot download
its own browser here); without it these tests are skipped, and fail with CI=true.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from catalog.admin.auth import NOT_A_SUPERUSER
from catalog.admin.middleware import REFUSED
from tests.conftest import IN_CI, Account, MakeUser
from tests.served import served_catalog

CHROMIUM = "/usr/bin/chromium"
# As this machine's probe starts it: no sandbox as root, and no background traffic to hosts
# the closed network refuses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT_MS = 15_000
# sqladmin's script gives the modal's delete button its URL as the modal opens: a click
# before that sends DELETE to the list page (405). Playwright's click waits for this.
ARMED_DELETE_BUTTON = "#modal-delete-button:not([data-url=''])"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, or a skip (a failure on CI) saying how to install it."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"{CHROMIUM} is not installed (run `make infra` as root)"
        if IN_CI:
            pytest.fail(f"CI requires Chromium for the admin's browser tests: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """One headless Chromium for the session; each test opens its own context (cookies)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`catalog serve` with ADMIN=on over the suite's database; its base URL."""
    with served_catalog(database_url, tmp_path_factory.mktemp("served"), ADMIN="on") as url:
        yield url


@dataclass
class Visit:
    """A browser context on the served admin, recording what its pages asked for."""

    base_url: str
    context: BrowserContext
    page: Page
    requested: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path

    async def sign_in(self, email: str, password: str, *, refused: bool = False) -> None:
        """Fill and submit the login form, as a person would; wait for the index (or, when
        `refused`, for the login page's error)."""
        await self.page.goto(self.url("/admin/"))
        await self.page.wait_for_url(self.url("/admin/login"))
        await self.page.fill("#username", email)
        await self.page.fill("#password", password)
        await self.page.click("button[type=submit]")
        if refused:
            await self.page.wait_for_selector("#login-error")
        else:
            await self.page.wait_for_url(self.url("/admin/"))


@pytest.fixture
async def visit(browser: Browser, served: str) -> AsyncIterator[Visit]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = await context.new_page()
    current = Visit(served, context, page)
    page.on("request", lambda request: current.requested.append(request.url))
    page.on(
        "console",
        lambda message: (
            current.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    yield current
    await context.close()


async def api_item(base_url: str, item_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get(f"/items/{item_id}")
    assert response.status_code == 200
    item: dict[str, Any] = response.json()
    return item


async def create_items(base_url: str, owner: Account, *names: str) -> list[dict[str, Any]]:
    created = []
    async with httpx.AsyncClient(base_url=base_url, headers=owner.headers) as client:
        for name in names:
            response = await client.post("/items", json={"name": name, "price": 10, "tags": ["x"]})
            assert response.status_code == 201, response.text
            created.append(response.json())
    return created


async def test_a_superuser_finds_an_item_and_edits_its_price(
    visit: Visit, make_user: MakeUser
) -> None:
    root = await make_user("root@example.com", is_superuser=True)
    owner = await make_user("owner@example.com")
    lamp, *_ = await create_items(visit.base_url, owner, "Brass lamp", "Oak table", "Lamp shade")
    page = visit.page

    await visit.sign_in(root.email, root.password)

    await page.click("a.nav-link:has-text('Items')")
    await page.wait_for_url(visit.url("/admin/item/list"))
    await page.fill("#search-input", "brass")
    await page.click("#search-button")
    await page.wait_for_url("**/admin/item/list?search=brass")
    rows = page.locator("table tbody tr")
    assert await rows.count() == 1
    assert "Brass lamp" in await rows.first.inner_text()

    await rows.first.locator(f"a[href*='/admin/item/edit/{lamp['id']}']").click()
    await page.wait_for_selector("#price")
    assert await page.input_value("#price") == "10.00"
    await page.fill("#price", "123.45")
    await page.click("input[name=save][value=Save]")
    await page.wait_for_url("**/admin/item/list?search=brass")

    after = await api_item(visit.base_url, lamp["id"])
    assert Decimal(str(after["price"])) == Decimal("123.45")
    assert after["updated_at"] is not None  # was None: set by the database on update
    assert after["tags"] == lamp["tags"] == ["x"]  # the form kept the tags
    assert after["owner_id"] == owner.id

    # Everything the pages loaded came from the service itself: no CDN, no font host.
    assert visit.requested
    assert [url for url in visit.requested if not url.startswith(visit.base_url + "/")] == []
    assert visit.console_errors == []  # no missing asset, no script blocked by the CSP

    # Logout (a link that carries the CSRF token) ends the session.
    await page.click("a:has-text('Logout')")
    await page.wait_for_url(visit.url("/admin/login"))
    await page.goto(visit.url("/admin/item/list"))
    assert page.url == visit.url("/admin/login")


async def test_a_normal_users_login_is_refused(visit: Visit, user: Account) -> None:
    await visit.sign_in(user.email, user.password, refused=True)
    assert visit.page.url == visit.url("/admin/login")
    assert await visit.page.inner_text("#login-error") == NOT_A_SUPERUSER
    await visit.page.goto(visit.url("/admin/item/list"))
    assert visit.page.url == visit.url("/admin/login")


async def test_a_forged_post_without_the_token_is_refused(
    visit: Visit, make_user: MakeUser
) -> None:
    """A request the page's own script did not make (no token) carries the session cookie
    but is refused; the admin's own delete button, whose request the script arms, works."""
    root = await make_user("root@example.com", is_superuser=True)
    owner = await make_user("owner@example.com")
    (lamp,) = await create_items(visit.base_url, owner, "Lamp")
    await visit.sign_in(root.email, root.password)
    page = visit.page
    await page.goto(visit.url("/admin/item/list"))

    forged = await page.evaluate(
        """async (url) => {
            const xhr = new XMLHttpRequest();
            xhr.open("POST", url, false);
            xhr.setRequestHeader("Content-Type", "application/x-www-form-urlencoded");
            xhr.send("name=Hacked&price=0.01&is_active=y&tags=&save=Save");
            return {status: xhr.status, body: xhr.responseText};
        }""",
        visit.url(f"/admin/item/edit/{lamp['id']}"),
    )
    assert forged == {"status": 403, "body": REFUSED}
    unchanged = await api_item(visit.base_url, lamp["id"])
    assert (unchanged["name"], unchanged["price"]) == ("Lamp", 10.0)

    await page.click(f"a[data-pk='{lamp['id']}'][data-bs-target='#modal-delete']")
    async with page.expect_response(lambda r: r.request.method == "DELETE") as answered:
        await page.click(ARMED_DELETE_BUTTON)
    assert (await answered.value).status == 200
    async with httpx.AsyncClient(base_url=visit.base_url) as client:
        assert (await client.get(f"/items/{lamp['id']}")).status_code == 404
