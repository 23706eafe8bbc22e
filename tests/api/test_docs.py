"""/docs and /redoc are served with their assets from the service itself (no CDN), under a
policy that lets scripts and styles come from 'self' only, plus the page's own inline
start-up code by a per-response nonce. What a browser makes of it: tests/test_docs_browser.py.
"""

from __future__ import annotations

import re

import httpx
import pytest

from catalog.api.docs import ASSETS, REDOC_BUNDLE, REDOC_PATCHES

PAGES = ["/docs", "/docs/oauth2-redirect", "/redoc"]


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (part.split() for part in policy.split(";") if part.strip())
    return {name: values for name, *values in parts}


def _inline_nonces(html: str) -> list[str | None]:
    """The nonce of every inline script and style element (None: it has none)."""
    found = []
    for tag in re.finditer(r"<(script|style)\b([^>]*)>", html):
        attributes = tag.group(2)
        if tag.group(1) == "script" and "src=" in attributes:
            continue
        nonce = re.search(r'nonce="([^"]+)"', attributes)
        found.append(nonce.group(1) if nonce else None)
    return found


@pytest.mark.parametrize("path", PAGES)
async def test_a_docs_page_allows_only_self_and_its_own_nonce(
    client: httpx.AsyncClient, path: str
) -> None:
    first = await client.get(path)
    second = await client.get(path)

    assert first.status_code == 200
    policy = _directives(first.headers["content-security-policy"])
    nonce = re.fullmatch(r"'nonce-([\w-]+)'", policy["script-src"][1])
    assert nonce is not None
    for directive in ("script-src", "style-src"):
        assert policy[directive] == ["'self'", f"'nonce-{nonce.group(1)}'"]
    assert policy["default-src"] == ["'none'"]
    assert not [v for values in policy.values() for v in values if "http" in v or "*" in v]
    inline = _inline_nonces(first.text)
    assert inline
    assert set(inline) == {nonce.group(1)}
    assert "http" not in re.sub(r"https?://[^\"' ]*w3\.org[^\"' ]*", "", first.text)
    assert first.headers["cache-control"] == "no-store"
    assert second.headers["content-security-policy"] != first.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("asset", "media_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon.png", "image/png"),
    ],
)
async def test_the_pages_assets_are_served_by_the_service(
    client: httpx.AsyncClient, asset: str, media_type: str
) -> None:
    response = await client.get(f"/docs/assets/{asset}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content == (ASSETS / asset).read_bytes()


async def test_redocs_bundle_is_served_with_each_patch_applied_once(
    client: httpx.AsyncClient,
) -> None:
    original = (ASSETS / REDOC_BUNDLE).read_bytes()
    response = await client.get(f"/docs/assets/{REDOC_BUNDLE}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    expected = original
    for old, new in REDOC_PATCHES.items():
        assert original.count(old) == 1  # a new ReDoc must be looked at again
        assert old not in response.content
        expected = expected.replace(old, new)
    assert response.content == expected
    assert b"cdn.redoc.ly" not in response.content


async def test_the_pages_name_only_local_assets(client: httpx.AsyncClient) -> None:
    docs = (await client.get("/docs")).text
    redoc = (await client.get("/redoc")).text
    assert re.findall(r'(?:src|href)="([^"]+)"', docs) == [
        "/docs/assets/swagger-ui.css",
        "/docs/assets/favicon.png",
        "/docs/assets/swagger-ui-bundle.js",
    ]
    assert re.findall(r'(?:src|href)="([^"]+)"', redoc) == [
        "/docs/assets/favicon.png",
        "/docs/assets/redoc.standalone.js",
    ]
