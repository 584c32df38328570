"""Filtering: django-filter with instants read as UTC, so any valid ISO 8601 offset reaches the database safely,
and related rows chosen among those the user sees."""

from datetime import UTC

from django import forms
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_filters import fields
from django_filters import rest_framework as filters
from django_filters.filters import QuerySetRequestMixin

from station.models import StudioScopedQuerySet


class UTCDateTimeFormField(fields.IsoDateTimeField):
    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            # PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows; the same instant in UTC is fine.
            return value.astimezone(UTC)
        except OverflowError as error:
            raise forms.ValidationError(_("This date and time is out of range."), code="overflow") from error


class UTCDateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 instant with its offset (e.g. 2026-03-29T07:00:00+01:00), compared in UTC."""

    field_class = UTCDateTimeFormField


class StationFilterSet(filters.FilterSet):
    """Filters whose related rows (``?studio=``, ``?recorder=``…) are those the user sees.

    Another studio's id is then "not one of the available choices" (400), as a missing one is:
    matching every id would answer 200 for rows that exist elsewhere and 400 for missing ones,
    telling a member of one studio which ids the others have.
    """

    FILTER_DEFAULTS = {**filters.FilterSet.FILTER_DEFAULTS, models.DateTimeField: {"filter_class": UTCDateTimeFilter}}

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, request=request, **kwargs)
        user = getattr(request, "user", None)
        if user is None:
            return
        for list_filter in self.filters.values():  # this filter set's own copies
            if isinstance(list_filter, QuerySetRequestMixin) and isinstance(list_filter.queryset, StudioScopedQuerySet):
                list_filter.queryset = list_filter.queryset.visible_to(user)


class StationFilterBackend(filters.DjangoFilterBackend):
    """django-filter's backend, building filter sets for ``filterset_fields`` from StationFilterSet."""

    filterset_base = StationFilterSet

    def filter_queryset(self, request, queryset, view):
        # A filter given no value leaves the rows as they are, so a request naming none of the
        # filters skips building the filter set and its form (a copy of every filter, per request).
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None or not any(name in request.query_params for name in filterset_class.base_filters):
            return queryset
        return super().filter_queryset(request, queryset, view)
