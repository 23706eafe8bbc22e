"""`bench.where`: each py-spy sample goes to the part of the request that spent it."""

from __future__ import annotations

from pathlib import Path

from bench.where import EVENT_LOOP, part_of, tally

LOOP = "_run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:80)"
SERVING = f"main (bench/floor.py:215);{LOOP};_measure (bench/floor.py:190)"
CHAIN = (
    "_Request.__call__ (bench/floor.py:100);FastAPI.__call__ (fastapi/applications.py:1205);"
    "ObservedRequestsMiddleware.__call__ (catalog/api/middleware/observed.py:50)"
)


def _frames(*inner: str) -> list[str]:
    return f"{SERVING};{CHAIN}".split(";") + list(inner)


def test_the_innermost_frame_that_names_a_part_decides() -> None:
    frames = _frames("_AccessLog.write (catalog/api/middleware/observed.py:110)")
    assert part_of([*frames, "Logger.handle (logging/__init__.py:1000)"]) == (
        "observing: access line"
    )
    assert part_of(frames[:-1]) == "service middleware: observed"  # each guard apart


def test_standard_library_frames_count_for_their_caller() -> None:
    jwt = _frames("PyJWT.decode (jwt/api_jwt.py:200)", "loads (json/__init__.py:346)")
    assert part_of(jwt) == "token check (PyJWT)"
    write = _frames(
        "Connection._do_execute (asyncpg/connection.py:2035)",
        "_SelectorSocketTransport.write (asyncio/selector_events.py:1037)",
    )
    assert part_of(write) == "PostgreSQL driver (asyncpg)"


def test_the_event_loop_alone_is_a_part_of_its_own() -> None:
    read = f"main (bench/floor.py:215);{LOOP};_read_ready (asyncio/selector_events.py:900)"
    assert part_of(read.split(";")) == EVENT_LOOP


def test_only_samples_taken_while_serving_are_counted(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    building = f"{SERVING};_app (bench/floor.py:127);<module> (catalog/api/app.py:13)"
    serving = f"{SERVING};{CHAIN};read_item (catalog/api/routes/items.py:60)"
    importing = "<module> (bench/floor.py:1);_find_and_load (<frozen importlib._bootstrap>:1)"
    raw.write_text(f"{building} 40\n{serving} 7\n{importing} 9\n{serving} 3\n")
    assert tally(raw) == {"service code: routes, services, SQL": 10}
