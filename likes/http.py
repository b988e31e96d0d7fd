"""The one place that shapes JSON responses and errors.

Errors are ``{"detail": ..., "code": ...}``: the shape the original service
(FastAPI) and DRF both answer, so clients that read ``detail`` keep working.
"""

import hashlib
from functools import wraps
from http import HTTPStatus

from django.http import JsonResponse
from django.utils.cache import (
    get_conditional_response,
    patch_vary_headers,
    quote_etag,
)
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from likes.conf import conf

JSON_PARAMS = {"ensure_ascii": False, "separators": (",", ":")}


def json_response(data, *, status: int = HTTPStatus.OK, headers=None) -> JsonResponse:
    return JsonResponse(
        data,
        status=status,
        headers=headers,
        safe=False,
        json_dumps_params=JSON_PARAMS,
    )


# How long a cache may keep serving a count read past its max-age while it
# fetches a fresh one (RFC 5861).
STALE_WHILE_REVALIDATE = 60


def cached_reads(view):
    """Make a view's count reads cacheable and everything else uncacheable.

    A 200 answer to GET or HEAD gets a strong ``ETag`` (a digest of its body),
    ``Cache-Control: public, max-age=<LIKES_READ_CACHE_SECONDS>,
    stale-while-revalidate=60`` (``no-cache`` when it is 0: revalidate every time) and
    ``Vary: Origin``, and a matching ``If-None-Match`` gets a 304 without the
    body. Any other answer (a like, an unlike, an error, a 429) gets
    ``Cache-Control: no-store``, so no browser or CDN keeps it.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code != HTTPStatus.OK or request.method not in (
            "GET",
            "HEAD",
        ):
            response.headers.setdefault("Cache-Control", "no-store")
            return response
        seconds = conf.READ_CACHE_SECONDS
        headers = response.headers
        headers["ETag"] = etag = quote_etag(
            hashlib.blake2b(response.content, digest_size=16).hexdigest()
        )
        headers["Cache-Control"] = (
            f"public, max-age={seconds}, "
            f"stale-while-revalidate={STALE_WHILE_REVALIDATE}"
            if seconds > 0
            else "no-cache"
        )
        if "Vary" in headers:
            patch_vary_headers(response, ("Origin",))
        else:
            headers["Vary"] = "Origin"
        if "HTTP_IF_NONE_MATCH" not in request.META:  # the only validator
            return response
        return get_conditional_response(request, etag=etag, response=response)

    return wrapper


def error_body(*, code: str, detail: str, **extra) -> dict:
    return {"detail": detail, "code": code, **extra}


def error_response(
    status: int, *, code: str, detail: str, headers: dict | None = None, **extra
) -> JsonResponse:
    """Return a JSON error response for plain Django views and middleware."""
    return json_response(
        error_body(code=code, detail=detail, **extra), status=status, headers=headers
    )


def method_not_allowed(request, allowed: list[str]) -> JsonResponse:
    return error_response(
        HTTPStatus.METHOD_NOT_ALLOWED,
        code="method_not_allowed",
        detail=f'Method "{request.method}" not allowed.',
        headers={"Allow": ", ".join(allowed)},
    )


def exception_handler(exc, context):
    """DRF exception handler that answers every API error in the shared shape."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError) and not isinstance(exc.detail, str):
        response.data = error_body(
            code="invalid", detail="Invalid input.", errors=exc.detail
        )
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        detail = getattr(exc, "detail", exc)
        if isinstance(detail, dict) and "detail" in detail:
            # Already {"detail", "code", ...} (simplejwt's token errors).
            codes, detail = detail.get("code"), detail["detail"]
        response.data = error_body(
            code=str(codes) if isinstance(codes, str) else "error",
            detail=str(detail),
        )
    return response


def bad_request(request, exception=None):
    return error_response(
        HTTPStatus.BAD_REQUEST, code="bad_request", detail="Bad request."
    )


def permission_denied(request, exception=None):
    return error_response(
        HTTPStatus.FORBIDDEN, code="permission_denied", detail="Forbidden."
    )


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: the admin's refused form posts answer JSON too."""
    return error_response(
        HTTPStatus.FORBIDDEN,
        code="csrf_failed",
        detail=f"CSRF verification failed: {reason or 'no reason given'}. "
        "Reload the page and submit the form again.",
    )


def not_found(request, exception=None):
    return error_response(HTTPStatus.NOT_FOUND, code="not_found", detail="Not found.")


def server_error(request):
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        code="server_error",
        detail="Internal server error.",
    )
