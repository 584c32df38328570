from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from playout import podcasts, presenters, services
from playout.exports import write_as_run_csv
from playout.models import (LIVE_MOUNT, AsRunEntry, Channel, Episode, LiveCredential, Playlist, PlaylistItem, Podcast,
                            ScheduledItem, Show, ShowInstance, ShowRecording)
from playout.public import public_urls
from station.admin_base import (ReadOnlyScopedAdmin, StudioScopedAdmin, StudioScopedInline, WindowAdminMixin, row_action,
                                scoped_filter, service_action)


@admin.register(Channel)
class ChannelAdmin(StudioScopedAdmin):
    list_display = ["name", "studio", "node", "output_type", "status", "paused", "restart_count", "last_heartbeat_at"]
    list_filter = ["status", "output_type", scoped_filter("studio"), "node"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["node", "fallback_playlist"]
    readonly_fields = ["status", "restart_count", "last_heartbeat_at", "error_message", "listener_url",
                       "public_now_playing_addresses"]
    actions = ["restart", "skip", "pause", "resume"]

    @admin.display(description=_("listener URL"))
    def listener_url(self, channel):
        return channel.listener_url or "—"

    @admin.display(description=_("public now-playing addresses"))
    def public_now_playing_addresses(self, channel):
        urls = public_urls(channel)
        return " · ".join(urls.values()) if urls else "—"

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "output_type" and not request.user.is_superuser:
            kwargs["choices"] = [choice for choice in Channel.Output.choices if choice[0] not in Channel.SUPERUSER_OUTPUTS]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    restart = row_action(_("Restart selected channels"), services.channel_restart, "channel")
    skip = row_action(_("Skip what is on air"), services.channel_skip, "channel")
    pause = row_action(_("Pause selected channels (silence)"), services.channel_pause, "channel")
    resume = row_action(_("Resume selected channels"), services.channel_resume, "channel")


class PlaylistItemInline(StudioScopedInline):
    model = PlaylistItem
    fields = ["position", "asset", "webstream_url", "webstream_seconds", "cue_in_seconds", "cue_out_seconds", "length"]
    readonly_fields = ["length"]
    autocomplete_fields = ["asset"]
    ordering = ["position", "id"]

    @admin.display(description=_("plays (s)"))
    def length(self, item):
        seconds = item.play_seconds if item.pk else None
        return "—" if seconds is None else f"{seconds:.1f}"


@admin.register(Playlist)
class PlaylistAdmin(StudioScopedAdmin):
    list_display = ["name", "studio", "item_count", "total_length"]
    list_filter = [scoped_filter("studio")]
    search_fields = ["name"]
    readonly_fields = ["total_length"]
    inlines = [PlaylistItemInline]

    @admin.display(description=_("items"))
    def item_count(self, playlist):
        return playlist.items.count()

    @admin.display(description=_("total length (s)"))
    def total_length(self, playlist):
        return f"{playlist.total_seconds():.1f}" if playlist.pk else "—"


class ShowInstanceInline(StudioScopedInline):
    model = ShowInstance
    fields = ["channel", "start_at", "end_at", "playlist", "cancelled"]
    autocomplete_fields = ["playlist"]
    ordering = ["-start_at"]


class ShowRecordingInline(admin.TabularInline):
    """A show's recordings from the air, grouped under it (read-only: the agents write them)."""

    model = ShowRecording
    fields = ["slot_start", "status", "started_at", "ended_at", "asset", "error_message"]
    readonly_fields = fields
    ordering = ["-slot_start"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class PodcastInline(StudioScopedInline):
    """The show's podcast: its recordings from the air become the episodes of its feed."""

    model = Podcast
    fields = ["public", "author", "image_url", "category", "explicit", "language", "feed_address"]
    readonly_fields = ["feed_address"]
    extra = 0
    max_num = 1

    @admin.display(description=_("feed address"))
    def feed_address(self, podcast):
        return podcasts.feed_url(podcast) if podcast.pk else "—"


@admin.register(Show)
class ShowAdmin(WindowAdminMixin, StudioScopedAdmin):
    list_display = ["name", "channel", "local_start", "duration", "recurrence", "next_window", "enabled"]
    list_filter = ["enabled", "recurrence", scoped_filter("channel__studio"), scoped_filter("channel")]
    search_fields = ["name", "description"]
    autocomplete_fields = ["channel", "playlist"]
    list_select_related = ["channel__studio"]
    readonly_fields = ["duration", "next_window"]
    inlines = [ShowInstanceInline, ShowRecordingInline, PodcastInline]


def _hand_over(request, credential: LiveCredential, password: str) -> None:
    """What the presenter types into their source client, shown to whoever issued it, this once."""
    channel = credential.show.channel
    messages.warning(request, _(
        "Give %(presenter)s: server: the address of %(channel)s's node, port %(port)s, mount /%(mount)s, user "
        "%(user)s, password %(password)s. This password is shown only now.") % {
        "presenter": credential.presenter, "channel": channel.name, "port": channel.live_input_port or _("(none set)"),
        "mount": LIVE_MOUNT, "user": credential.username, "password": password})


@admin.register(LiveCredential)
class LiveCredentialAdmin(StudioScopedAdmin):
    """Presenters' credentials for live shows: issued here (the password is shown once), revoked, never edited."""

    list_display = ["presenter", "show", "username", "created_at", "revoked_at"]
    list_filter = [scoped_filter("show__channel__studio"), scoped_filter("show")]
    search_fields = ["presenter", "show__name"]
    autocomplete_fields = ["show"]
    list_select_related = ["show"]
    readonly_fields = ["revoked_at"]
    actions = ["revoke", "new_password"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "show", "username"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        credential, password = presenters.live_credential_issue(
            show=obj.show, presenter=obj.presenter, username=obj.username)
        obj.pk = credential.pk
        _hand_over(request, credential, password)

    def has_delete_permission(self, request, obj=None):
        return False  # revoked instead: the as-run log names who was live

    revoke = row_action(_("Revoke selected credentials"), lambda credential: presenters.live_credential_revoke(
        credential=credential, now=timezone.now()), "credential")

    @service_action(_("Issue a new password"))
    def new_password(credential, request):
        _hand_over(request, credential, presenters.live_credential_new_password(credential=credential))


@admin.register(ShowInstance)
class ShowInstanceAdmin(StudioScopedAdmin):
    list_display = ["show", "channel", "start_at", "end_at", "playlist", "cancelled"]
    list_select_related = ["show", "channel", "playlist"]
    list_filter = ["cancelled", scoped_filter("channel__studio"), scoped_filter("channel")]
    search_fields = ["show__name"]
    date_hierarchy = "start_at"
    autocomplete_fields = ["show", "channel", "playlist"]


@admin.register(AsRunEntry)
class AsRunEntryAdmin(ReadOnlyScopedAdmin):
    """The compliance log: never edited; exported as CSV for the selected rows or filtered range."""

    list_display = ["started_at", "channel", "title", "ended_at", "duration_seconds", "result", "presenter", "asset"]
    list_filter = ["result", scoped_filter("channel__studio"), scoped_filter("channel")]
    search_fields = ["title"]
    date_hierarchy = "started_at"
    list_select_related = ["channel", "asset"]
    actions = ["export_csv"]

    @admin.action(description=_("Export selected rows as CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="as-run-{timezone.now():%Y%m%d-%H%M%S}.csv"'
        write_as_run_csv(queryset.select_related("channel", "asset", "node").order_by("started_at"), response)
        return response


@admin.register(ShowRecording)
class ShowRecordingAdmin(ReadOnlyScopedAdmin):
    """Shows recorded from the air, each cut to its slot; written by the agents."""

    list_display = ["show", "slot_start", "status", "started_at", "ended_at", "asset", "node"]
    list_select_related = ["show", "asset", "node"]
    list_filter = ["status", scoped_filter("channel__studio"), scoped_filter("show")]
    search_fields = ["show__name"]
    date_hierarchy = "slot_start"


@admin.register(Episode)
class EpisodeAdmin(StudioScopedAdmin):
    """Podcast episodes, made from shows' recordings: their title, description and whether the feed lists them."""

    list_display = ["title", "podcast", "status", "published", "published_at", "duration_seconds"]
    list_filter = ["status", "published", scoped_filter("podcast__show__channel__studio"), scoped_filter("podcast")]
    search_fields = ["title", "podcast__show__name"]
    list_select_related = ["podcast__show"]
    fields = ["podcast", "title", "description", "published", "published_at", "status", "asset", "duration_seconds",
              "chapter_list", "error_message", "guid"]
    readonly_fields = ["podcast", "status", "asset", "duration_seconds", "chapter_list", "error_message", "guid"]
    actions = ["publish", "unpublish"]

    def has_add_permission(self, request, obj=None):
        return False  # made from recordings

    @admin.display(description=_("chapters"))
    def chapter_list(self, episode):
        return " · ".join(f"{int(start) // 60}:{int(start) % 60:02d} {title}" for start, title in episode.chapters) or "—"

    @admin.action(description=_("Publish selected episodes"), permissions=["change"])
    def publish(self, request, queryset):
        podcasts.episodes_publish(episodes=queryset, published=True)

    @admin.action(description=_("Unpublish selected episodes (the feed no longer lists them)"), permissions=["change"])
    def unpublish(self, request, queryset):
        podcasts.episodes_publish(episodes=queryset, published=False)


@admin.register(ScheduledItem)
class ScheduledItemAdmin(ReadOnlyScopedAdmin):
    """The timeline as the dispatcher plays it; built from shows, so read-only here."""

    list_display = ["start_at", "channel", "title", "end_at", "cue_in_seconds", "asset"]
    list_filter = [scoped_filter("channel__studio"), scoped_filter("channel")]
    search_fields = ["title"]
    date_hierarchy = "start_at"
    list_select_related = ["channel", "asset"]
