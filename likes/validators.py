"""What a post id may look like, and its one spelling.

A post id is normalised to NFC before anything else — validation, storage,
dedupe, lookup — so the composed and decomposed spellings of "café" (which
look the same and which browsers and Hugo produce both) are one post. Case
stays significant, as Hugo's ids are.
"""

import unicodedata

# The longest post id, in characters (of the canonical form): the database
# column, the validators and the OpenAPI schema all use this one value.
POST_ID_MAX_LENGTH = 200
# A page title sent with a like is cut to this length (display only).
POST_TITLE_MAX_LENGTH = 200

# Hugo ids are ``path.Base .RelPermalink`` with "/" replaced by "-": letters and
# digits of any script plus a few unreserved URL characters.
ALLOWED_PUNCTUATION = frozenset("-_.~")


def canonical(value: str) -> str:
    """The one spelling of a post id: its NFC normal form."""
    return unicodedata.normalize("NFC", value)


def post_id_error(value: str) -> str | None:
    """Return why the (canonical) ``value`` is not a valid post id, or None."""
    if not value:
        return "post_id must not be empty."
    if len(value) > POST_ID_MAX_LENGTH:
        return f"post_id must be at most {POST_ID_MAX_LENGTH} characters."
    alphanumeric = False
    for char in value:
        if char.isalnum():
            alphanumeric = True
            continue
        if char in ALLOWED_PUNCTUATION:
            continue
        # Combining marks belong to the letter before them (a letter that NFC
        # has no composed form for).
        if unicodedata.category(char).startswith("M"):
            continue
        return f"post_id may contain only letters, digits and '-_.~'; found {char!r}."
    if not alphanumeric:
        return "post_id must contain at least one letter or digit."
    return None


def clean_post_id(value: str) -> tuple[str, str | None]:
    """(the canonical id, why it is invalid or None) of a post id as received."""
    value = canonical(value)
    return value, post_id_error(value)


def clean_title(value) -> str:
    """A page title as it may be stored and shown: NFC text on one line, without
    control characters or lone surrogates, at most POST_TITLE_MAX_LENGTH long.
    Anything that is not text is no title ("")."""
    if not isinstance(value, str):
        return ""
    kept = []
    for char in unicodedata.normalize("NFC", value):
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp") or char.isspace():
            kept.append(" ")
        elif category not in ("Cs", "Co", "Cn", "Cf"):
            kept.append(char)
    return " ".join("".join(kept).split())[:POST_TITLE_MAX_LENGTH].strip()
