"""Deterministic demo data: vocabularies and the user, tag and item generators (no database).

The same seed, counts and `as_of` always give the same rows. Each table draws from its own
random stream, so changing one count leaves the other tables' rows unchanged.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

YEAR = timedelta(days=365)
# Probability that an item has 0, 1, 2 or 3 tags (cumulative).
_TAG_COUNT_CDF = (0.25, 0.60, 0.85)
_INACTIVE_ITEM_SHARE = 0.10
_INACTIVE_USER_SHARE = 0.05
_NO_DESCRIPTION_SHARE = 0.15
# Prices are log-uniform between these (in cents): many cheap things, a few expensive ones.
_MIN_CENTS, _MAX_CENTS = 99, 2_500_000


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# The vocabularies never contain tabs, newlines or backslashes: rows built from them are
# valid COPY text without escaping (tests/test_seed.py checks it).
FIRST_NAMES = _words(
    "Ada Alan Alice Amara Anna Arjun Ben Bruno Carla Chen Chloe Dana David Diego Elena Emil "
    "Eva Farah Felix Grace Hana Hugo Ines Ivan Jade James Jonas Julia Kai Karin Lars Layla "
    "Leo Lina Luca Maya Mei Milan Mira Nadia Noah Nora Omar Oscar Paula Priya Rafael Rosa "
    "Sami Sara Sofia Tariq Theo Uma Victor Wen Yara Yusuf Zoe"
)
LAST_NAMES = _words(
    "Adams Alvarez Becker Bianchi Brown Costa Dubois Eriksen Fischer Garcia Hansen Ivanova "
    "Jensen Kim Kowalski Larsen Lopez Meyer Moreau Muller Nakamura Nguyen Novak Okafor Olsen "
    "Park Patel Perez Petrov Rossi Santos Schmidt Silva Singh Smith Tanaka Weber Wong Yilmaz "
    "Zhang"
)
ADJECTIVES = _words(
    "Compact Classic Deluxe Durable Elegant Ergonomic Essential Foldable Handmade Heavy-Duty "
    "Lightweight Minimalist Modern Portable Premium Refined Rugged Rustic Sleek Smart Solid "
    "Sturdy Vintage Waterproof Wireless Cozy Adjustable Quiet Bright Reusable"
)
MATERIALS = _words(
    "Aluminum Bamboo Brass Canvas Ceramic Copper Cotton Glass Granite Leather Linen Marble "
    "Oak Plastic Rubber Silicone Steel Walnut Wool Titanium"
)
NOUNS = _words(
    "Backpack Bench Blender Bottle Bowl Cabinet Camera Chair Clock Desk Drone Fan Headphones "
    "Helmet Jacket Kettle Keyboard Knife Lamp Laptop Stand Mat Mirror Monitor Mouse Mug "
    "Notebook Pan Pen Pillow Planter Printer Radio Rug Scale Shelf Shoes Sofa Speaker Table "
    "Tent Thermos Toaster Tray Umbrella Vase Wallet Watch Speakerphone Scooter Router"
)
FEATURES = (
    "built to last for years",
    "easy to clean",
    "designed for everyday use",
    "with a two-year warranty",
    "perfect for small spaces",
    "great as a gift",
    "tested by professionals",
    "made in small batches",
    "with a matte finish",
    "available while stocks last",
    "with replaceable parts",
    "that fits in any bag",
    "with an energy-saving mode",
    "assembled in minutes",
    "loved by our customers",
)
CLOSINGS = (
    "Ships within two days.",
    "Free returns within 30 days.",
    "Limited edition.",
    "Bestseller this season.",
    "Comes in a recyclable box.",
    "Includes a user guide.",
    "",
)
TAG_WORDS = _words(
    "accessories audio autumn bargain bath bedroom bestseller camping classic clearance "
    "coffee collectible cooking craft cycling decor desk digital eco electronics essentials "
    "family fashion fitness furniture garden gift gaming handmade health hiking home "
    "kids kitchen lighting limited local luxury minimalist music new office organic outdoor "
    "party pet photography portable premium refurbished retro running sale school "
    "seasonal sleep smart spring sports storage summer sustainable tech tools travel "
    "vintage waterproof wellness winter wireless workshop yoga"
)

UserRow = tuple[int, str, str, str | None, bool, datetime]
"""(id, email, hashed_password, full_name, is_active, created_at)"""
ItemRow = tuple[int, str, str | None, int, bool, datetime, int, tuple[int, ...]]
"""(id, name, description, price in cents, is_active, created_at, owner_id, tag ids)"""


def _rng(seed: int, stream: str) -> random.Random:
    # One independent stream per table: changing --items leaves the users and tags unchanged.
    # String seeds are hashed with SHA-512 by `random`, not with the salted str hash.
    return random.Random(f"catalog-seed:{seed}:{stream}")


def tag_names(count: int, seed: int) -> list[str]:
    """`count` distinct, normalized tag names: words first, then word pairs, then numbered."""
    rng = _rng(seed, "tags")
    words = list(TAG_WORDS)
    rng.shuffle(words)
    names = words[:count]
    pairs = (f"{a}-{b}" for a in words for b in words if a != b)
    while len(names) < count:
        pair = next(pairs, None)
        names.append(pair if pair is not None else f"{words[len(names) % len(words)]}-{len(names)}")
    return names


def generate_users(
    first_id: int, count: int, *, seed: int, hashed_password: str, as_of: datetime
) -> Iterator[UserRow]:
    """Users with realistic names; the id in the email keeps every email unique."""
    rng = _rng(seed, "users")
    r = rng.random
    year = YEAR.total_seconds()
    for user_id in range(first_id, first_id + count):
        first = FIRST_NAMES[int(r() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(r() * len(LAST_NAMES))]
        email = f"{first}.{last}.{user_id}@example.com".lower()
        created_at = as_of - timedelta(seconds=r() * year)
        yield (
            user_id,
            email,
            hashed_password,
            f"{first} {last}",
            r() >= _INACTIVE_USER_SHARE,
            created_at,
        )


def generate_items(
    first_id: int,
    count: int,
    *,
    seed: int,
    owner_ids: Sequence[int],
    tag_ids: Sequence[int],
    as_of: datetime,
) -> Iterator[ItemRow]:
    """Items spread over the year before `as_of` (later ids are newer), 0..3 distinct tags."""
    rng = _rng(seed, "items")
    r = rng.random  # local names: this loop runs a million times
    adjectives, materials, nouns = ADJECTIVES, MATERIALS, NOUNS
    features, closings = FEATURES, CLOSINGS
    n_adj, n_mat, n_noun, n_feat, n_close = map(
        len, (adjectives, materials, nouns, features, closings)
    )
    n_owners, n_tags = len(owner_ids), len(tag_ids)
    p0, p1, p2 = _TAG_COUNT_CDF
    log_lo, log_span = math.log(_MIN_CENTS), math.log(_MAX_CENTS) - math.log(_MIN_CENTS)
    exp = math.exp
    start = as_of - YEAR
    step = YEAR.total_seconds() / max(count, 1)
    for i in range(count):
        adjective = adjectives[int(r() * n_adj)]
        material = materials[int(r() * n_mat)]
        noun = nouns[int(r() * n_noun)]
        name = f"{adjective} {material} {noun}"
        if r() < 0.3:
            name = f"{name} {chr(65 + int(r() * 26))}{int(r() * 900) + 100}"
        description: str | None = None
        if r() >= _NO_DESCRIPTION_SHARE:
            description = (
                f"{adjective} {noun.lower()} in {material.lower()}, "
                f"{features[int(r() * n_feat)]}. {closings[int(r() * n_close)]}"
            ).rstrip()
        cents = int(exp(log_lo + r() * log_span))
        created_at = start + timedelta(seconds=(i + r()) * step)
        owner = owner_ids[int(r() * n_owners)]
        u = r()
        wanted = min(n_tags, 0 if u < p0 else 1 if u < p1 else 2 if u < p2 else 3)
        chosen: list[int] = []
        while len(chosen) < wanted:
            tag = tag_ids[int(r() * n_tags)]
            if tag not in chosen:
                chosen.append(tag)
        chosen.sort()
        yield (
            first_id + i,
            name,
            description,
            cents,
            r() >= _INACTIVE_ITEM_SHARE,
            created_at,
            owner,
            tuple(chosen),
        )
