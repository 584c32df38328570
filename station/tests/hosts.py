"""Several hosts on this machine, as network namespaces, for fault tests and the chaos soak.

Each host is a namespace with two links to this (the root) namespace:
- ``eth0`` on a bridge the hosts share with the root namespace (``lan``: the root end is ``.1``), where
  sources, the web tier and the hosts' streams are reached;
- ``db0``, a link of its own whose root end runs a forwarder to the test's PostgreSQL: taking it
  down (``cut_database``) drops the host's packets to the database, as a cut cable does (its TCP
  connections hang, then resume or time out), while the rest of its network works on.
Addresses are taken from 10.213.0.0/16 (a /24 not in use here) and 10.214.0.0/16; nothing is sent
anywhere else. Everything made is removed by ``close``, also after a failure. Needs root
(CAP_NET_ADMIN), which CI and this machine's sessions have; elsewhere ``sudo -n`` is tried.
"""

import contextlib
import ipaddress
import os
import random
import shutil
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy what ``source`` sends to ``sink`` until it ends or either breaks; then end ``sink``'s writing."""
    try:
        while data := source.recv(1 << 16):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise RuntimeError("building hosts as network namespaces needs root (CAP_NET_ADMIN) or sudo")
        command = ["sudo", "-n", *command]
    subprocess.run(command, check=True, capture_output=True, text=True)


def _free_subnet() -> int:
    """A third octet X such that 10.213.X.0/24 and 10.214.X.0/24 are not on any interface here."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    for candidate in random.sample(range(1, 255), 254):
        if f"10.213.{candidate}." not in used and f"10.214.{candidate}." not in used:
            return candidate
    raise RuntimeError("no free /24 in 10.213.0.0/16 for the hosts")


class _Forwarder:
    """Relays TCP connections made to ``listen`` (this namespace) to ``target`` (a host:port or a Unix socket path)."""

    def __init__(self, listen: tuple[str, int], target: str | tuple[str, int]):
        self.target = target
        self.server = socket.create_server(listen, reuse_port=False)
        self.server.settimeout(0.5)
        self.closing = False
        self.relayed: list[socket.socket] = []  # closed with the forwarder: a connection cut off may still hang here
        self.thread = threading.Thread(target=self._accept, name=f"forward {listen}", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _address = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = (socket.socket(socket.AF_UNIX) if isinstance(self.target, str) else socket.socket())
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            self.relayed += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self.closing = True
        self.server.close()
        self.thread.join(timeout=2)
        for relayed in self.relayed:
            with contextlib.suppress(OSError):  # shut down first: a thread blocked reading it keeps it open otherwise
                relayed.shutdown(socket.SHUT_RDWR)
            relayed.close()


@dataclass
class Host:
    """One host: its namespace, its address on the shared network and its link to the database."""

    name: str
    netns: str
    address: str  # on the shared network
    database_link: str  # the root end of its link to the database (what ``cut_database`` takes down)
    database_url: str  # the test database, as this host reaches it
    forwarder: _Forwarder | None = field(default=None, repr=False)

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host."""
        prefix = ["ip", "netns", "exec", self.netns]
        return prefix + list(argv) if os.geteuid() == 0 else ["sudo", "-n", "-E", *prefix, *argv]


class Hosts:
    """Hosts built here, around one PostgreSQL (the one ``database_url`` names); use as a context manager."""

    def __init__(self, count: int, *, database_url: str):
        self.token = uuid.uuid4().hex[:4]
        self.octet = _free_subnet()
        self.lan = ipaddress.ip_network(f"10.213.{self.octet}.0/24")
        self.root_address = str(self.lan.network_address + 1)  # this namespace, as the hosts reach it
        self.bridge = f"sk{self.token}br"
        self.hosts: list[Host] = []
        self._made: list[tuple[str, ...]] = []  # how to remove what was made, newest last
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._made.append(("link", "del", self.bridge))
            _ip("addr", "add", f"{self.root_address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for number in range(1, count + 1):
                self.hosts.append(self._host(number, database_url))
        except BaseException:
            self.close()
            raise

    def _host(self, number: int, database_url: str) -> Host:
        netns, lan_end, db_end = f"sk{self.token}h{number}", f"sk{self.token}e{number}", f"sk{self.token}d{number}"
        _ip("netns", "add", netns)
        self._made.append(("netns", "del", netns))
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("link", "add", lan_end, "type", "veth", "peer", "name", "eth0", "netns", netns)
        self._made.append(("link", "del", lan_end))
        _ip("link", "set", lan_end, "master", self.bridge)
        _ip("link", "set", lan_end, "up")
        address = str(self.lan.network_address + 10 + number)
        _ip("addr", "add", f"{address}/24", "dev", "eth0", netns=netns)
        _ip("link", "set", "eth0", "up", netns=netns)
        # Its own /30 to the database: 10.214.<octet>.<4n> (root end +1, host end +2).
        link = ipaddress.ip_network(f"10.214.{self.octet}.{4 * number}/30")
        root_end, host_end = str(link.network_address + 1), str(link.network_address + 2)
        _ip("link", "add", db_end, "type", "veth", "peer", "name", "db0", "netns", netns)
        self._made.append(("link", "del", db_end))
        _ip("addr", "add", f"{root_end}/30", "dev", db_end)
        _ip("link", "set", db_end, "up")
        _ip("addr", "add", f"{host_end}/30", "dev", "db0", netns=netns)
        _ip("link", "set", "db0", "up", netns=netns)
        target, url = _database_target(database_url, root_end)
        host = Host(name=f"host-{number}", netns=netns, address=address, database_link=db_end, database_url=url)
        host.forwarder = _Forwarder((root_end, 5432), target)
        return host

    def cut_database(self, host: Host) -> None:
        """Drop the host's packets to and from the database until ``restore_database``."""
        _ip("link", "set", host.database_link, "down")

    def restore_database(self, host: Host) -> None:
        _ip("link", "set", host.database_link, "up")

    def close(self) -> None:
        for host in self.hosts:
            if host.forwarder is not None:
                host.forwarder.close()
        for undo in reversed(self._made):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip(*undo)
        self._made.clear()

    def __enter__(self) -> "Hosts":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _database_target(database_url: str, root_end: str) -> tuple[str | tuple[str, int], str]:
    """Where the forwarder connects (the server's socket file, or its address) and the URL a host reaches it by."""
    parts = urlsplit(database_url)
    credentials, _at, location = parts.netloc.rpartition("@")
    directory, _slash, name = parts.path.rpartition("/")
    host_url = urlunsplit(parts._replace(netloc=f"{credentials}@{root_end}:5432", path=f"/{name}"))
    if not location:  # a Unix socket (station.embedded_db.database_url's form: the directory, then the name)
        [socket_file] = [path for path in Path("/" + directory.lstrip("/")).glob(".s.PGSQL.*") if path.suffix != ".lock"]
        return str(socket_file), host_url
    server, _colon, port = location.partition(":")
    return (server, int(port or 5432)), host_url
