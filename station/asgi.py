"""ASGI entry point: Django over HTTP and Channels websockets, served by Daphne."""

import gc
import os

from django.core.asgi import get_asgi_application

from station import startup

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "station.settings")
startup.prepare(role="web")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs the app registry loaded)
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from playout.consumers import with_public_streams  # noqa: E402
from station.body_limit import limit_daphne_bodies  # noqa: E402
from station.routing import websocket_application  # noqa: E402
from station.websocket_frames import frame_daphne_websockets  # noqa: E402

limit_daphne_bodies()  # Daphne stores a whole body before the application runs: one too large is refused first
frame_daphne_websockets()  # an event's frame is built once per process, not once per dashboard
application = ProtocolTypeRouter(
    {
        "http": with_public_streams(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(websocket_application),
    }
)

# A web process holds many long-lived objects per open socket (a thousand dashboards: a few hundred
# thousand), and a full collection pauses every socket for the time it takes to walk them all (over
# 100 ms). What is loaded at start-up never becomes garbage, so collections skip it (freeze); and
# they run less often: the young generation is collected every 50,000 allocations instead of 700.
gc.collect()
gc.freeze()
gc.set_threshold(50_000, 20, 100)
