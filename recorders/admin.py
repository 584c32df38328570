from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from recorders import services
from recorders.models import Recorder, RecorderSchedule, RecordingSession
from station.admin_base import ReadOnlyScopedAdmin, StudioScopedAdmin, StudioScopedInline, WindowAdminMixin, row_action, scoped_filter


class ScheduleInline(StudioScopedInline):
    model = RecorderSchedule
    fields = ["name", "start_at", "end_at", "recurrence", "status"]
    readonly_fields = ["status"]
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status__in=RecorderSchedule.ACTIVE_STATUSES)


@admin.register(Recorder)
class RecorderAdmin(StudioScopedAdmin):
    list_display = ["name", "studio", "source_url", "node", "output_format", "enabled"]
    list_filter = [scoped_filter("studio"), "enabled", "output_format", "node"]
    search_fields = ["name", "source_url"]
    autocomplete_fields = ["node"]
    inlines = [ScheduleInline]


@admin.register(RecorderSchedule)
class RecorderScheduleAdmin(WindowAdminMixin, StudioScopedAdmin):
    list_display = ["name", "recorder", "local_start", "local_end", "duration", "recurrence", "status", "next_window"]
    list_filter = ["status", "recurrence", scoped_filter("recorder__studio"), scoped_filter("recorder")]
    search_fields = ["name", "recorder__name"]
    date_hierarchy = "start_at"
    autocomplete_fields = ["recorder"]
    list_select_related = ["recorder__studio"]
    readonly_fields = [
        "status", "error_message", "duration", "next_window", "previous", "claimed_by", "lease_expires_at",
        "created_at", "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["recorder", "name", "start_at", "end_at", "duration"]}),
        (_("Recurrence"), {"fields": ["recurrence", "rrule", "skip_dates", "next_window", "previous"]}),
        (_("State"), {"fields": ["status", "error_message", "claimed_by", "lease_expires_at", "created_at", "updated_at"]}),
    ]
    actions = ["start_now", "stop_now", "cancel"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.timing_locked:  # use the actions instead
            return [*self.readonly_fields, "recorder", "start_at", "end_at"]
        return self.readonly_fields

    start_now = row_action(_("Start selected windows now"), services.schedule_start_now, "schedule")
    stop_now = row_action(_("Stop selected recordings now"), services.schedule_stop_now, "schedule")
    cancel = row_action(_("Cancel selected windows"), services.schedule_cancel, "schedule")


@admin.register(RecordingSession)
class RecordingSessionAdmin(ReadOnlyScopedAdmin):
    list_display = ["recorder", "schedule", "status", "started_at", "ended_at", "node", "asset"]
    list_filter = ["status", scoped_filter("recorder__studio"), scoped_filter("recorder")]
    date_hierarchy = "started_at"
    search_fields = ["recorder__name", "schedule__name"]
    readonly_fields = ["levels"]  # written by the system, not a form field
