"""Live shows' presenters: their credentials issued and revoked, and checked when a source client connects.

A channel with a live input takes a presenter's source client (the Icecast source protocol) on its
node. The engine asks its agent about each connection (playout.agent.live), and the agent asks
``live_source_admit``: the password must be one of this channel's shows' credentials, unrevoked,
with its user name, within one of the show's slots widened by the show's margin. The answer
names the slot: the air is the presenter's from its start to its end, whenever they connected.
Only a hash of each password is stored (they are random, so SHA-256 is enough); the password is
shown once, to whoever issues it.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from playout.models import LiveCredential, Show, ShowInstance
from station.errors import UserError


def secret_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


@dataclass(frozen=True)
class LiveGrant:
    """A presenter let in: the air is theirs from ``on_air_from`` to ``on_air_until``; the engine lets go of their
    connection at ``connected_until`` (the slot's end plus the show's margin)."""

    credential_id: int
    presenter: str
    on_air_from: datetime
    on_air_until: datetime
    connected_until: datetime


def live_credential_issue(*, show: Show, presenter: str, username: str = "source") -> tuple[LiveCredential, str]:
    """A new credential for a presenter of ``show``, and its password (shown this once)."""
    password = secrets.token_urlsafe(18)
    credential = LiveCredential(show=show, presenter=presenter, username=username, secret_hash=secret_hash(password))
    credential.full_clean()
    credential.save()
    return credential, password


def live_credential_new_password(*, credential: LiveCredential) -> str:
    """A new password for a credential (the old one stops working); shown this once."""
    password = secrets.token_urlsafe(18)
    credential.secret_hash = secret_hash(password)
    LiveCredential.objects.filter(pk=credential.pk).update(secret_hash=credential.secret_hash)
    return password


@transaction.atomic
def live_credential_revoke(*, credential: LiveCredential, now: datetime) -> LiveCredential:
    """The credential stops working; a presenter connected with it is let go by their channel's agent."""
    LiveCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(revoked_at=now, updated_at=now)
    credential.refresh_from_db()
    return credential


def live_source_admit(*, channel_id: int, username: str, password: str, now: datetime) -> LiveGrant:
    """Whether a source client may connect to the channel's live input now, and for which slot; raises UserError
    saying why not (wrong credentials, revoked, or outside the show's slots and margin)."""
    credential = (LiveCredential.objects.select_related("show")
                  .filter(secret_hash=secret_hash(password), show__channel_id=channel_id).first())
    if credential is None or not secrets.compare_digest(credential.username.encode(), username.encode()):
        raise UserError("live_credentials_wrong", _("Wrong user name or password for this channel's live input."))
    if credential.revoked_at is not None:
        raise UserError("live_credential_revoked", _("This credential was revoked."))
    show = credential.show
    if not show.enabled:
        raise UserError("live_show_disabled", _("The show %(show)s is disabled."), {"show": show.name})
    margin = timedelta(seconds=show.live_margin_seconds)
    slots = ShowInstance.objects.filter(show=show, cancelled=False)
    # the slot on now or the next one within the margin; else the one that ended within it
    slot = (slots.filter(start_at__lte=now + margin, end_at__gt=now).order_by("start_at").first()
            or slots.filter(end_at__lte=now, end_at__gt=now - margin).order_by("-end_at").first())
    if slot is None:
        raise UserError("live_outside_slot",
                        _("%(show)s is not on within %(minutes)d minutes: its credentials work only then."),
                        {"show": show.name, "minutes": show.live_margin_seconds // 60})
    return LiveGrant(credential_id=credential.pk, presenter=credential.presenter, on_air_from=slot.start_at,
                     on_air_until=slot.end_at, connected_until=slot.end_at + margin)
