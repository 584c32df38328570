"""Stationkeeper settings, read from the environment in this one place.

Every variable is documented in README.md ("Configuration"). Production differs
from development only by environment.
"""

import os
from pathlib import Path

import environ

from station import startup

BASE_DIR = startup.BASE_DIR

env = environ.Env()
startup.read_env_file()

VAR_DIR = startup.var_dir()  # created, with the secret key and the embedded database, by startup.prepare()
SECRET_KEY = env.str("SECRET_KEY", default="") or startup.read_secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "channels_postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here rather than a CDN
    "django_q",
    "station",
    "recorders",
    "playout",
    "ingest",
]

MIDDLEWARE = [
    "station.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "station.middleware.StudioTimeZoneMiddleware",
    "station.middleware.UserErrorMiddleware",
]

ROOT_URLCONF = "station.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "station.asgi.application"

# PostgreSQL is the one database. Without DATABASE_URL the entry points start an embedded server
# (pgserver) under var/pg and set DATABASE_URL to it before Django reads this (startup.prepare()).
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:  # imported without an entry point: no database rather than a server started by an import
    DATABASES = {"default": {"ENGINE": "django.db.backends.dummy"}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "station.postgres"  # its pool recovers at once from a server restart
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# Under ASGI each request runs in a context of its own, so a persistent connection serves one
# request and a new one is opened for the next (about 10 ms each). A web process pools them
# instead: run_station sets DATABASE_POOL_SIZE for its Daphne processes.
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=0)
if DATABASE_POOL_SIZE:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DATABASE_POOL_SIZE, "timeout": 10}
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_stationkeeper")}
# A TCP connection to the database whose packets stop coming back (a cut cable, a host gone) fails after
# this long instead of hanging until the network returns: the process reconnects, and meanwhile an
# agent's leases lapse on their own clock (station.fencing). libpq ignores these on a Unix socket.
DATABASE_TCP_TIMEOUT_SECONDS = env.int("DATABASE_TCP_TIMEOUT_SECONDS", default=10)
if DATABASE_TCP_TIMEOUT_SECONDS and DATABASES["default"]["ENGINE"] != "django.db.backends.dummy":
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "connect_timeout": DATABASE_TCP_TIMEOUT_SECONDS, "tcp_user_timeout": DATABASE_TCP_TIMEOUT_SECONDS * 1000,
        "keepalives": 1, "keepalives_idle": max(1, DATABASE_TCP_TIMEOUT_SECONDS // 2), "keepalives_interval": 1,
        "keepalives_count": max(1, DATABASE_TCP_TIMEOUT_SECONDS // 2),
    })

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
FORMS_URLFIELD_ASSUME_HTTPS = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
TIME_ZONE = "UTC"  # storage and logs; studios schedule in their own zone
USE_I18N = True
USE_TZ = True
LOCALE_PATHS = [BASE_DIR / "locale"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_USE_FINDERS = True  # serve app static files without a collectstatic step
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
BACKUP_ROOT = Path(env.str("BACKUP_ROOT", default=str(VAR_DIR / "backups")))  # where `manage.py backup` writes by default

LOGIN_URL = "admin:login"

# Station behaviour.
ENGINE_USER = env.str("ENGINE_USER", default="nobody")  # engines (ffmpeg, Liquidsoap) run as this user when the agent is root
NODE_CAPTURE_DEVICES = env.list("NODE_CAPTURE_DEVICES", default=[])  # sound inputs this host's agent offers recorders
NODE_HEARTBEAT_TIMEOUT = env.int("NODE_HEARTBEAT_TIMEOUT", default=10)  # seconds without a heartbeat = offline
AGENT_HEARTBEAT_SECONDS = env.float("AGENT_HEARTBEAT_SECONDS", default=2)  # node agent heartbeat and lease renewal
AGENT_REARM_SECONDS = env.float("AGENT_REARM_SECONDS", default=5)  # re-read plans even without a notification
AGENT_STALL_SECONDS = env.float("AGENT_STALL_SECONDS", default=60)  # a loop stuck this long: the node stops heartbeating
AGENT_LEASE_SECONDS = env.float("AGENT_LEASE_SECONDS", default=10)  # a claim not renewed this long is taken back
RECORDER_START_GRACE_SECONDS = env.float("RECORDER_START_GRACE_SECONDS", default=10)  # unclaimed start → failed
# sources are connected this long before a window, so its first sample is placed on the wall clock
RECORDER_CONNECT_AHEAD_SECONDS = env.float("RECORDER_CONNECT_AHEAD_SECONDS", default=5)
# a recording whose source sends silence (below RECORDER_SILENCE_DB dBFS) or nothing this long raises an alert
RECORDER_DEAD_SOURCE_SECONDS = env.float("RECORDER_DEAD_SOURCE_SECONDS", default=10)
RECORDER_SILENCE_DB = env.float("RECORDER_SILENCE_DB", default=-50)
RECORDER_STARTUP_TIMEOUT_SECONDS = env.float("RECORDER_STARTUP_TIMEOUT_SECONDS", default=15)  # no data yet → failed
LIVE_ASSET_TIMEOUT_MINUTES = env.float("LIVE_ASSET_TIMEOUT_MINUTES", default=120)  # live asset with no recorder → error
PLAYOUT_PROBE_SECONDS = env.float("PLAYOUT_PROBE_SECONDS", default=1)  # agents probe their engines this often
# What anyone may read without signing in (a channel's public now-playing), per client address and web process
PUBLIC_REQUESTS_PER_MINUTE = env.int("PUBLIC_REQUESTS_PER_MINUTE", default=120)
PUBLIC_STREAMS_PER_ADDRESS = env.int("PUBLIC_STREAMS_PER_ADDRESS", default=10)
PLAYOUT_MISSED_PROBES = env.int("PLAYOUT_MISSED_PROBES", default=3)  # missed probes before a channel fails over
PLAYOUT_STARTUP_GRACE_SECONDS = env.float("PLAYOUT_STARTUP_GRACE_SECONDS", default=20)  # a fresh engine's time to answer
PLAYOUT_HEALTH_INTERVAL_SECONDS = env.float("PLAYOUT_HEALTH_INTERVAL_SECONDS", default=0.5)  # health job cadence
PLAYOUT_TELNET_BASE_PORT = env.int("PLAYOUT_TELNET_BASE_PORT", default=21000)  # engine telnet port = base + channel id
PLAYOUT_HARBOR_PORTS = env.str("PLAYOUT_HARBOR_PORTS", default="8100-8999")  # ports harbor outputs may listen on
PLAYOUT_CACHE_ROOT = Path(env.str("PLAYOUT_CACHE_ROOT", default=str(VAR_DIR / "cache")))  # each node's verified copies
PLAYOUT_SHARED_MEDIA = env.bool("PLAYOUT_SHARED_MEDIA", default=True)  # nodes read MEDIA_ROOT (same host or shared mount)
STATION_URL = env.str("STATION_URL", default="http://127.0.0.1:8000")  # where nodes fetch media that is not shared
# Where listeners get HLS outputs (PLAYOUT_HLS_URL/channel-<id>/live.m3u8): the web tier serves each node's
# PLAYOUT_CACHE_ROOT/<node>/outputs/hls/ there on a one-host station; a static server on each node can instead.
PLAYOUT_HLS_URL = env.str("PLAYOUT_HLS_URL", default=STATION_URL.rstrip("/") + "/public/hls")
# Networks the station may reach for operators (webhooks, feeds, streams) although internal (station.outbound).
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
INGEST_TICK_SECONDS = env.float("INGEST_TICK_SECONDS", default=2)  # ingest loop: due polls, stale downloads, publishing
INGEST_CONNECT_TIMEOUT_SECONDS = env.float("INGEST_CONNECT_TIMEOUT_SECONDS", default=10)
INGEST_READ_TIMEOUT_SECONDS = env.float("INGEST_READ_TIMEOUT_SECONDS", default=30)  # no byte this long = stalled
INGEST_DOWNLOAD_TIMEOUT_SECONDS = env.float("INGEST_DOWNLOAD_TIMEOUT_SECONDS", default=1800)  # one whole download
INGEST_MAX_BYTES = env.int("INGEST_MAX_BYTES", default=2 * 2**30)  # larger files fail as too large
INGEST_DOWNLOAD_ATTEMPTS = env.int("INGEST_DOWNLOAD_ATTEMPTS", default=5)  # tries per job, each resuming with Range
INGEST_RETRY_BACKOFF_SECONDS = env.float("INGEST_RETRY_BACKOFF_SECONDS", default=1)  # doubles per attempt
INGEST_STALE_SECONDS = env.float("INGEST_STALE_SECONDS", default=120)  # a download this long untouched is queued again
INGEST_LOUDNESS_PARALLEL = env.int("INGEST_LOUDNESS_PARALLEL", default=2)  # loudness measurements at once, station-wide
PUBLISH_URL = env.str("PUBLISH_URL", default="")  # external archive; empty = no publishing
PUBLISH_MAX_ATTEMPTS = env.int("PUBLISH_MAX_ATTEMPTS", default=8)
PUBLISH_BATCH = env.int("PUBLISH_BATCH", default=25)  # publications tried per ingest tick
PUBLISH_BACKOFF_SECONDS = env.float("PUBLISH_BACKOFF_SECONDS", default=30)  # doubles per attempt, at most 6 h
PUBLISH_TIMEOUT_SECONDS = env.float("PUBLISH_TIMEOUT_SECONDS", default=120)
TICK_INTERVAL_SECONDS = env.float("TICK_INTERVAL_SECONDS", default=2)  # housekeeping cadence (≤ 5 s)
TICK_RUN_SECONDS = env.float("TICK_RUN_SECONDS", default=240)  # one tick job loops this long, then hands over

# Background work: django-q2 on the database (ORM broker), or Redis when REDIS_URL is set.
# One cluster per concern (station/queues.py): `manage.py qcluster` runs the playout queue,
# `Q_CLUSTER_NAME=ingest` or `Q_CLUSTER_NAME=events` the others. Periodic loops hold one worker each.
REDIS_URL = env.str("REDIS_URL", default="")
# Studios whose jobs go to queues of their own, e.g. "news:studio-a,studio-b music:studio-c": then
# `Q_CLUSTER_NAME=ingest-news manage.py qcluster` works for those studios only, `ingest` for the rest.
STUDIO_QUEUES = {group: slugs.split(",") for group, slugs in
                 (part.split(":", 1) for part in env.str("STUDIO_QUEUES", default="").split())}
Q_CLUSTER = {
    "name": "stationkeeper",  # shared by all clusters: it signs the queued jobs
    "cluster_name": "playout",
    "workers": env.int("Q_PLAYOUT_WORKERS", default=3),
    "poll": env.float("Q_PLAYOUT_POLL_SECONDS", default=0.05),  # an idle ORM broker looks for work this often
    "timeout": env.int("Q_TIMEOUT", default=300),
    "retry": env.int("Q_RETRY", default=360),
    "catch_up": False,
    "ack_failures": True,
    "max_attempts": 1,
    "label": "Background tasks",
    "ALT_CLUSTERS": {
        # A download may run for INGEST_DOWNLOAD_TIMEOUT_SECONDS; its job must not be cut or handed out twice before.
        "ingest": {"workers": env.int("Q_INGEST_WORKERS", default=5), "poll": 0.2,
                   "timeout": int(INGEST_DOWNLOAD_TIMEOUT_SECONDS) + 60, "retry": int(INGEST_DOWNLOAD_TIMEOUT_SECONDS) + 120},
        "events": {"workers": env.int("Q_EVENTS_WORKERS", default=2), "poll": 0.1},
    },
}
for _group in STUDIO_QUEUES:  # a studio group's clusters run like their concern's
    Q_CLUSTER["ALT_CLUSTERS"].update({f"{queue}-{_group}": Q_CLUSTER["ALT_CLUSTERS"].get(queue, {})
                                      for queue in ("playout", "ingest", "events")})
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# REST API (docs/api.md): token or session auth, studio permissions, one error shape, throttled.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous request is told how to authenticate (401 with WWW-Authenticate: Token).
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["station.api.permissions.StudioPermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "station.api.filters.StationFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "station.api.pagination.StationPagination",
    "DEFAULT_THROTTLE_CLASSES": ["station.api.throttling.AnonymousThrottle", "station.api.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/minute"),
        "user": env.str("API_THROTTLE_USER", default="3000/minute"),
    },
    "EXCEPTION_HANDLER": "station.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "station.api.schema.StationAutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stationkeeper API",
    "DESCRIPTION": "Recorders, schedules, playout channels, shows, playlists, media, as-run log, ingest and alerts "
    "of the studios you belong to. Authenticate with `Authorization: Token <key>` (POST /api/v1/auth/token/) "
    "or a session. Times are ISO 8601; the API answers in UTC. Errors: "
    '`{"error": {"code", "message", "params", "fields"}}`.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",  # operations are grouped by resource (schedules, channels, …)
    "COMPONENT_SPLIT_REQUEST": True,  # request bodies without read-only fields, so uploads and writes are exact
    # status choices alike in name, told apart in the schema
    "ENUM_NAME_OVERRIDES": {"ShowRecordingStatusEnum": "playout.models.ShowRecording.Status",
                            "EpisodeStatusEnum": "playout.models.Episode.Status"},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Dashboards' live events travel on the channel layer, shared by every process: channels-postgres
# (no server beyond the database) by default, channels-redis with REDIS_URL. Each web process takes
# one copy of an event and hands it to its own sockets (station.event_relay).


def channel_layers_for(redis_url: str) -> dict:
    if not redis_url:
        return {"default": {"BACKEND": "station.channel_layer.PostgresLayer"}}
    # Pub/sub: an event crosses Redis once per web process (the list-based layer would queue and pop
    # it once per socket). Missed events come from the event log.
    return {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [redis_url]}}}


CHANNEL_LAYERS = channel_layers_for(REDIS_URL)
EVENT_LOG_HOURS = env.int("EVENT_LOG_HOURS", default=24)  # how far back a reconnecting dashboard can catch up
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)  # then a delivery is failed (retry from the admin)
WEBHOOK_INTERVAL_SECONDS = env.float("WEBHOOK_INTERVAL_SECONDS", default=1.0)  # how often due deliveries are sent

# run_station serves the web on this many Daphne processes sharing one socket (station.launcher).
WEB_PROCESSES = env.int("WEB_PROCESSES", default=min(os.cpu_count() or 1, 4))
# API throttles count in this cache: with Redis, one count for every web process and replica;
# without it, each web process counts on its own (a client gets up to WEB_PROCESSES times the rate).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

# Prometheus metrics (station/metrics.py, docs/metrics.md). The web answers /metrics on its own socket, to a scraper
# sending `Authorization: Bearer <METRICS_TOKEN>` (without a token, to nobody: behind a proxy every request comes from
# loopback). Clusters and node agents serve theirs on METRICS_ADDRESS, each on its port in METRICS_PORTS ("name:port
# …", a cluster by its queue's name, the agent as `node`; a name left out serves none), asking for the token if set.
# Where web processes and each cluster's processes count together (METRICS_DIR) is read by station.startup.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ADDRESS = env.str("METRICS_ADDRESS", default="127.0.0.1")
METRICS_PORTS = {name: int(port) for name, port in (part.split(":", 1) for part in
                 env.str("METRICS_PORTS", default="node:9460 playout:9461 ingest:9462 events:9463").split())}

# Security: input limits, login throttling, HTTPS (docs/security.md)
# JSON bodies: at most 64 levels deep, finite numbers, 64-bit integers, DATA_UPLOAD_MAX_MEMORY_SIZE bytes.
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = ["station.api.parsers.StationJSONParser", "rest_framework.parsers.FormParser",
                                            "rest_framework.parsers.MultiPartParser"]
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = ["drf_spectacular.hooks.postprocess_schema_enums",  # the default
                                                "station.api.schema_hooks.request_bodies_take_no_other_fields"]
SPECTACULAR_SETTINGS["DESCRIPTION"] += (
    " A write naming a field the resource doesn't have is refused (400 `unknown_field`, with the closest field in "
    "`params.suggestion`); read-only fields are ignored, so a row read can be sent back as it is.")
# Uploads (multipart bodies) as large as the largest download ingest accepts: a long programme as WAV fits.
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=INGEST_MAX_BYTES)
FILE_UPLOAD_HANDLERS = ["ingest.uploads.UploadLimitHandler",  # first: refuses before the others store a byte
                        "django.core.files.uploadhandler.MemoryFileUploadHandler",
                        "django.core.files.uploadhandler.TemporaryFileUploadHandler"]
# Failed logins (admin and API token) per username and per address, counted where every web process sees
# them: Redis, or a table of the database (created by run_station and the test runner: createcachetable).
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=10)  # per username
LOGIN_MAX_FAILURES_PER_ADDRESS = env.int("LOGIN_MAX_FAILURES_PER_ADDRESS", default=50)  # a desk behind one NAT
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)  # forgotten this long after the last failure
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},  # Django's default without Redis
    **(CACHES if REDIS_URL else {}),
    "login": ({"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "login"}
              if REDIS_URL else
              # Entries expire with the lockout; culling at the default 300 would let a spray of usernames
              # push a victim's count out.
              {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "station_login_failures",
               "OPTIONS": {"MAX_ENTRIES": 1_000_000}}),
}
# HTTPS: off for the local http run; production sets them (docs/security.md, "Production environment").
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]  # probes and scrapers speak plain http
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Only behind a proxy that sets X-Forwarded-Proto itself (and drops a client's): otherwise anyone could claim https.
WEB_PROXY_HEADERS = env.bool("WEB_PROXY_HEADERS", default=False)  # Daphne takes clients' addresses from the proxy
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"pgserver": {"level": "WARNING"}},
}
