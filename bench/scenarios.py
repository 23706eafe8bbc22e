"""The benchmark's scenarios: which request, with which parameters, and how to check it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson

from bench.counting import Probe
from bench.dataset import Dataset

PAGE_SIZE = 50
POST_BODY_NAME = "Benchmark item"
PATCH_DESCRIPTION = "Patched by the benchmark"


@dataclass(frozen=True)
class Scenario:
    """One kind of request the servers are loaded with."""

    name: str
    title: str
    description: str
    lua: str = "get"
    write: bool = False
    search: bool = False  # loaded with --search-connections instead of --connections


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("item", "GET /items/{id}", "one item by id; ids uniformly random", "random_item"),
    Scenario("page", "GET /items?limit=50", "first page of 50 items with their tags"),
    Scenario(
        "filtered",
        "GET /items?tag&price&active&sort=-price",
        "one tag, a price range, active only, sorted by price descending, 50 items",
    ),
    Scenario("search", "GET /items?q=...", "name substring search (ILIKE), 50 items", search=True),
    Scenario("deep_skip", "GET /items?skip=90%", "50 items at depth 90% by offset"),
    Scenario(
        "deep_cursor",
        "GET /items?cursor=(90%)",
        "the same depth by keyset: the Link rel=next of ?skip=(depth-50)&limit=50",
    ),
    Scenario("create", "POST /items", "create an item with 2 existing tags", "post_item", True),
    Scenario(
        "update",
        "PATCH /items/{id}",
        "change the description of a random item (superuser)",
        "patch_item",
        True,
    ),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


@dataclass(frozen=True)
class Target:
    """A scenario made concrete for one server: wrk's URL and script arguments, one probe."""

    path: str
    lua_args: tuple[str, ...]
    probes: tuple[Probe, ...]  # requests to check the answers with; the first is counted


def deep_depth(dataset: Dataset) -> int:
    """The offset of the deep page: 90% of the items (900,000 of a million)."""
    return dataset.spec.items * 9 // 10


def _items(**params: Any) -> str:
    return "/items?" + urlencode(params)


def post_body(dataset: Dataset) -> bytes:
    return orjson.dumps(
        {
            "name": POST_BODY_NAME,
            "description": "Created by the benchmark",
            "price": 19.99,
            "tags": list(dataset.post_tags),
        }
    )


def patch_body() -> bytes:
    return orjson.dumps({"description": PATCH_DESCRIPTION})


def next_link(response: httpx.Response) -> str | None:
    """The path and query of the `Link: <...>; rel="next"` target, if any."""
    for part in response.headers.get_list("link"):
        for link in part.split(","):
            url, _, params = link.partition(";")
            if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
                parsed = urlsplit(url.strip().strip("<>"))
                return parsed.path + (f"?{parsed.query}" if parsed.query else "")
    return None


def resolve(scenario: Scenario, dataset: Dataset, base_url: str) -> Target:
    """The concrete requests of `scenario` on the server at `base_url`."""
    low, high = dataset.min_item_id, dataset.max_item_id
    middle = (low + high) // 2
    if scenario.name == "item":
        probes = tuple(Probe("GET", f"/items/{i}") for i in (middle, low, high))
        return Target("/items/0", (str(low), str(high)), probes)
    if scenario.name == "page":
        path = _items(limit=PAGE_SIZE)
    elif scenario.name == "filtered":
        path = _items(
            tag=dataset.tag,
            min_price=dataset.min_price,
            max_price=dataset.max_price,
            is_active="true",
            sort="-price",
            limit=PAGE_SIZE,
        )
    elif scenario.name == "search":
        path = _items(q=dataset.q, limit=PAGE_SIZE)
    elif scenario.name == "deep_skip":
        path = _items(skip=deep_depth(dataset), limit=PAGE_SIZE)
    elif scenario.name == "deep_cursor":
        before = _items(skip=deep_depth(dataset) - PAGE_SIZE, limit=PAGE_SIZE)
        response = httpx.get(base_url + before, timeout=600)
        link = next_link(response)
        if response.status_code != 200 or link is None:
            raise RuntimeError(
                f"{base_url}{before} gave {response.status_code} and no Link rel=next:"
                f" cannot build the cursor scenario"
            )
        path = link
    elif scenario.name == "create":
        body = post_body(dataset)
        return Target("/items", ("TOKEN", body.decode()), (Probe("POST", "/items", body, True),))
    elif scenario.name == "update":
        body = patch_body()
        probe = Probe("PATCH", f"/items/{middle}", body, True)
        return Target("/items/0", (str(low), str(high), "TOKEN", body.decode()), (probe,))
    else:
        raise ValueError(f"unknown scenario {scenario.name}")
    return Target(path, (), (Probe("GET", path),))


def fixed(path: str) -> Target:
    """A GET of a path known in advance (a deep_cursor link obtained elsewhere)."""
    return Target(path, (), (Probe("GET", path),))


def with_token(target: Target, token: str) -> tuple[str, ...]:
    """wrk's script arguments with the bearer token filled in."""
    return tuple(token if arg == "TOKEN" else arg for arg in target.lua_args)


# --- checking that both servers give the same answer ------------------------------------

_VOLATILE = {"create": ("id", "created_at"), "update": ("updated_at",)}


def send(client: httpx.Client, probe: Probe, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if probe.authenticated else {}
    if probe.body is not None:
        headers["Content-Type"] = "application/json"
    return client.request(probe.method, probe.path, content=probe.body, headers=headers)


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where or 'body'}: {len(a)} vs {len(b)} elements"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                return _first_difference(
                    a.get(key, "<absent>"), b.get(key, "<absent>"), f"{where}.{key}"
                )
    return f"{where or 'body'}: service {str(a)[:80]!r} vs baseline {str(b)[:80]!r}"


def compare(scenario: Scenario, service: httpx.Response, baseline: httpx.Response) -> str | None:
    """None when both answers are the same (modulo what a write makes unique), else why not.

    Two refusals with the same status are the same answer (the wording is each server's).
    """
    if service.status_code == baseline.status_code >= 400:
        return None
    if service.status_code != baseline.status_code or service.status_code >= 300:
        return (
            f"status: service {service.status_code} vs baseline {baseline.status_code}"
            f" ({service.text[:120]!r})"
        )
    a, b = service.json(), baseline.json()
    for field in _VOLATILE.get(scenario.name, ()):
        for body in (a, b):
            if isinstance(body, dict):
                body.pop(field, None)
    if a != b:
        return _first_difference(a, b)
    if (next_link(service) is None) != (next_link(baseline) is None):
        return "Link rel=next: present on one server only"
    return None
