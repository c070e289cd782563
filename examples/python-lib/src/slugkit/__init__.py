"""Turn titles into URL slugs."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["slugify"]

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slugify(text: str, separator: str = "-", max_length: int | None = None) -> str:
    """Return a lowercase ASCII slug of `text`: `"Héllo, World!"` -> `"hello-world"`.

    Accents are stripped, every run of other characters becomes one `separator`, and
    `max_length` (if given) cuts at a separator rather than in the middle of a word.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = _NOT_WORD.sub(separator, ascii_text.lower()).strip(separator)
    if max_length is not None and len(slug) > max_length:
        cut = slug[: max_length + 1]
        slug = cut.rsplit(separator, 1)[0] if separator in cut else slug[:max_length]
    return slug.strip(separator)
