"""The stats API (DRF): every post with its count, for dashboards and scripts."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from likes import sites
from likes.models import Post
from likes.permissions import HasStatsAPIKey
from likes.serializers import ErrorSerializer, PostCountSerializer


class StatsViewSet(viewsets.ViewSet):
    """All posts with their counts, most liked first (the original dashboard's feed)."""

    authentication_classes = ()
    permission_classes = (HasStatsAPIKey,)

    @extend_schema(
        operation_id="stats_list",
        responses={
            200: PostCountSerializer(many=True),
            403: OpenApiResponse(
                ErrorSerializer, description="Missing or wrong X-API-Key"
            ),
        },
    )
    def list(self, request):
        # A site's key reads its site; an instance-wide key (or ADMIN_API_KEY)
        # reads the one ``?site=`` names, else the default site.
        scoped = getattr(request._request, "likes_key_site_id", None)
        try:
            site = sites.named(request.query_params.get("site"))
        except sites.UnknownSite as exc:
            raise NotFound(f"No site {str(exc)[:64]!r}.") from None
        named = request.query_params.get("site")
        if scoped is not None and named and site.id != scoped:
            raise PermissionDenied("This key reads another site's stats.")
        site_id = scoped if scoped is not None else site.id
        posts = Post.objects.filter(site_id=site_id)
        return Response(list(posts.top().values("post_id", "likes")))
