from django.contrib import admin

from likes.models import Post


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ("post_id", "likes", "last_liked_at")
    ordering = ("-likes", "post_id")
    search_fields = ("post_id",)
    readonly_fields = ("created_at", "last_liked_at")
