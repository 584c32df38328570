"""Building blocks every app's API uses: UTC times, model validation, studio-scoped viewsets."""

import copy
import difflib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache

from django.contrib.postgres.constraints import ExclusionConstraint
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models.query_utils import DeferredAttribute
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from rest_framework import ISO_8601, mixins, serializers, viewsets
from rest_framework.fields import get_error_detail
from rest_framework.relations import PrimaryKeyRelatedField, RelatedField
from rest_framework.response import Response
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings

from station.api.errors import is_conflict
from station.api.permissions import StudioPermission
from station.errors import UserError, constraint_errors
from station.models import StudioScopedQuerySet
from station.services import record_edit_save


class UTCDateTimeField(serializers.DateTimeField):
    """Instants in UTC ISO 8601 ("…Z"); a time given without an offset is read as UTC."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default_timezone", UTC)
        super().__init__(**kwargs)
        self.writes_iso_8601 = str(getattr(self, "format", api_settings.DATETIME_FORMAT)).lower() == ISO_8601

    def to_representation(self, value):
        if self.writes_iso_8601 and isinstance(value, datetime) and value.tzinfo is not None:
            # DRF's own output, without its per-value settings and time zone look-ups (a list has hundreds)
            text = value.astimezone(UTC).isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return super().to_representation(value)


FORM_ONLY_FIELDS = {"csrfmiddlewaretoken"}  # what the browsable API's HTML forms send beside the fields


class RefusesUnknownFields:
    """A serializer mixin: a write naming a field the serializer doesn't have is refused (400 ``unknown_field``).

    A misspelt field silently ignored is a write that did something else than asked (``timezone``
    for ``time_zone``: a studio in UTC). Read-only fields (``id``, ``status``, ``created_at``…) are
    known and still ignored, so a row read from the API can be sent back as it is.
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = data.keys() - self.fields.keys() - FORM_ONLY_FIELDS  # one set difference: a correct write costs no more
            if unknown:
                raise UnknownFields(sorted(unknown), writable=[name for name, field in self.fields.items()
                                                               if not field.read_only])
        return super().to_internal_value(data)


class UnknownFields(UserError):
    """Fields a write named that its serializer doesn't have, each with the closest writable field (difflib).

    A UserError rather than a ValidationError: DRF rebuilds validation errors from their messages
    and codes, and the field and its suggestion are ``params`` a client can act on.
    """

    def __init__(self, unknown: list[str], *, writable: list[str]):
        self.fields, first = {}, None
        for name in unknown:
            suggestion = next(iter(difflib.get_close_matches(name, writable, n=1)), None)
            template = (_("Unknown field %(field)s; did you mean %(suggestion)s?") if suggestion
                        else _("Unknown field %(field)s."))
            params = {"field": name, "suggestion": suggestion}
            self.fields[name] = [str(template) % params]
            first = first or (template, params)
        if len(unknown) == 1:
            super().__init__("unknown_field", *first)
        else:
            super().__init__("unknown_field", _("Unknown fields %(fields)s; see fields."),
                             {"fields": ", ".join(unknown)})


class IdRelatedField(PrimaryKeyRelatedField):
    """A related row by its id, a whole number: Django would read ``1.5`` as row 1."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, float) and not data.is_integer()):  # true is no row 1
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


class StationModelSerializer(RefusesUnknownFields, serializers.ModelSerializer):
    """A model serializer that refuses what the admin refuses and writes only what it was given.

    - A field it doesn't have is refused (RefusesUnknownFields).
    - Related rows are chosen among those the user may change (another studio's id reads as
      "does not exist").
    - The model's ``clean()`` and constraints run before saving; an overlap with another row is a
      409 conflict, anything else a 400 field error.
    - An update saves only the fields it was given, so an agent's concurrent status change survives.
    """

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping, models.DateTimeField: UTCDateTimeField}
    serializer_related_field = IdRelatedField

    def get_fields(self):
        # DRF builds every field from the model's metadata for each serializer instance (a third of a
        # write's time); here they depend on the class and the language (unique validators' messages
        # are rendered when built) alone, so each request copies them.
        fields = copy.deepcopy(self._fields_of_class(translation.get_language()))
        request = self.context.get("request")
        if request is None or request.method in SAFE_METHODS:
            return fields  # reads never look related rows up
        for field in fields.values():
            queryset = field.queryset.all() if getattr(field, "queryset", None) is not None else None
            if isinstance(queryset, StudioScopedQuerySet):
                field.queryset = queryset.editable_by(request.user)
        return fields

    @classmethod
    @cache
    def _fields_of_class(cls, language: str | None) -> dict[str, serializers.Field]:
        return serializers.ModelSerializer.get_fields(cls())

    def validate(self, attrs):
        attrs = super().validate(attrs)
        candidate = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        for name, value in attrs.items():
            setattr(candidate, name, value)
        # Overlaps are left to the database: the write checks them anyway, and a violation answers
        # the same 409 (perform_create), without a look-up of its own before every write.
        candidate.get_constraints = lambda: [
            (model, [c for c in constraints if not isinstance(c, ExclusionConstraint)])
            for model, constraints in type(candidate).get_constraints(candidate)]
        try:
            candidate.clean()
            candidate.validate_constraints()
        except DjangoValidationError as error:
            raise _as_api_error(error) from error
        return attrs

    def update(self, instance, validated_data):
        for name, value in validated_data.items():
            setattr(instance, name, value)
        record_edit_save(record=instance, fields=validated_data)
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


class RowReader:
    """A list serializer's output read straight from ``values()`` rows, for serializers of plain columns.

    A list of 100 rows spends most of its time building model instances and walking DRF's
    per-field machinery; the same fields' ``to_representation`` over the column values give the
    same output at a fraction of the cost. A serializer with anything else (nested or method
    fields, dotted sources, files, custom attribute access) gets None and is served as usual.
    """

    def __init__(self, columns: list[tuple[str, str, Callable | None]]):
        self.columns = columns  # (output name, values() key, convert or None to pass the value as it is)

    @staticmethod
    @cache
    def for_serializer(serializer_class: type[serializers.ModelSerializer]) -> "RowReader | None":
        if not issubclass(serializer_class, serializers.ModelSerializer):
            return None
        model = serializer_class.Meta.model
        columns = []
        for name, field in serializer_class().fields.items():
            if field.write_only:
                continue
            column = _plain_column(model, field)
            if column is None:
                return None
            columns.append((name, *column))
        return RowReader(columns)

    def rows(self, queryset: models.QuerySet) -> "CountedRows":
        return CountedRows(queryset, queryset.values(*dict.fromkeys(source for _, source, _ in self.columns)))

    def represent(self, rows) -> list[dict]:
        return [{name: row[source] if convert is None or row[source] is None else convert(row[source])
                 for name, source, convert in self.columns} for row in rows]


class CountedRows:
    """A page's column values, counted on the rows themselves: a count needs none of the joins the columns
    do (a reverse one-to-one's id, a LEFT JOIN), and planning those joins costs more than running them."""

    def __init__(self, queryset: models.QuerySet, values: models.QuerySet):
        self.queryset, self.values = queryset, values

    def count(self) -> int:
        return self.queryset.count()

    @property
    def ordered(self) -> bool:
        return self.values.ordered

    def __getitem__(self, item):
        return self.values[item]

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def _plain_column(model, field) -> tuple[str, Callable | None] | None:
    """(values() key, convert) when ``field`` shows a model column as it is stored, else None."""
    if "." in field.source or field.source == "*":
        return None
    try:
        model_field = model._meta.get_field(field.source)
    except FieldDoesNotExist:
        return None  # a property or an annotation
    if isinstance(field, PrimaryKeyRelatedField) and model_field.one_to_one and not model_field.concrete:
        return (field.source, None) if _plain_key(field) else None  # the other side's id: values() joins it
    if not model_field.concrete or model_field.many_to_many:
        return None
    if isinstance(field, PrimaryKeyRelatedField):
        plain = (model_field.many_to_one or model_field.one_to_one) and _plain_key(field)
        return (field.source, None) if plain else None
    if model_field.is_relation or model_field.descriptor_class is not DeferredAttribute:
        return None  # files and other columns read through a descriptor of their own
    if isinstance(field, serializers.BaseSerializer | serializers.SerializerMethodField | serializers.HiddenField):
        return None
    if type(field).get_attribute is not serializers.Field.get_attribute:
        return None
    if type(field) in _AS_STORED.get(type(model_field), ()):
        return field.source, None  # the column's value is already what the field would write
    return field.source, field.to_representation


def _plain_key(field: PrimaryKeyRelatedField) -> bool:
    """Whether the field shows the related row's id as it is (no pk field, no reading or writing of its own)."""
    return field.pk_field is None and (type(field).get_attribute is RelatedField.get_attribute
                                       and type(field).to_representation is PrimaryKeyRelatedField.to_representation)


# Model field → the serializer fields whose output is the stored value itself.
_AS_STORED = {
    models.CharField: (serializers.CharField,),
    models.TextField: (serializers.CharField,),
    models.SlugField: (serializers.SlugField,),
    models.BooleanField: (serializers.BooleanField,),
    models.IntegerField: (serializers.IntegerField,),
    models.PositiveIntegerField: (serializers.IntegerField,),
    models.PositiveSmallIntegerField: (serializers.IntegerField,),
    models.BigAutoField: (serializers.IntegerField,),
    models.AutoField: (serializers.IntegerField,),
    models.BigIntegerField: (serializers.IntegerField,),
}


class RowListMixin(mixins.ListModelMixin):
    """List through the serializer's RowReader when it has one; otherwise as DRF does."""

    def list(self, request, *args, **kwargs):
        reader = RowReader.for_serializer(self.get_serializer_class())
        queryset = self.filter_queryset(self.get_queryset())
        if reader is None or queryset._prefetch_related_lookups:
            page = self.paginate_queryset(queryset)
            serializer = self.get_serializer(queryset if page is None else page, many=True)
            return Response(serializer.data) if page is None else self.get_paginated_response(serializer.data)
        page = self.paginate_queryset(reader.rows(queryset))
        if page is None:
            return Response(reader.represent(reader.rows(queryset)))
        return self.get_paginated_response(reader.represent(page))


class StudioScopedReadOnlyViewSet(RowListMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Rows of the user's studios that only the station writes (the as-run log, recordings): list and read."""

    def get_queryset(self):
        return super().get_queryset().visible_to(self.request.user)


class StudioScopedViewSet(RowListMixin, viewsets.ModelViewSet):
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
