"""HTTP servers on a free loopback port, for the engines a node agent runs (a webstream's relay, a live input's
admissions): each request answered on a thread of its own, nothing logged per request."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Subclasses answer ``GET`` (``answer_get``) or ``POST`` (``answer_post``); the other method gets 405."""

    thread_name = "loopback-server"

    def __init__(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.answer_get(self)

            def do_POST(self):
                owner.answer_post(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name=self.thread_name, daemon=True).start()

    def answer_get(self, request: BaseHTTPRequestHandler) -> None:
        request.send_error(405)

    def answer_post(self, request: BaseHTTPRequestHandler) -> None:
        request.send_error(405)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
