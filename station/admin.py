from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery
from django.utils.html import format_html_join, mark_safe
from django.utils.translation import gettext_lazy as _

from station import calendars, services, webhooks
from station.admin_base import StudioScopedAdmin, local_time, scoped_filter, service_action
from station.errors import UserError
from station.login_throttle import LoginLocked, client_address, login_attempt
from station.models import Alert, EventType, Node, Studio, StudioMembership, Webhook, WebhookDelivery


class LimitedAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login, under the failed-login limiter the API's token endpoint shares (station.login_throttle)."""

    def clean(self):
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()  # no password checked: the missing field is the error
        try:
            with login_attempt(username=username, address=client_address(self.request)):
                return super().clean()
        except LoginLocked as locked:
            raise ValidationError(str(locked), code=locked.code) from locked


admin.site.login_form = LimitedAdminAuthenticationForm


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
    readonly_fields = ["local_clock", "calendar_feeds", "created_at"]
    inlines = [MembershipInline]
    actions = ["new_calendar_token"]

    @admin.display(description=_("local time"))
    def local_clock(self, studio):
        return local_time(studio.local_now(), studio.zone)

    @admin.display(description=_("calendar feeds"))
    def calendar_feeds(self, studio):
        if studio.pk is None:
            return "-"
        return format_html_join(mark_safe("<br>"), '{}: <a href="{}">{}</a>',
                                ((name, url, url) for name, url in calendars.studio_feed_urls(studio)))

    @admin.action(description=_("Issue new calendar tokens (the old private feed addresses stop working)"),
                  permissions=["change"])
    def new_calendar_token(self, request, queryset):
        for studio in queryset:
            services.studio_new_calendar_token(studio=studio)
        self.message_user(request, _("New calendar tokens issued for %(count)d studios.") % {"count": queryset.count()})

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

    def has_delete_permission(self, request, obj=None):
        # a running agent would register its node again at the next heartbeat (services.node_remove)
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_online())


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


class WebhookForm(forms.ModelForm):
    event_types = forms.TypedMultipleChoiceField(choices=EventType.choices, widget=forms.CheckboxSelectMultiple,
                                                 label=_("events"), help_text=_("The events this webhook receives."))

    class Meta:
        model = Webhook
        fields = ["studio", "name", "url", "event_types", "enabled", "secret"]


@admin.register(Webhook)
class WebhookAdmin(StudioScopedAdmin):
    form = WebhookForm
    list_display = ["name", "studio", "url", "events", "enabled", "last_delivery"]
    list_select_related = ["studio"]
    list_filter = ["enabled", scoped_filter("studio")]
    search_fields = ["name", "url"]
    actions = ["send_test_event"]

    @admin.display(description=_("events"))
    def events(self, webhook):
        labels = dict(EventType.choices)
        return ", ".join(str(labels.get(name, name)) for name in webhook.event_types)

    def get_queryset(self, request):
        latest = WebhookDelivery.objects.filter(webhook=OuterRef("pk")).order_by("-created_at")
        return super().get_queryset(request).annotate(last_status=Subquery(latest.values("status")[:1]),
                                                      last_at=Subquery(latest.values("created_at")[:1]))

    @admin.display(description=_("last delivery"))
    def last_delivery(self, webhook):
        if webhook.last_status is None:
            return "—"
        status = WebhookDelivery.Status(webhook.last_status).label
        return f"{status} ({local_time(webhook.last_at, webhook.studio.zone)})"

    @service_action(_("Send a test event"))
    def send_test_event(webhook, request):
        delivery = webhooks.send_test(webhook)
        if delivery.status != WebhookDelivery.Status.SUCCEEDED:
            raise UserError("test_not_received", _("%(webhook)s did not take the test event: %(error)s"),
                            {"webhook": webhook.name, "error": delivery.last_error})


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(StudioScopedAdmin):
    list_display = ["created_at", "webhook", "event_type", "event_seq", "status", "attempts", "last_status_code",
                    "last_error", "next_attempt_at", "delivered_at"]
    list_filter = ["status", "event_type", scoped_filter("webhook")]
    date_hierarchy = "created_at"
    actions = ["retry_now"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    @service_action(_("Retry now"))
    def retry_now(delivery, request):
        webhooks.retry_now(delivery)
