"""The public likes API: the hottest endpoints, as plain Django views.

Count reads are cacheable for ``LIKES_READ_CACHE_SECONDS`` (ETag, 304 on
If-None-Match); likes, unlikes and errors are never cached.

DRF's request and response wrapping cost about as much as the rest of a GET
(tests/benchmarks measures it), so the anonymous read/like endpoints skip it.
They have no authentication, no CSRF and a like needs no body: the original
widget sends a bare POST.
"""

import logging
from http import HTTPStatus

from django.db import OperationalError
from django.views.decorators.csrf import csrf_exempt

from likes import caps, nojs, ratelimit, services, sites
from likes.conf import conf
from likes.http import (
    cached_reads,
    error_response,
    json_response,
    method_not_allowed,
)
from likes.models import Post
from likes.parsing import parse_json
from likes.receipts import InvalidReceipt, make_receipt, read_receipt
from likes.validators import clean_post_id, clean_title

RECEIPT_HEADER = "HTTP_X_LIKE_RECEIPT"
# Bodies Django parses into request.POST (and then no longer lets be read raw).
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
logger = logging.getLogger("likes")


def invalid_post_id(detail: str):
    return error_response(HTTPStatus.BAD_REQUEST, code="invalid_post_id", detail=detail)


def invalid_ids(detail: str):
    return error_response(HTTPStatus.BAD_REQUEST, code="invalid_ids", detail=detail)


# Reads are counted in batches per worker (approximate); likes exactly.
read_budget = ratelimit.ReadBudget("likes-read")


def rate_limit(request, *, write: bool):
    """Count the request against its rate limit; fail open if the cache is down."""
    if write:
        return ratelimit.check(
            request, policy="likes-write", rate=conf.POST_RATE, fail_open=True
        )
    return read_budget.check(request, conf.GET_RATE)


def storage_unavailable(exc: OperationalError):
    """A write the database refused (a full disk, a read-only file, a lock held too
    long): a 503 to retry, never a 500. Reads are still served."""
    logger.error("A like could not be stored: %s", exc)
    return error_response(
        HTTPStatus.SERVICE_UNAVAILABLE,
        code="storage_unavailable",
        detail="The like could not be stored right now; try again shortly.",
        headers={"Retry-After": "30"},
    )


def _read(data):
    """A count read: no rate-limit headers, since a shared cache (Cloudflare)
    may hand this answer to other clients, whose limits are not these."""
    return json_response(data)


def _answer(limit, data, status=HTTPStatus.OK):
    headers = limit.headers() if limit else None
    return json_response(data, status=status, headers=headers)


@csrf_exempt
@cached_reads
def like_detail(request, post_id: str):
    """GET reads one post's count; POST adds one like; DELETE undoes one."""
    method = request.method
    if method not in ("GET", "HEAD", "POST", "DELETE"):
        return method_not_allowed(request, ["GET", "HEAD", "POST", "DELETE", "OPTIONS"])
    limit = rate_limit(request, write=method in ("POST", "DELETE"))
    form = method == "POST" and nojs.is_form_post(request)
    if limit and limit.exceeded:
        if form:
            return nojs.page(
                HTTPStatus.TOO_MANY_REQUESTS,
                "Too many likes from your network right now; try again later.",
                headers=limit.headers(),
            )
        return ratelimit.too_many_requests(limit)
    post_id, error = clean_post_id(post_id)
    if error:
        if form:
            return nojs.page(HTTPStatus.BAD_REQUEST, error)
        return invalid_post_id(error)
    if form:
        return _form_like(request, post_id, limit)
    try:
        site = sites.of_request(request)
    except sites.UnknownSite as exc:
        return unknown_site(exc)
    if error := site.post_id_error(post_id):
        return invalid_post_id(error)
    if method in ("POST", "DELETE") and not origin_allowed(request, site):
        return error_response(
            HTTPStatus.FORBIDDEN,
            code="origin_not_allowed",
            detail="Likes from this page's origin are not accepted; "
            "add it to CORS_ORIGINS (or to its site's origins).",
        )
    try:
        if method == "POST":
            return _like(request, post_id, limit, site)
        if method == "DELETE":
            return _unlike(request, post_id, limit, site)
    except OperationalError as exc:
        return storage_unavailable(exc)
    count = Post.objects.count_for(post_id, site.id)
    return _read(with_reactions({"post_id": post_id, "likes": count}, site))


def unknown_site(exc):
    return error_response(
        HTTPStatus.BAD_REQUEST,
        code="unknown_site",
        detail=f"No site {str(exc)[:64]!r} on this service.",
    )


def with_reactions(body: dict, site) -> dict:
    """A post's answer, with its ``reactions`` when the site has reactions."""
    kinds = site.kinds()
    if kinds:
        post_id = body["post_id"]
        found = Post.objects.reactions_for([post_id], kinds, site.id)
        body["reactions"] = found[post_id]
    return body


def invalid_reaction(name, site):
    kinds = site.kinds()
    offered = ", ".join(kinds) if kinds else "none (LIKES_REACTIONS is empty)"
    return error_response(
        HTTPStatus.BAD_REQUEST,
        code="invalid_reaction",
        detail=f"{str(name)[:64]!r} is not a reaction of this site; it has {offered}.",
    )


def _form_like(request, post_id, limit):
    """A like from the no-JavaScript form: counted as any like, then a 303 back
    to the page (its ``return`` field, if that page is of an allowed origin).

    Cross-site by nature, and safe so: the service sets and reads no cookie,
    the only effect is one deduplicated like, and the page's origin must be in
    CORS_ORIGINS (``Origin``, or the ``return`` page's without it)."""
    back = nojs.return_url(request, allowed=sites.origin_allowed_anywhere)
    if back is None:
        return nojs.page(
            HTTPStatus.FORBIDDEN,
            "Likes from this page are not accepted: its site is not among the "
            "service's CORS_ORIGINS.",
        )
    try:
        site = nojs_site(request, back)
    except sites.UnknownSite:
        return nojs.page(HTTPStatus.BAD_REQUEST, "No such site on this service.")
    if error := site.post_id_error(post_id):
        return nojs.page(HTTPStatus.BAD_REQUEST, error)
    try:
        _like(request, post_id, limit, site)
    except OperationalError as exc:
        storage_unavailable(exc)
        return nojs.page(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "The like could not be stored right now; try again shortly.",
            headers={"Retry-After": "30"},
        )
    return nojs.see_other(back)


def nojs_site(request, back: str):
    """A form's site: the one it names (``site`` field), else its page's origin's."""
    named = request.POST.get("site")
    if named:
        return sites.named(named)
    origin = nojs.origin_of(back) or ""
    return sites.registry.fresh().by_origin.get(origin) or sites.registry.default


def origin_allowed(request, site) -> bool:
    """A browser names the page a like comes from (``Origin``): only pages of
    the site's origins (the default site's include CORS_ORIGINS) or the
    service's own may like or unlike. Without the check a page elsewhere would
    have its like counted while its browser, refused the answer by CORS, shows
    none. Clients that send no Origin (curl, servers) are not browsers' pages
    and pass."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None or site.allows(origin):
        return True
    own = f"{request.scheme}://{request.get_host()}"
    return origin == own


def _like(request, post_id, limit, site):
    fields = _fields_from(request)
    name = request.GET.get("reaction") or fields.get("reaction")
    kind = ""
    if name:
        kind = site.resolve(name)
        if kind is None:
            return invalid_reaction(name, site)
    hashes = ()
    ip = ratelimit.client_ip(request)
    # The default site's keys are those of a single-site install.
    scope = "" if site.is_default else f"{site.id}\x1f"
    capped = f"{scope}{post_id}\x1f{kind}" if kind else f"{scope}{post_id}"
    if conf.DEDUPE:
        if caps.reached(ip=ip, post_id=capped):
            return _answer(limit, _repeat(post_id, kind, site))
        hashes = services.visitor_hashes(
            ip=ip,
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            post_id=f"{scope}{post_id}",
            kind=kind,
        )
    result = services.like_add(
        post_id=post_id,
        visitor_hashes=hashes,
        title=clean_title(fields.get("title")),
        kind=kind,
        site_id=site.id,
    )
    if result.changed and conf.DEDUPE:
        caps.counted(ip=ip, post_id=capped)
    body = {"post_id": post_id, "likes": result.likes, "liked": True}
    if kind:
        body["reaction"] = kind
    body = with_reactions(body, site)
    if result.changed:
        body["receipt"] = make_receipt(post_id=post_id, like_id=result.like_id)
    else:
        body["duplicate"] = True
    return _answer(limit, body)


def _fields_from(request) -> dict:
    """What a like may carry: ``{"title": …, "reaction": …}`` as JSON (the
    widget sends it as text/plain, a CORS-simple request) or form fields. The
    title is optional and display-only: a body that is neither is ignored, the
    like counted."""
    if request.content_type in FORM_TYPES:
        return {name: request.POST.get(name) for name in ("title", "reaction")}
    if not request.body:
        return {}
    try:
        data = parse_json(request.body)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: data.get(name) for name in ("title", "reaction")}


def _repeat(post_id, kind, site):
    """The answer to a like that is not counted: the current count."""
    body = {
        "post_id": post_id,
        "likes": Post.objects.count_for(post_id, site.id),
        "liked": True,
    }
    if kind:
        body["reaction"] = kind
    body = with_reactions(body, site)
    body["duplicate"] = True
    return body


def _receipt_from(request):
    receipt = request.META.get(RECEIPT_HEADER)
    if receipt:
        return receipt
    if not request.body:
        return None
    try:
        data = parse_json(request.body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidReceipt("The body must be JSON.", forged=False) from None
    return data.get("receipt") if isinstance(data, dict) else None


def _unlike(request, post_id, limit, site):
    try:
        like_id = read_receipt(_receipt_from(request), post_id=post_id)
    except InvalidReceipt as exc:
        status = HTTPStatus.FORBIDDEN if exc.forged else HTTPStatus.BAD_REQUEST
        return error_response(status, code="invalid_receipt", detail=str(exc))
    result = services.like_remove(post_id=post_id, like_id=like_id, site_id=site.id)
    body = with_reactions({"post_id": post_id, "likes": result.likes}, site)
    body["liked"] = False
    return _answer(limit, body)


@csrf_exempt
@cached_reads
def like_batch(request):
    """GET /likes/?ids=a,b,c: the counts of up to LIKES_BATCH_MAX posts at once."""
    if request.method == "POST":
        return invalid_post_id("post_id must not be empty.")
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(request, ["GET", "HEAD", "OPTIONS"])
    limit = rate_limit(request, write=False)
    if limit and limit.exceeded:
        return ratelimit.too_many_requests(limit)
    try:
        site = sites.of_request(request)
    except sites.UnknownSite as exc:
        return unknown_site(exc)
    raw = ",".join(request.GET.getlist("ids"))
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts:
        return invalid_ids("Pass the post ids as ?ids=a,b,c.")
    if len(parts) > conf.BATCH_MAX:
        return invalid_ids(
            f"At most {conf.BATCH_MAX} ids per request; got {len(parts)}."
        )
    ids = []
    for part in parts:
        post_id, error = clean_post_id(part)
        if error := error or site.post_id_error(post_id):
            return invalid_ids(f"{error} (in ids)")
        ids.append(post_id)
    ids = list(dict.fromkeys(ids))
    counts = Post.objects.counts_for(ids, site.id)
    items = [{"post_id": pid, "likes": n} for pid, n in counts.items()]
    if kinds := site.kinds():
        found = Post.objects.reactions_for(ids, kinds, site.id)
        for item in items:
            item["reactions"] = found[item["post_id"]]
    return _read(items)


POPULAR_MAX = 50
POPULAR_DEFAULT = 10


@csrf_exempt
@cached_reads
def popular(request):
    """GET /api/popular?limit=N: the N (1-50, default 10) most liked posts."""
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(request, ["GET", "HEAD", "OPTIONS"])
    limit = rate_limit(request, write=False)
    if limit and limit.exceeded:
        return ratelimit.too_many_requests(limit)
    try:
        site = sites.of_request(request)
    except sites.UnknownSite as exc:
        return unknown_site(exc)
    if not site.popular_public:
        return error_response(
            HTTPStatus.NOT_FOUND,
            code="not_found",
            detail="This site does not publish its most liked posts.",
        )
    raw = request.GET.get("limit", str(POPULAR_DEFAULT)).strip()
    n = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 3 else 0
    if not 1 <= n <= POPULAR_MAX:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            code="invalid_limit",
            detail=f"limit must be a whole number from 1 to {POPULAR_MAX}.",
        )
    posts = Post.objects.filter(site_id=site.id, likes__gt=0)
    rows = posts.top(n).values_list("post_id", "likes")
    return _read([{"post_id": post_id, "likes": likes} for post_id, likes in rows])
