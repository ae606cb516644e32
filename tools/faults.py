"""Fault injectors for the fault tests: a TCP proxy that can cut a connection path (broker
outage) and an HTTP proxy that can answer S3 requests with errors (S3 outage, throttling).
Loopback only; nothing here is used in production."""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tools.devstack import free_port


class TcpProxy:
    """127.0.0.1:port -> upstream. cut() drops every connection and refuses new ones until heal()."""

    def __init__(self, upstream_port: int, port: int | None = None):
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = port or free_port()
        self.cut_off = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.cut_off.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if self.cut_off.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass
            with self._lock:
                self._conns.discard(s)

    def cut(self) -> None:
        self.cut_off.set()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def heal(self) -> None:
        self.cut_off.clear()

    def close(self) -> None:
        self.cut()
        self._server.close()


class FailingS3:
    """An HTTP proxy in front of an S3 API; while failing(), every request gets `status` with an
    S3 error body (503 SlowDown by default). refuse(method, path_part) answers, for good, every
    request of that method whose path holds path_part with a refusal (403 AccessDenied)."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.failing = threading.Event()
        self.status, self.code = 503, "SlowDown"
        self.failed_requests = 0
        self.refusals: list[tuple[str, str, int, str]] = []
        self.refused_requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                refusal = next(((status, code) for method, part, status, code in proxy.refusals
                                if method == self.command and part in self.path), None)
                if refusal:
                    proxy.refused_requests += 1
                    return self._error(*refusal)
                if proxy.failing.is_set():
                    proxy.failed_requests += 1
                    return self._error(proxy.status, proxy.code)
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            def _error(self, status: int, code: str) -> None:
                err = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                       f"<Message>injected fault</Message></Error>").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(err)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(err)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def refuse(self, method: str, path_part: str, status: int = 403, code: str = "AccessDenied") -> None:
        self.refusals.append((method, path_part, status, code))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
