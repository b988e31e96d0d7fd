from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from gateway_site import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("dashboard", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("likes.urls")),
]

handler400 = "likes.errors.bad_request"
handler403 = "likes.errors.permission_denied"
handler404 = "likes.errors.not_found"
handler500 = "likes.errors.server_error"
