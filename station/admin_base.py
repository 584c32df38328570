"""Admin building blocks: studio scoping, local times, and actions that call services."""

import functools

from django.contrib import admin, messages
from django.http import Http404
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.utils.translation import ngettext

from station.errors import UserError, constraint_errors
from station.models import StudioScopedQuerySet
from station.selectors import is_member, is_operator
from station.services import record_edit_save


def scoped_filter(path: str):
    """A list filter offering only related rows the user can see (never other studios' names)."""
    return (path, admin.RelatedOnlyFieldListFilter)


def _scoped_choices(db_field, request, kwargs) -> dict:
    related = db_field.related_model
    if isinstance(related._default_manager.all(), StudioScopedQuerySet):
        kwargs.setdefault("queryset", related._default_manager.editable_by(request.user))
    return kwargs


class StudioScopedAdmin(admin.ModelAdmin):
    """Staff see the rows of the studios they belong to and change those where they operate.

    Superusers see and change everything. Permissions come from studio
    membership, not from Django's per-model permissions: belonging to a studio
    is what entitles a person to its recorders and channels.
    """

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Missing, malformed or another studio's: the same answer, so ids reveal nothing.
            raise Http404(_("No such object in your studios."))
        return obj

    def save_model(self, request, obj, form, change):
        """Write only what the form changed, so a concurrent agent's status change survives a save."""
        with constraint_errors():
            record_edit_save(record=obj, fields=form.changed_data if change else None)

    def save_related(self, request, form, formsets, change):
        with constraint_errors():
            super().save_related(request, form, formsets, change)

    def has_module_permission(self, request):
        return request.user.is_active and (request.user.is_superuser or is_member(request.user))

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        if not is_member(request.user):
            return False
        return obj is None or self._visible(request, obj)

    def has_add_permission(self, request):
        return request.user.is_superuser or is_operator(request.user)

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        if obj is None:
            return is_operator(request.user)
        return self.model._default_manager.editable_by(request.user).filter(pk=obj.pk).exists()

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **_scoped_choices(db_field, request, kwargs))

    def _visible(self, request, obj) -> bool:
        return self.model._default_manager.visible_to(request.user).filter(pk=obj.pk).exists()


class ReadOnlyScopedAdmin(StudioScopedAdmin):
    """Rows the system writes (logs, sessions, timelines): people read them, never edit them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StudioScopedInline(admin.TabularInline):
    """An inline whose foreign-key choices are limited to the user's studios."""

    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **_scoped_choices(db_field, request, kwargs))

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser or is_operator(request.user)

    def has_change_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_add_permission(request, obj)

    def has_view_permission(self, request, obj=None):
        return True


def service_action(description: str, *, permissions=("change",)):
    """Make an admin action that calls ``service(obj)`` for each selected row and reports each outcome."""

    def decorate(service):
        @admin.action(description=description, permissions=permissions)
        @functools.wraps(service)
        def action(modeladmin, request, queryset):
            done = 0
            for obj in queryset:
                if not modeladmin.has_change_permission(request, obj):
                    messages.error(request, _("You may not change %(object)s.") % {"object": obj})
                    continue
                try:
                    service(obj, request)
                except UserError as error:
                    messages.error(request, str(error))
                else:
                    done += 1
            if done:
                messages.success(
                    request,
                    ngettext("%(action)s: done for %(count)d item.", "%(action)s: done for %(count)d items.", done)
                    % {"action": description, "count": done},
                )

        return action

    return decorate


def row_action(description: str, service, row_keyword: str, **options):
    """An admin action that calls ``service(<row_keyword>=row)`` for each selected row, as ``service_action`` does."""
    return service_action(description, **options)(lambda row, request: service(**{row_keyword: row}))


def local_time(value, zone) -> str:
    """Render an instant in a studio's zone with its abbreviation, e.g. '2026-03-29 07:00 BST'."""
    if value is None:
        return "—"
    local = timezone.localtime(value, zone)
    return f"{date_format(local, 'Y-m-d H:i')} {local.tzname()}"


class WindowAdminMixin:
    """List columns for rows with a recurring window, shown in the row's own studio's time."""

    @admin.display(description=_lazy("starts (studio time)"), ordering="start_at")
    def local_start(self, window):
        return local_time(window.start_at, window.studio_zone())

    @admin.display(description=_lazy("ends (studio time)"), ordering="end_at")
    def local_end(self, window):
        return local_time(window.end_at, window.studio_zone())

    @admin.display(description=_lazy("next window"))
    def next_window(self, window):
        if not window.pk:
            return "—"
        try:
            following = window.following_window()
        except UserError as error:
            return str(error)  # a rule written past validation (a raw UPDATE): one row says why, the list still shows
        return local_time(following[0], window.studio_zone()) if following else "—"
