"""Slugs: lowercase ASCII words joined by dashes, used in URLs and host names."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable


def slugify(text: str, max_length: int = 48) -> str:
    text = re.sub(r"['\u2019`]", "", text)  # "Emile's" -> "emiles", not "emile-s"
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].strip("-") or "x"


def unique_slug(text: str, taken: Callable[[str], bool]) -> str:
    """The slug of `text`, suffixed `-2`, `-3`... until `taken` says it is free."""
    base = slugify(text)
    slug, n = base, 1
    while taken(slug):
        n += 1
        slug = f"{base}-{n}"
    return slug
