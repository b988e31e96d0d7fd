"""What a post id may look like."""

import unicodedata

from likes.conf import conf

# Hugo ids are ``path.Base .RelPermalink`` with "/" replaced by "-": letters and
# digits of any script plus a few unreserved URL characters.
ALLOWED_PUNCTUATION = frozenset("-_.~")


def post_id_error(value: str) -> str | None:
    """Return why ``value`` is not a valid post id, or None when it is."""
    if not value:
        return "post_id must not be empty."
    if len(value) > conf.POST_ID_MAX_LENGTH:
        return f"post_id must be at most {conf.POST_ID_MAX_LENGTH} characters."
    for char in value:
        if char.isalnum() or char in ALLOWED_PUNCTUATION:
            continue
        # Combining marks belong to the letter before them (decomposed "é").
        if unicodedata.category(char).startswith("M"):
            continue
        return f"post_id may contain only letters, digits and '-_.~'; found {char!r}."
    return None
