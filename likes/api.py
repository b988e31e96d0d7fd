"""The stats API (DRF): every post with its count, for dashboards and scripts."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

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
        return Response(list(Post.objects.top().values("post_id", "likes")))
