"""Reactions beside the like: which ones a site offers, and their one spelling.

A reaction is an emoji ("👍", "❤️") or a short name ("clap", "thinking"). The
set is ``LIKES_REACTIONS`` (comma-separated, at most ``MAX_REACTIONS``; empty,
the default: the like alone). A reaction a client names is matched in its
canonical form (NFC, without the emoji variation selector U+FE0F), so "❤" and
"❤️" are one reaction; it is stored and answered under the spelling of the
setting.
"""

import functools
import re
import unicodedata

from likes.conf import conf

MAX_REACTIONS = 8
# A short name: lower-case ASCII letters, digits, "-" and "_".
SHORT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,15}")
KEYCAP = re.compile("[0-9#*]\ufe0f?\u20e3")
# An emoji: symbols, with what joins and modifies them (ZWJ sequences, skin
# tones, keycaps, variation selectors); at most this many code points.
EMOJI_MAX_CHARS = 12
EMOJI_PARTS = frozenset({"So", "Sk", "Me", "Mn"})
ZWJ = "\u200d"
VS16 = "\ufe0f"
# The column that holds a reaction's name (Like.kind, PostReaction.kind).
KIND_MAX_LENGTH = 32


def key(name: str) -> str:
    """The spelling two names that look the same share."""
    return unicodedata.normalize("NFC", name).replace(VS16, "")


def name_error(name) -> str | None:
    """Why ``name`` cannot be a reaction, or None."""
    if not isinstance(name, str) or not name:
        return "A reaction is an emoji or a short name."
    if SHORT_NAME.fullmatch(name) or KEYCAP.fullmatch(name):
        return None
    if len(name) > EMOJI_MAX_CHARS:
        return f"A reaction is at most {EMOJI_MAX_CHARS} characters: {name!r}."
    symbol = False
    for char in name:
        category = unicodedata.category(char)
        if category == "So":
            symbol = True
        elif category not in EMOJI_PARTS and char != ZWJ:
            return (
                f"{name!r} is neither an emoji nor a short name (a-z, 0-9, '-', "
                "'_', 16 at most, starting with a letter)."
            )
    return None if symbol else f"{name!r} is not an emoji."


def parse(value) -> tuple[list[str], list[str]]:
    """(the reactions, the problems) of a ``LIKES_REACTIONS`` value."""
    if isinstance(value, list | tuple):
        names = [str(v).strip() for v in value]
    else:
        names = [part.strip() for part in str(value or "").split(",")]
    names = [unicodedata.normalize("NFC", n) for n in names if n]
    problems = [error for n in names if (error := name_error(n))]
    seen, kept = set(), []
    for name in names:
        if key(name) in seen:
            problems.append(f"{name!r} is listed twice.")
        else:
            seen.add(key(name))
            kept.append(name)
    if len(kept) > MAX_REACTIONS:
        problems.append(f"At most {MAX_REACTIONS} reactions; got {len(kept)}.")
    return ([] if problems else kept), problems


@functools.lru_cache(maxsize=4)
def _configured(value: str | tuple) -> tuple[tuple[str, ...], dict[str, str]]:
    names, _ = parse(list(value) if isinstance(value, tuple) else value)
    return tuple(names), {key(n): n for n in names}


def _list(value: str | None):
    """A site's own list, or (None, or empty) the setting's."""
    value = value or conf.REACTIONS
    return tuple(value) if isinstance(value, list) else value


def configured(value: str | None = None) -> tuple[str, ...]:
    """The reactions of a list (default ``LIKES_REACTIONS``), in its order."""
    return _configured(_list(value))[0]


def resolve(name, value: str | None = None) -> str | None:
    """The reaction of a list (default ``LIKES_REACTIONS``) a client's ``name``
    is, or None."""
    if not isinstance(name, str) or len(name) > 64:
        return None
    return _configured(_list(value))[1].get(key(name))
