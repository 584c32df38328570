import functools
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from ingest.models import MediaAsset
from playout.models import Channel, Playlist, Show, ShowInstance
from recorders.models import Recorder, RecorderSchedule
from station.models import Node, Studio, StudioMembership

PASSWORD = "correct horse battery staple"


@functools.cache
def password_hash() -> str:
    """PASSWORD as the station stores it (its own hasher, a third of a second's work): hashed once, for every user."""
    return make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.LazyFunction(password_hash)


class StudioFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Studio
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Studio {n}")
    slug = factory.Sequence(lambda n: f"studio-{n}")
    time_zone = "Europe/London"


def member_of(studio: Studio, *, username: str, role: str = StudioMembership.Role.OPERATOR):
    user = UserFactory(username=username)
    StudioMembership.objects.create(studio=studio, user=user, role=role)
    return user


class NodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Node

    name = factory.Sequence(lambda n: f"node-{n}")
    capabilities = ["record", "playout"]


class RecorderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Recorder

    studio = factory.SubFactory(StudioFactory)
    name = factory.Sequence(lambda n: f"Recorder {n}")
    source_url = "tone:1000"


class ScheduleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RecorderSchedule

    recorder = factory.SubFactory(RecorderFactory)
    name = factory.Sequence(lambda n: f"Window {n}")
    start_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
    end_at = factory.LazyAttribute(lambda o: o.start_at + timedelta(minutes=30))


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel

    studio = factory.SubFactory(StudioFactory)
    name = factory.Sequence(lambda n: f"Channel {n}")
    slug = factory.Sequence(lambda n: f"channel-{n}")
    output_settings = factory.Sequence(lambda n: {"port": 8100 + n % 900})  # a harbor on a port of its own


class PlaylistFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Playlist

    studio = factory.SubFactory(StudioFactory)
    name = factory.Sequence(lambda n: f"Playlist {n}")


class ShowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Show

    channel = factory.SubFactory(ChannelFactory)
    name = factory.Sequence(lambda n: f"Show {n}")
    start_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
    end_at = factory.LazyAttribute(lambda o: o.start_at + timedelta(hours=1))


class ShowInstanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ShowInstance

    show = factory.SubFactory(ShowFactory)
    channel = factory.SelfAttribute("show.channel")
    start_at = factory.SelfAttribute("show.start_at")
    end_at = factory.SelfAttribute("show.end_at")


class MediaAssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MediaAsset

    studio = factory.SubFactory(StudioFactory)
    title = factory.Sequence(lambda n: f"Asset {n}")
    status = MediaAsset.Status.READY
    duration_seconds = 30.0
