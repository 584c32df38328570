"""Building blocks every app's API uses: UTC times, model validation, studio-scoped viewsets."""

import copy
from datetime import UTC

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers, viewsets
from rest_framework.fields import get_error_detail
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings

from station.api.errors import is_conflict
from station.api.permissions import StudioPermission
from station.errors import UserError, constraint_errors
from station.models import StudioScopedQuerySet


class UTCDateTimeField(serializers.DateTimeField):
    """Instants in UTC ISO 8601 ("…Z"); a time given without an offset is read as UTC."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default_timezone", UTC)
        super().__init__(**kwargs)


class StationModelSerializer(serializers.ModelSerializer):
    """A model serializer that refuses what the admin refuses and writes only what it was given.

    - Related rows are chosen among those the user may change (another studio's id reads as
      "does not exist").
    - The model's ``clean()`` and constraints run before saving; an overlap with another row is a
      409 conflict, anything else a 400 field error.
    - An update saves only the fields it was given, so an agent's concurrent status change survives.
    """

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping, models.DateTimeField: UTCDateTimeField}

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None or request.method in SAFE_METHODS:
            return fields  # reads never look related rows up
        for field in fields.values():
            queryset = field.queryset.all() if getattr(field, "queryset", None) is not None else None
            if isinstance(queryset, StudioScopedQuerySet):
                field.queryset = queryset.editable_by(request.user)
        return fields

    def validate(self, attrs):
        attrs = super().validate(attrs)
        candidate = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        for name, value in attrs.items():
            setattr(candidate, name, value)
        try:
            candidate.clean()
            candidate.validate_constraints()
        except DjangoValidationError as error:
            raise _as_api_error(error) from error
        return attrs

    def update(self, instance, validated_data):
        for name, value in validated_data.items():
            setattr(instance, name, value)
        concrete = {field.name for field in instance._meta.concrete_fields}
        changed = [name for name in validated_data if name in concrete]
        if changed and "updated_at" in concrete:
            changed.append("updated_at")
        if changed:
            instance.save(update_fields=changed)
        return instance


def _as_api_error(error: DjangoValidationError) -> Exception:
    """The model's verdict for the API: input errors (400) come before an overlap with another row (409)."""
    by_field = error.error_dict if hasattr(error, "error_dict") else {NON_FIELD_ERRORS: error.error_list}
    invalid, conflicts = {}, []
    for name, problems in by_field.items():
        for problem in problems:
            as_user_error = UserError(problem.code or "invalid", problem.message, problem.params)
            if is_conflict(as_user_error):
                conflicts.append(as_user_error)
            else:
                invalid.setdefault(api_settings.NON_FIELD_ERRORS_KEY if name == NON_FIELD_ERRORS else name, []).append(problem)
    if invalid:
        return serializers.ValidationError(get_error_detail(DjangoValidationError(invalid)))
    return conflicts[0]


class StudioScopedViewSet(viewsets.ModelViewSet):
    """Rows of the user's studios; a constraint violated in a race answers like a validation would."""

    permission_classes = [StudioPermission]

    def get_queryset(self):
        return super().get_queryset().visible_to(self.request.user)

    def perform_create(self, serializer):
        with constraint_errors():
            serializer.save()

    def perform_update(self, serializer):
        with constraint_errors():
            serializer.save()
