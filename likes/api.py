"""The stats API (DRF): every post with its count, for dashboards and scripts."""

from rest_framework import viewsets
from rest_framework.response import Response

from likes.models import Post
from likes.permissions import HasStatsAPIKey


class StatsViewSet(viewsets.ViewSet):
    """All posts with their counts, most liked first (the original dashboard's feed)."""

    authentication_classes = ()
    permission_classes = (HasStatsAPIKey,)

    def list(self, request):
        return Response(list(Post.objects.top().values("post_id", "likes")))
