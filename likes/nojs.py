"""The like button without JavaScript: a plain form POST and a 303 back.

The Hugo partial wraps the button in ``<form method="post">`` with two hidden
fields, ``title`` and ``return`` (the page's URL). A browser submitting it asks
for HTML (``Accept: text/html…``); the widget, when it runs, stops the form and
calls the API itself.
"""

from http import HTTPStatus
from urllib.parse import urlsplit

from django.http import HttpResponse, HttpResponseRedirect
from django.utils.html import escape

PAGE = (
    '<!doctype html><html lang="en"><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width">'
    "<title>{title}</title><p>{message}</p>"
)


def is_form_post(request) -> bool:
    """A browser form's navigation, not a script's call (which asks for */* or JSON)."""
    return "text/html" in request.META.get("HTTP_ACCEPT", "")


def origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username or parts.password:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def return_url(request, *, allowed) -> str | None:
    """Where to send the browser back, or None when the page may not like here.

    The page's origin is the ``Origin`` header (browsers send it with a form
    POST), or without one the ``return`` page's; it must pass ``allowed``
    (``null`` never does). The
    ``return`` page is used when it is of that same origin; otherwise the
    origin's home page.
    """
    origin = request.META.get("HTTP_ORIGIN")
    back = request.POST.get("return", "") if _is_form_body(request) else ""
    back_origin = origin_of(back) if back and len(back) <= 2000 else None
    if origin is None:  # an older browser: the page's own claim
        origin = back_origin
    # "null" (a sandboxed or privacy-sensitive page) names no site: refused.
    if not origin or not allowed(origin):
        return None
    if back_origin == origin and not any(c in back for c in "\r\n\x00"):
        return back
    return origin + "/"


def _is_form_body(request) -> bool:
    return request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    )


def see_other(url: str) -> HttpResponse:
    response = HttpResponseRedirect(url, status=HTTPStatus.SEE_OTHER)
    response.status_code = HTTPStatus.SEE_OTHER
    response["Cache-Control"] = "no-store"
    return response


def page(status: int, message: str, headers=None) -> HttpResponse:
    """A short HTML answer for a person who pressed the button without JavaScript."""
    title = f"{int(status)} {HTTPStatus(status).phrase}"
    response = HttpResponse(
        PAGE.format(title=escape(title), message=escape(message)),
        status=status,
        content_type="text/html; charset=utf-8",
        headers=headers,
    )
    response["Cache-Control"] = "no-store"
    return response
