from django.urls import path, register_converter

from likes.api import LikeViewSet, StatsViewSet


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

batch = LikeViewSet.as_view({"get": "list", "post": "missing_post_id"})
detail = LikeViewSet.as_view({"get": "retrieve", "post": "like"})

urlpatterns = [
    path("likes", batch),
    path("likes/", batch, name="batch"),
    path("likes/<anytext:post_id>", detail, name="detail"),
    path("api/stats", StatsViewSet.as_view({"get": "list"}), name="stats"),
]
