"""The memo of verified access tokens (`security.VerifiedTokens`): what it may answer."""

from __future__ import annotations

import time

import jwt
import pytest

from catalog import security
from catalog.security import TokenClaims, VerifiedTokens, create_access_token

KEY = "k" * 32
OTHER_KEY = "o" * 32


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch: pytest.MonkeyPatch) -> VerifiedTokens:
    memo = VerifiedTokens(size=4)
    monkeypatch.setattr(security, "_verified_tokens", memo)
    return memo


def _token(user_id: int = 7, minutes: int = 30) -> str:
    return create_access_token(user_id, KEY, minutes, stamp="s")


def test_a_token_seen_before_is_answered_without_verifying_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = _token()
    first = security.decode_access_token(token, KEY)

    def no_second_check(*args: object, **kwargs: object) -> None:
        raise AssertionError("verified twice")

    monkeypatch.setattr(jwt, "decode", no_second_check)
    assert security.decode_access_token(token, KEY) == first == TokenClaims(7, "s")


def test_a_remembered_token_is_forgotten_once_it_expires(
    fresh_memo: VerifiedTokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _token(minutes=1)
    assert security.decode_access_token(token, KEY) is not None
    monkeypatch.setattr(security, "token_clock", lambda: time.time() + 61)
    assert fresh_memo.get(token, KEY) is None
    assert len(fresh_memo) == 0


def test_a_token_remembered_under_one_key_is_refused_under_another() -> None:
    token = _token()
    assert security.decode_access_token(token, KEY) is not None
    assert security.decode_access_token(token, OTHER_KEY) is None


def test_tokens_that_fail_are_not_remembered(fresh_memo: VerifiedTokens) -> None:
    token = _token()
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert security.decode_access_token(tampered, KEY) is None
    assert security.decode_access_token("not a token", KEY) is None
    assert len(fresh_memo) == 0


def test_the_memo_keeps_the_newest_tokens_up_to_its_size(fresh_memo: VerifiedTokens) -> None:
    tokens = [_token(user_id) for user_id in range(1, 7)]
    for token in tokens:
        assert security.decode_access_token(token, KEY) is not None
    assert len(fresh_memo) == 4
    assert fresh_memo.get(tokens[0], KEY) is None  # the oldest two went
    assert fresh_memo.get(tokens[-1], KEY) == TokenClaims(6, "s")


def test_a_remembered_token_is_refused_while_the_clock_is_before_its_issue(
    fresh_memo: VerifiedTokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PyJWT refuses an `iat` in the future (a clock stepped back): so does the memo.
    token = _token()
    assert security.decode_access_token(token, KEY) is not None
    monkeypatch.setattr(security, "token_clock", lambda: time.time() - 60)
    assert fresh_memo.get(token, KEY) is None
