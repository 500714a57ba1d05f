"""A TCP proxy on loopback that a test can cut: the link of one client fails, the broker and the
other clients stay up. ``TlsTerminator`` is the same with TLS in front (mutual TLS and ALPN,
as AWS IoT Core's port 443 takes them), so a test can see what a client offered."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

from tests.greengrass.broker import free_port


class TcpProxy:
    """127.0.0.1:``port`` → 127.0.0.1:``target_port``. ``cut`` drops every open connection and
    closes new ones at once until ``restore``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._cut = False
        self._closed = False
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _wrap(self, client: socket.socket) -> socket.socket:
        return client

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self._cut:
            client.close()
            return
        try:
            client = self._wrap(client)
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            upstream.settimeout(None)
        except (OSError, ssl.SSLError):
            client.close()
            return
        with self._lock:
            self.accepted += 1
            self._open += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._cut = True
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()


class TlsTerminator(TcpProxy):
    """Mutual TLS in front of a plain broker port: the client must present a certificate of
    ``ca`` and offer one of ``alpn``; what it negotiated is recorded."""

    def __init__(self, target_port: int, *, ca: Path, cert: Path, key: Path, alpn: list[str]):
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._context.load_verify_locations(ca)
        self._context.verify_mode = ssl.CERT_REQUIRED
        self._context.set_alpn_protocols(alpn)
        self.negotiated: list[tuple[str | None, str]] = []  # (ALPN, client certificate CN)
        super().__init__(target_port)

    def _wrap(self, client: socket.socket) -> socket.socket:
        client.settimeout(5)
        tls = self._context.wrap_socket(client, server_side=True)
        tls.settimeout(None)
        subject = dict(rdn[0] for rdn in tls.getpeercert()["subject"])
        self.negotiated.append((tls.selected_alpn_protocol(), subject.get("commonName", "")))
        return tls
