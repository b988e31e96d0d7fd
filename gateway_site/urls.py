from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from gateway_site import auth, views
from gateway_site.metrics import metrics_view
from gateway_site.upstream import views as gateway_views

# The public likes API first: it takes nearly all the traffic.
urlpatterns = [
    path("", include("likes.urls")),
    path("health", views.health, name="health"),
    # API gateway: readiness, the envelope endpoint and the transparent proxy.
    path("ready", views.ready, name="ready"),
    path("gateway", gateway_views.gateway_view, name="gateway"),
    path("services/<str:service>", gateway_views.proxy, name="gateway-proxy-root"),
    path("services/<str:service>/", gateway_views.proxy),
    path(
        "services/<str:service>/<path:path>", gateway_views.proxy, name="gateway-proxy"
    ),
    path(
        "dashboard",
        RedirectView.as_view(pattern_name="admin:likes_dashboard", permanent=False),
    ),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Gateway authentication (JWT).
    path("token", auth.TokenView.as_view(), name="token"),
    path("token/refresh", auth.TokenRefreshView.as_view(), name="token-refresh"),
    path("users/me", auth.users_me, name="users-me"),
    path("metrics", metrics_view, name="metrics"),
]

handler400 = "likes.http.bad_request"
handler403 = "likes.http.permission_denied"
handler404 = "likes.http.not_found"
handler500 = "likes.http.server_error"
