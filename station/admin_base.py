"""Admin building blocks: studio scoping, local times, and actions that call services."""

import functools

from django.contrib import admin, messages
from django.http import Http404
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from station.errors import UserError
from station.models import StudioMembership, StudioScopedQuerySet


def is_member(user) -> bool:
    return StudioMembership.objects.filter(user=user).exists()


def is_operator(user) -> bool:
    return StudioMembership.objects.filter(user=user, role=StudioMembership.Role.OPERATOR).exists()


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
        if obj is None and self.model._default_manager.filter(pk=object_id).exists():
            raise Http404(_("No such object in your studios."))  # don't reveal other studios' rows
        return obj

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
        related = db_field.related_model
        if isinstance(related._default_manager.all(), StudioScopedQuerySet):
            kwargs.setdefault("queryset", related._default_manager.editable_by(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _visible(self, request, obj) -> bool:
        return self.model._default_manager.visible_to(request.user).filter(pk=obj.pk).exists()


class StudioScopedInline(admin.TabularInline):
    """An inline whose foreign-key choices are limited to the user's studios."""

    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if isinstance(related._default_manager.all(), StudioScopedQuerySet):
            kwargs.setdefault("queryset", related._default_manager.editable_by(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

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


def local_time(value, zone) -> str:
    """Render an instant in a studio's zone with its abbreviation, e.g. '2026-03-29 07:00 BST'."""
    if value is None:
        return "—"
    local = timezone.localtime(value, zone)
    return f"{date_format(local, 'Y-m-d H:i')} {local.tzname()}"
