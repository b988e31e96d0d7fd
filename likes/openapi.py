"""OpenAPI description of the public likes endpoints.

They are plain Django views (see likes/views.py), which drf-spectacular cannot
inspect, so their paths are written out here and appended to the generated
schema by ``add_public_paths`` (a drf-spectacular postprocessing hook).
"""

from likes.validators import POST_ID_MAX_LENGTH

# \w is Unicode-aware here (letters and digits of any script, and "_"). The
# service also accepts combining marks, which this pattern leaves out.
ID_PATTERN = r"[\w.~-]"
# One whole post id.
ID = f"{ID_PATTERN}{{1,{POST_ID_MAX_LENGTH}}}"
POST_ID = {
    "name": "post_id",
    "in": "path",
    "required": True,
    "description": f"1-{POST_ID_MAX_LENGTH} letters or digits (any script) and -_.~",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": POST_ID_MAX_LENGTH,
        "pattern": f"^{ID}$",
    },
}
SITE = {
    "name": "site",
    "in": "query",
    "required": False,
    "description": "The site's slug (several blogs on one service); default: the "
    "site of the request's Origin, else the default site.",
    "schema": {"type": "string"},
}
RATE_HEADERS = {
    name: {"schema": {"type": "string"}}
    for name in ("RateLimit", "RateLimit-Policy", "X-RateLimit-Remaining")
}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, description, headers=None):
    response = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


ERRORS = {
    "400": _json(_ref("Error"), "Bad input (post id, ids, receipt)"),
    "429": _json(
        _ref("Error"),
        "Rate limit exceeded",
        {"Retry-After": {"schema": {"type": "string"}}, **RATE_HEADERS},
    ),
}

COMPONENTS = {
    "Error": {
        "type": "object",
        "required": ["detail", "code"],
        "properties": {
            "detail": {"type": "string"},
            "code": {"type": "string"},
        },
    },
    "LikeCount": {
        "type": "object",
        "required": ["post_id", "likes"],
        "properties": {
            "post_id": {"type": "string"},
            "likes": {"type": "integer", "minimum": 0},
            "reactions": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
                "description": "Only where the site has reactions (LIKES_REACTIONS): "
                "each reaction's count, in the site's order.",
            },
        },
    },
    "LikeResult": {
        "type": "object",
        "required": ["post_id", "likes", "liked"],
        "properties": {
            "post_id": {"type": "string"},
            "likes": {"type": "integer", "minimum": 0},
            "liked": {"type": "boolean"},
            "reaction": {
                "type": "string",
                "description": "The reaction counted (a POST with ?reaction=).",
            },
            "reactions": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
                "description": "Only where the site has reactions (LIKES_REACTIONS): "
                "each reaction's count, in the site's order.",
            },
            "receipt": {
                "type": "string",
                "description": "Keep it to undo this like with DELETE.",
            },
            "duplicate": {
                "type": "boolean",
                "description": "A repeat like by the same visitor; not counted.",
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "timestamp"],
        "properties": {
            "status": {"type": "string", "enum": ["healthy"]},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    },
}

PATHS = {
    "/likes/{post_id}": {
        "get": {
            "operationId": "likes_read",
            "summary": "The like count of one post (0 if never liked).",
            "tags": ["likes"],
            "security": [],
            "parameters": [POST_ID, SITE],
            "responses": {
                "200": _json(_ref("LikeCount"), "The count", RATE_HEADERS),
                **ERRORS,
            },
        },
        "post": {
            "operationId": "likes_add",
            "summary": "Like a post (or react to it). No body needed.",
            "tags": ["likes"],
            "security": [],
            "parameters": [
                SITE,
                POST_ID,
                {
                    "name": "reaction",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Count this reaction of the site's instead of "
                    "a like (else 400 invalid_reaction).",
                },
            ],
            "requestBody": {
                "required": False,
                "description": "Optional: the page's title, shown in the dashboard "
                "(JSON, also when sent as text/plain; or a form field).",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "title": {"type": "string"},
                                "reaction": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("LikeResult"), "The count after it", RATE_HEADERS),
                "303": {
                    "description": "A browser form's like (Accept: text/html, no "
                    "JavaScript): counted, then back to its page",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                **ERRORS,
            },
        },
        "delete": {
            "operationId": "likes_remove",
            "summary": "Undo one like with its receipt.",
            "tags": ["likes"],
            "security": [],
            "parameters": [
                SITE,
                POST_ID,
                {
                    "name": "X-Like-Receipt",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "The receipt (or send {'receipt': ...} as JSON).",
                },
            ],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"receipt": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("LikeResult"), "The count after it", RATE_HEADERS),
                "403": _json(_ref("Error"), "Forged or foreign receipt"),
                **ERRORS,
            },
        },
    },
    "/likes/": {
        "get": {
            "operationId": "likes_batch",
            "summary": "The counts of up to 100 posts at once.",
            "tags": ["likes"],
            "security": [],
            "parameters": [
                SITE,
                {
                    "name": "ids",
                    "in": "query",
                    "required": True,
                    "description": "Up to 100 comma-separated post ids.",
                    "schema": {
                        "type": "string",
                        "pattern": f"^{ID}(,{ID}){{0,99}}$",
                    },
                },
            ],
            "responses": {
                "200": _json(
                    {"type": "array", "items": _ref("LikeCount")},
                    "Counts, in the order asked",
                    RATE_HEADERS,
                ),
                **ERRORS,
            },
        },
    },
    "/api/popular": {
        "get": {
            "operationId": "likes_popular",
            "summary": "The most liked posts, most liked first (public, cacheable).",
            "tags": ["likes"],
            "security": [],
            "parameters": [
                SITE,
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": "How many posts, 1 to 50 (default 10).",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 50},
                },
            ],
            "responses": {
                "200": _json(
                    {"type": "array", "items": _ref("LikeCount")},
                    "The most liked posts",
                ),
                **ERRORS,
            },
        },
    },
    "/health": {
        "get": {
            "operationId": "health",
            "summary": "Liveness.",
            "tags": ["operations"],
            "security": [],
            "responses": {"200": _json(_ref("Health"), "Alive")},
        }
    },
}


def add_public_paths(result, generator, request, public):
    """drf-spectacular postprocessing hook: append the plain views' paths."""
    result.setdefault("paths", {}).update(PATHS)
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(COMPONENTS)
    return result
