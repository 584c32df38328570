from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from station import services
from station.admin_base import StudioScopedAdmin, local_time, scoped_filter, service_action
from station.models import Alert, Node, Studio, StudioMembership


class MembershipInline(admin.TabularInline):
    model = StudioMembership
    extra = 0
    autocomplete_fields = ["user"]

    def has_view_permission(self, request, obj=None):
        return True

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Studio)
class StudioAdmin(StudioScopedAdmin):
    list_display = ["name", "slug", "time_zone", "local_clock", "member_count"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["local_clock", "created_at"]
    inlines = [MembershipInline]

    @admin.display(description=_("local time"))
    def local_clock(self, studio):
        return local_time(studio.local_now(), studio.zone)

    @admin.display(description=_("members"))
    def member_count(self, studio):
        return studio.memberships.count()

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser  # a studio takes all its recorders, channels and media with it


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    """Media hosts serve every studio: staff may look, only superusers change them."""

    list_display = ["name", "hostname", "capabilities", "online", "last_heartbeat_at", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "hostname"]
    readonly_fields = ["last_heartbeat_at", "agent_version", "created_at"]

    @admin.display(boolean=True, description=_("online"))
    def online(self, node):
        return node.is_online()

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff


@admin.register(Alert)
class AlertAdmin(StudioScopedAdmin):
    list_display = ["created_at", "severity", "studio", "subject", "message", "acknowledged_at", "acknowledged_by"]
    list_filter = ["severity", ("acknowledged_at", admin.EmptyFieldListFilter), scoped_filter("studio")]
    search_fields = ["message", "subject", "code"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "acknowledged_at", "acknowledged_by"]
    actions = ["acknowledge"]

    @service_action(_("Acknowledge selected alerts"))
    def acknowledge(alert, request):
        services.alert_acknowledge(alert=alert, user=request.user)
