"""Liveness and readiness."""

from __future__ import annotations

from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.response import Response

_STATUS = inline_serializer("Health", {"status": serializers.CharField()})


@extend_schema(summary="Liveness", responses={200: _STATUS}, auth=[])
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def healthz(request):
    return Response({"status": "ok"})


@extend_schema(
    summary="Liveness of the v1 API",
    responses={
        200: inline_serializer(
            "HealthV1", {"status": serializers.CharField(), "version": serializers.CharField()}
        )
    },
    auth=[],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def healthz_v1(request):
    return Response({"status": "ok", "version": "v1"})


@extend_schema(
    summary="Readiness: the database answers",
    responses={
        200: inline_serializer("Ready", {"status": serializers.CharField(),
                                         "database": serializers.CharField()}),
        503: inline_serializer("NotReady", {"status": serializers.CharField(),
                                            "detail": serializers.CharField(),
                                            "message": serializers.CharField()}),
    },
    auth=[],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def readyz(request):
    """200 when the database answers, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return Response(
            {
                "status": "unavailable",
                "detail": "database_unavailable",
                "message": f"The database does not answer: {exc.__class__.__name__}",
            },
            status=503,
        )
    return Response({"status": "ok", "database": connection.vendor})
