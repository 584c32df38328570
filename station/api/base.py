"""Building blocks every app's API uses: UTC times, model validation, studio-scoped viewsets."""

import copy
from datetime import UTC

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers, viewsets

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
        for field in fields.values():
            queryset = getattr(field, "queryset", None)
            if request is not None and isinstance(queryset, StudioScopedQuerySet):
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
            for problem in _problems(error):
                conflict = UserError(problem.code or "invalid", problem.message, problem.params)
                if is_conflict(conflict):
                    raise conflict from error
            raise
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


def _problems(error: DjangoValidationError) -> list[DjangoValidationError]:
    if hasattr(error, "error_dict"):
        return [problem for problems in error.error_dict.values() for problem in problems]
    return list(error.error_list)


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
