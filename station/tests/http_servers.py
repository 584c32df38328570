"""What the tests' local HTTP servers share: a handler that keeps the test's output clean, and a server on a port of
its own, serving on a daemon thread until ``shutdown``."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # no access log in the test's output
        pass


def serve_in_background(handler: type[BaseHTTPRequestHandler], address: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``handler`` on ``address`` and a free port (``server.server_address[1]``); stop it with ``shutdown()`` and
    ``server_close()``."""
    server = ThreadingHTTPServer((address, 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
