"""A local HTTP server that answers as a hostile or careless host would: redirects, playlists, floods."""

from dataclasses import dataclass, field

from station.tests.http_servers import QuietHandler, serve_in_background


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    endless: bool = False  # repeat the body as fast as the client reads, with no Content-Length


class HostileServer:
    """Serves ``answers`` by path on ``address`` (any 127.x.y.z: each is a host of its own to the station)."""

    def __init__(self, address: str = "127.0.0.1"):
        self.answers: dict[str, Answer] = {}
        self.hits: list[tuple[str, str]] = []  # (method, path) of every request that arrived
        server = self

        class Handler(QuietHandler):
            def _answer(self):
                server.hits.append((self.command, self.path))
                answer = server.answers.get(self.path.split("?")[0], Answer(status=404))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if not answer.endless:
                    self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                try:
                    self.wfile.write(answer.body)
                    while answer.endless:
                        self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _answer

        self.server = serve_in_background(Handler, address)
        self.base = f"http://{address}:{self.server.server_address[1]}"

    def serve(self, path: str, answer: Answer) -> str:
        self.answers[path] = answer
        return self.base + path

    def redirect(self, path: str, to: str) -> str:
        return self.serve(path, Answer(status=302, headers={"Location": to}))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

