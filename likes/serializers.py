"""Schemas of the API's JSON answers, for the OpenAPI description."""

from rest_framework import serializers


class PostCountSerializer(serializers.Serializer):
    post_id = serializers.CharField()
    likes = serializers.IntegerField(min_value=0)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
