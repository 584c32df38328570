"""An event's websocket frame, built once per web process and written to each dashboard's socket at once.

Through ASGI alone, one frame to one Daphne socket cost about 65 µs of CPU (bench/dashboard_fanout.py,
2,500 dashboards on a process): autobahn frames the text again for every socket, and Twisted buffers
every write until its loop finds the socket writable (two epoll changes and a callback per socket,
over half of the cost). A server's frames are not masked, so every dashboard of a process gets the
same bytes: the hub frames an event once (``text_frame``), and the consumer hands the frame to the
server beside the text, under FRAME_KEY in its ``websocket.send`` message. Daphne's protocol here
(``FramedWebSocketProtocol``) writes that frame at once to a socket with nothing queued, with one
send(2), as asyncio's own transports do (uncompressed, which a socket that agreed to compression
accepts too). What the kernel doesn't take, and any frame to a socket with bytes still queued, goes
through Twisted's buffer, so frames keep their order: ``write_now`` reads that buffer's state from
Twisted's own attributes (Twisted is pinned in requirements.txt, and test_websocket_frames.py fails
if they stop meaning it). Any other ASGI server (channels' test communicator, for one) ignores the
key and sends the text.
"""

from autobahn.websocket.protocol import PreparedMessage
from daphne import ws_protocol
from twisted.internet import tcp

FRAME_KEY = "stationkeeper.frame"


def text_frame(text: str) -> bytes:
    """``text`` as one unmasked websocket text frame (RFC 6455, 5.2), as a server sends it."""
    return PreparedMessage(text.encode(), isBinary=False, applyMask=False, doNotCompress=True).payloadHybi


def write_now(transport, data: bytes) -> None:
    """``transport.write(data)``, sent at once when nothing is queued before it (plain TCP only)."""
    plain_tcp = isinstance(transport, tcp.Connection) and not transport.TLS
    if (not plain_tcp or not transport.connected or transport.disconnecting
            or transport.offset < len(transport.dataBuffer) or transport._tempDataLen):
        transport.write(data)
        return
    written = transport.writeSomeData(data)
    if isinstance(written, Exception):  # a lost connection: Twisted's own write finds it and closes the socket
        transport.write(data)
    elif written < len(data):
        transport.write(data[written:])


class FramedWebSocketProtocol(ws_protocol.WebSocketProtocol):
    """Daphne's websocket protocol, sending a ``websocket.send`` message's ready frame when it has one."""

    def handle_reply(self, message):
        frame = message.get(FRAME_KEY)
        if frame is None or message["type"] != "websocket.send" or self.state != self.STATE_OPEN or self.send_queue:
            super().handle_reply(message)
            return
        write_now(self.transport, frame)


def frame_daphne_websockets() -> None:
    """Make Daphne build its websocket connections from FramedWebSocketProtocol (its factory's class attribute)."""
    ws_protocol.WebSocketFactory.protocol = FramedWebSocketProtocol
