from django.contrib import admin
from rest_framework_api_key import models as library_models
from rest_framework_api_key.admin import APIKeyModelAdmin

from likes.models import APIKey, Post

# The library's own key model is unused: ours adds "last used".
if admin.site.is_registered(library_models.APIKey):
    admin.site.unregister(library_models.APIKey)


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ("post_id", "likes", "last_liked_at")
    ordering = ("-likes", "post_id")
    search_fields = ("post_id",)
    readonly_fields = ("created_at", "last_liked_at")


@admin.register(APIKey)
class APIKeyAdmin(APIKeyModelAdmin):
    """Create (the key is shown once), revoke and review stats API keys."""

    list_display = (*APIKeyModelAdmin.list_display, "last_used_at")

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "last_used_at")
