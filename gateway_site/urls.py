from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from gateway_site import views
from gateway_site.gateway import views as gateway_views
from gateway_site.metrics import metrics_view

# The public likes API first: it takes nearly all the traffic.
urlpatterns = [
    path("", include("likes.urls")),
    path("health", views.health, name="health"),
    path("ready", views.ready, name="ready"),
    # /gateway and /services/… are the gateway's data plane (gateway_site/asgi.py).
    path(
        "dashboard",
        RedirectView.as_view(pattern_name="admin:likes_dashboard", permanent=False),
    ),
    path("admin/", admin.site.urls),
    path("api/schema/", views.SchemaView.as_view(), name="schema"),
    # Gateway authentication (JWT).
    path("token", gateway_views.TokenView.as_view(), name="token"),
    path(
        "token/refresh", gateway_views.TokenRefreshView.as_view(), name="token-refresh"
    ),
    path("users/me", gateway_views.users_me, name="users-me"),
    path("metrics", metrics_view, name="metrics"),
]

handler400 = "likes.http.bad_request"
handler403 = "likes.http.permission_denied"
handler404 = "likes.http.not_found"
handler500 = "likes.http.server_error"
