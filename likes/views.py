"""The public likes API: the hottest endpoints, as plain Django views.

DRF's request and response wrapping cost about as much as the rest of a GET
(tests/benchmarks measures it), so the anonymous read/like endpoints skip it.
They have no authentication, no CSRF and read no body: the original widget sends
a bare POST.
"""

from http import HTTPStatus

from django.views.decorators.csrf import csrf_exempt

from likes import services
from likes.conf import conf
from likes.http import error_response, json_response, method_not_allowed
from likes.models import Post
from likes.validators import post_id_error


def invalid_post_id(detail: str):
    return error_response(HTTPStatus.BAD_REQUEST, code="invalid_post_id", detail=detail)


def invalid_ids(detail: str):
    return error_response(HTTPStatus.BAD_REQUEST, code="invalid_ids", detail=detail)


@csrf_exempt
def like_detail(request, post_id: str):
    """GET reads one post's count; POST adds one like."""
    if request.method not in ("GET", "HEAD", "POST"):
        return method_not_allowed(request, ["GET", "HEAD", "POST", "OPTIONS"])
    error = post_id_error(post_id)
    if error:
        return invalid_post_id(error)
    if request.method == "POST":
        result = services.like_add(post_id=post_id)
        return json_response(
            {"post_id": result.post_id, "likes": result.likes, "liked": True}
        )
    return json_response({"post_id": post_id, "likes": Post.objects.count_for(post_id)})


@csrf_exempt
def like_batch(request):
    """GET /likes/?ids=a,b,c: the counts of up to LIKES_BATCH_MAX posts at once."""
    if request.method == "POST":
        return invalid_post_id("post_id must not be empty.")
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(request, ["GET", "HEAD", "OPTIONS"])
    raw = ",".join(request.GET.getlist("ids"))
    ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not ids:
        return invalid_ids("Pass the post ids as ?ids=a,b,c.")
    if len(ids) > conf.BATCH_MAX:
        return invalid_ids(f"At most {conf.BATCH_MAX} ids per request; got {len(ids)}.")
    for post_id in ids:
        error = post_id_error(post_id)
        if error:
            return invalid_ids(f"{error} (in ids)")
    counts = Post.objects.counts_for(ids)
    return json_response([{"post_id": pid, "likes": n} for pid, n in counts.items()])
