"""Case- and accent-insensitive search in every script.

``search_fold(text)`` is an IMMUTABLE SQL function created by the first migration:
``unaccent`` (Latin, Greek tonos, Cyrillic ё...), then NFD with combining marks, Hebrew
niqqud and Arabic harakat stripped, then ``lower`` (the database's UTF-8 ctype) and
final sigma folded. Trigram GIN indexes are built over it, so ``q`` is a substring
match that uses the index from 3 characters on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal


def matches(document: ColumnElement[Any], q: str) -> ColumnElement[bool]:
    """``search_fold(document) LIKE '%' || search_fold(q) || '%'`` with LIKE wildcards
    in ``q`` escaped."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.search_fold(document).like(
        literal("%").concat(func.search_fold(escaped)).concat("%"), escape="\\"
    )
