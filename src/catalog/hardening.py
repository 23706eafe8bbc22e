"""What the service refuses to start with: guessable keys and first-superuser credentials.

Checked by `config.Settings` at start-up, so a weak production deployment stops with one
line naming the variable instead of running with a secret an attacker can guess.
"""

from __future__ import annotations

import math
from collections import Counter

from email_validator import EmailNotValidError, validate_email
from pydantic import SecretStr

MIN_SECRET_KEY_LENGTH = 32
# Estimated from the key's own character frequencies (Shannon) times its length, and
# its distinct characters: 32 random hex digits give >= 86 bits and >= 8 distinct (the
# least seen in 200,000 draws; URL-safe keys give far more), while 32 times "a" gives 0
# bits and "password" or "changeme" repeated have 7 distinct characters.
MIN_SECRET_KEY_BITS = 80
MIN_SECRET_KEY_DISTINCT = 8
# Keys and passwords that appear in tutorials and templates.
KNOWN_WEAK = frozenset(
    {
        "changethis",
        "changeme",
        "secret",
        "secret-key",
        "secretkey",
        "dev",
        "test",
        "password",
        "password1",
        "password123",
        "admin",
        "admin123",
        "administrator",
        "letmein",
        "qwerty",
        "qwertyuiop",
        "123456789012",
        "iloveyou",
        "welcome",
        "superuser",
        "root",
        "toor",
    }
)
MIN_SUPERUSER_PASSWORD_LENGTH = 12
HOW_TO_MAKE_A_KEY = "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"


def estimated_bits(text: str) -> float:
    """Entropy estimate of `text`: its per-character Shannon entropy times its length."""
    if not text:
        return 0.0
    counts = Counter(text).values()
    total = len(text)
    per_character = -sum(n / total * math.log2(n / total) for n in counts)
    return per_character * total


def check_secret_key(key: SecretStr | None, *, production: bool) -> None:
    """Refuse an empty key anywhere, and a missing, short or guessable one in production."""
    value = key.get_secret_value() if key is not None else None
    if value is not None and not value.strip():
        # An empty key would sign tokens anyone can forge (and PyJWT refuses it at login).
        raise ValueError("SECRET_KEY is empty: unset it (development) or set a strong key")
    if not production:
        return
    if value is None:
        raise ValueError("SECRET_KEY must be set when ENVIRONMENT=production")
    if (
        len(value) < MIN_SECRET_KEY_LENGTH
        or value.lower() in KNOWN_WEAK
        or estimated_bits(value) < MIN_SECRET_KEY_BITS
        or len(set(value)) < MIN_SECRET_KEY_DISTINCT
    ):
        raise ValueError(
            f"SECRET_KEY is too weak for production (use {MIN_SECRET_KEY_LENGTH}+ random "
            f"characters, e.g. {HOW_TO_MAKE_A_KEY})"
        )


def check_first_superuser(email: str, password: str, *, production: bool) -> None:
    """The first superuser's email must be an email; in production its password strong."""
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"FIRST_SUPERUSER_EMAIL is not an email address: {error}") from None
    if not 8 <= len(password) <= 128:  # what registration accepts
        raise ValueError("FIRST_SUPERUSER_PASSWORD must be 8 to 128 characters")
    if not production:
        return
    local_part = email.split("@", 1)[0].lower()
    lowered = password.lower()
    if (
        len(password) < MIN_SUPERUSER_PASSWORD_LENGTH
        or lowered in KNOWN_WEAK
        or lowered == local_part
        or len(set(password)) < 5
    ):
        raise ValueError(
            f"FIRST_SUPERUSER_PASSWORD is too weak for production (use "
            f"{MIN_SUPERUSER_PASSWORD_LENGTH}+ characters that are not a well-known default)"
        )
