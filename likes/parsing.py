"""Request bodies as JSON: the one parser (no framework import, so DRF can use it)."""

import json


def parse_json(raw: bytes | str):
    """A request body's JSON, or ValueError: malformed, too deep, or unusable text.

    The one parser of request bodies. ``json.loads`` raises RecursionError on
    thousands of nested brackets, and accepts lone surrogates (``"\\ud800"``)
    that no database, service or log can encode: both are the client's mistake.
    """
    try:
        data = json.loads(raw)
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise ValueError("The JSON is nested too deeply.") from None
    except UnicodeError:
        raise ValueError("The JSON holds text that is not valid Unicode.") from None
    return data
