"""Public likes API and the stats API."""

from rest_framework import exceptions, viewsets
from rest_framework.response import Response

from likes import services
from likes.conf import conf
from likes.models import Post
from likes.permissions import HasStatsAPIKey
from likes.validators import post_id_error


class InvalidPostId(exceptions.APIException):
    status_code = 400
    default_code = "invalid_post_id"


class InvalidBatch(exceptions.APIException):
    status_code = 400
    default_code = "invalid_ids"


def _valid_post_id(post_id: str) -> str:
    error = post_id_error(post_id)
    if error:
        raise InvalidPostId(error)
    return post_id


def _batch_ids(request) -> list[str]:
    raw = ",".join(request.query_params.getlist("ids"))
    ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not ids:
        raise InvalidBatch("Pass the post ids as ?ids=a,b,c.")
    if len(ids) > conf.BATCH_MAX:
        raise InvalidBatch(f"At most {conf.BATCH_MAX} ids per request; got {len(ids)}.")
    for post_id in ids:
        error = post_id_error(post_id)
        if error:
            raise InvalidBatch(f"{error} (in ids)")
    return ids


class LikeViewSet(viewsets.ViewSet):
    """Read and add likes. Anonymous by design: no auth, no CSRF, no body."""

    authentication_classes = ()
    permission_classes = ()

    def list(self, request):
        counts = Post.objects.counts_for(_batch_ids(request))
        return Response([{"post_id": pid, "likes": n} for pid, n in counts.items()])

    def retrieve(self, request, post_id):
        post_id = _valid_post_id(post_id)
        return Response({"post_id": post_id, "likes": Post.objects.count_for(post_id)})

    def like(self, request, post_id):
        result = services.like_add(post_id=_valid_post_id(post_id))
        return Response(
            {"post_id": result.post_id, "likes": result.likes, "liked": True}
        )

    def missing_post_id(self, request):
        raise InvalidPostId("post_id must not be empty.")


class StatsViewSet(viewsets.ViewSet):
    """All posts with their counts, most liked first (the original dashboard's feed)."""

    authentication_classes = ()
    permission_classes = (HasStatsAPIKey,)

    def list(self, request):
        return Response(list(Post.objects.top().values("post_id", "likes")))
