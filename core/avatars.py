"""A person's initials avatar: up to two letters and a colour that stays the same for the same name.

No image files: the page draws a coloured circle (stylesheet classes `avatar c0` … `c7`) with the
initials in it. The colour comes from a hash of the name, not Python's `hash()` (which changes from
one process to the next), so a builder keeps their colour across restarts and pages.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

AVATAR_COLOURS = 8


@dataclass(frozen=True, slots=True)
class Avatar:
    initials: str
    colour: int  # 0 .. AVATAR_COLOURS - 1

    @property
    def css_class(self) -> str:
        return f"avatar c{self.colour}"


def avatar_for(name: str | None) -> Avatar:
    """'Ada Lovelace' → AL; 'Mateo Álvarez' → MÁ; 'Cher' → C; a name without letters → '?'."""
    words = [word for word in (name or "").split() if any(ch.isalnum() for ch in word)]
    firsts = [next(ch for ch in word if ch.isalnum()).upper() for word in words]
    initials = (firsts[0] + firsts[-1] if len(firsts) > 1 else "".join(firsts)) or "?"
    digest = hashlib.sha256((name or "").strip().casefold().encode()).digest()
    return Avatar(initials, digest[0] % AVATAR_COLOURS)
