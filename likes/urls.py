from django.urls import path, register_converter

from likes import views
from likes.api import StatsViewSet


class AnyTextConverter:
    """Match any non-empty text, newlines and slashes included.

    The view validates the id and answers bad ones with a JSON 400 instead of
    letting them fall through to a 404.
    """

    regex = r"[\s\S]+"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(AnyTextConverter, "anytext")

app_name = "likes"

urlpatterns = [
    path("likes", views.like_batch),
    path("likes/", views.like_batch, name="batch"),
    path("likes/<anytext:post_id>", views.like_detail, name="detail"),
    # Not under /likes/, where "popular" is a valid post id.
    path("api/popular", views.popular, name="popular"),
    path("api/stats", StatsViewSet.as_view({"get": "list"}), name="stats"),
]
