"""Live servers and a plain-HTTP Engine.IO polling client for the integration tests.

``start_server(kind)`` runs a WSGI application in a real server, in a
subprocess, on 127.0.0.1 and a free port, and waits until it answers HTTP:

    with start_server('gunicorn-gevent', env={'EIO_PING_INTERVAL': '1'}) as srv:
        PollingClient(srv).handshake()

The client side speaks Engine.IO v4 long-polling with raw sockets: one TCP
connection per request, the exact bytes the test gives, and the payload codec
written here from the protocol description. It deliberately does not import
the library: these tests look at the wire from outside.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+, annotations only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, 'tests', 'apps', 'runners.py')

KINDS = ('werkzeug', 'gunicorn-gthread', 'gunicorn-gevent', 'pywsgi', 'pywsgi-gws', 'gunicorn-gws')

_GUNICORN_WORKER_ARGS = {
    'gunicorn-gthread': ['-k', 'gthread', '--threads', '50'],
    'gunicorn-gevent': ['-k', 'gevent', '--worker-connections', '1000'],
    'gunicorn-gws': ['-k', 'geventwebsocket.gunicorn.workers.GeventWebSocketWorker'],
}
_GUNICORN_PORT = re.compile(r'Listening at: http://127\.0\.0\.1:(\d+)')
_RUNNER_PORT = re.compile(r'^LISTENING (\d+)$', re.MULTILINE)
#: gevent.pywsgi on gevent's sockets with nothing monkey-patched
NOPATCH = 'pywsgi-nopatch'
NOPATCH_RUNNER = os.path.join(ROOT, 'tests', 'apps', 'ws_nopatch.py')


# --------------------------------------------------------------------------
# live servers


class ServerStartError(RuntimeError):
    """The server process exited or did not answer in time."""


def _command(kind: str, app: str, port: int = 0) -> tuple[list[str], re.Pattern[str]]:
    if kind in _GUNICORN_WORKER_ARGS:
        cmd = [
            sys.executable, '-m', 'gunicorn',
            '-w', '1',
            '-b', f'127.0.0.1:{port}',
            '--graceful-timeout', '2',
            '--log-level', 'info',
            '--access-logfile', '-',
            '--no-control-socket',
            *_GUNICORN_WORKER_ARGS[kind],
            app,
        ]
        return cmd, _GUNICORN_PORT
    if kind in ('werkzeug', 'pywsgi', 'pywsgi-gws'):
        return [sys.executable, RUNNER, kind, app], _RUNNER_PORT  # port: EIO_RUNNER_PORT
    if kind == NOPATCH and not port:
        # gevent.pywsgi without monkey-patching: not one of KINDS, asked for by name
        return [sys.executable, NOPATCH_RUNNER, app], _RUNNER_PORT
    raise ValueError(f'unknown server kind {kind!r}; expected one of {", ".join(KINDS)}')


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    child = dict(os.environ)
    paths = [p for p in child.get('PYTHONPATH', '').split(os.pathsep) if p]
    if ROOT not in paths:
        paths.insert(0, ROOT)
    child['PYTHONPATH'] = os.pathsep.join(paths)
    child['PYTHONUNBUFFERED'] = '1'
    if env:
        child.update({str(k): str(v) for k, v in env.items()})
    return child


class LiveServer:
    """A running server subprocess; ``url`` is ``http://127.0.0.1:PORT``."""

    host = '127.0.0.1'

    def __init__(self, kind: str, app: str, env: Mapping[str, str] | None, log_path: str,
                 proc: subprocess.Popen[bytes]) -> None:
        self.kind = kind
        self.app = app
        self.env = dict(env or {})
        self.log_path = log_path
        self.proc = proc
        self.port = 0

    @property
    def url(self) -> str:
        return f'http://{self.host}:{self.port}'

    @property
    def origin(self) -> str:
        """The Origin a same-origin browser page would send."""
        return self.url

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """Everything the server wrote on stdout and stderr so far."""
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def log_tail(self, lines: int = 60) -> str:
        return '\n'.join(self.log().splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float = 5.0) -> bool:
        """True once ``text`` appears in the log, False after ``timeout``."""
        try:
            wait_until(lambda: text in self.log(), timeout)
        except AssertionError:
            return False
        return True

    def _signal_group(self, sig: int) -> None:
        # The server runs in its own process group (gunicorn's worker too).
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 6.0) -> None:
        """Terminate the server; kill it (and its workers) if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(5)
        # A gunicorn worker left behind by a dying master.
        self._signal_group(signal.SIGKILL)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = 'running' if self.alive() else f'exited {self.proc.returncode}'
        return f'<LiveServer {self.kind} {self.url} {state}>'


def _answers_http(port: int) -> bool:
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1.0) as sock:
            sock.settimeout(2.0)
            sock.sendall(b'GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n' % port)
            return sock.recv(16).startswith(b'HTTP/1.')
    except OSError:
        return False


def start_server(kind: str, app: str = 'tests.apps.echo:app', env: Mapping[str, str] | None = None,
                 timeout: float = 30.0, port: int = 0) -> LiveServer:
    """Start ``app`` (``module:attribute``) in a ``kind`` server; return once it answers.

    ``port``: listen there (e.g. to restart a server where its clients
    expect it); 0 takes a free one.

    ``env`` is added to this process's environment for the server. Raises
    ``ServerStartError``, with the server's log, if it exits or does not answer
    within ``timeout`` seconds.
    """
    cmd, port_pattern = _command(kind, app, port)
    if port:
        env = {**(env or {}), 'EIO_RUNNER_PORT': str(port)}
    fd, log_path = tempfile.mkstemp(prefix=f'eio-live-{kind}-', suffix='.log')
    with os.fdopen(fd, 'wb') as log_file:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_child_env(env), stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = LiveServer(kind, app, env, log_path, proc)

    def answering() -> bool:
        if proc.poll() is not None:
            raise ServerStartError(
                f'{kind} server exited with code {proc.returncode} before answering '
                f'(command: {" ".join(cmd)})\n--- server log ({log_path}) ---\n{server.log()}')
        if not server.port:
            found = port_pattern.search(server.log())
            if found:
                server.port = int(found.group(1))
        return bool(server.port) and _answers_http(server.port)
    try:
        wait_until(answering, timeout, interval=0.05)
    except AssertionError:
        server.stop()
        raise ServerStartError(
            f'{kind} server did not answer HTTP within {timeout:g} s '
            f'(port: {server.port or "not reported"}; command: {" ".join(cmd)})\n'
            f'--- server log ({log_path}) ---\n{server.log()}') from None
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------
# HTTP over raw sockets


class Response(NamedTuple):
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes
    elapsed: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def header_values(self, name: str) -> list[str]:
        """All values of a header, comma-separated lists split."""
        values = []
        for value in self.headers.get_all(name) or []:
            values.extend(v.strip() for v in value.split(',') if v.strip())
        return values

    @property
    def content_type(self) -> str:
        return (self.header('Content-Type') or '').lower().replace(' ', '')

    @property
    def text(self) -> str:
        return self.body.decode('utf-8', errors='replace')

    def json(self) -> Any:
        return json.loads(self.body.decode('utf-8'))

    def __str__(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b'...'
        return f'HTTP {self.status} {self.reason} {dict(self.headers.items())} {body!r}'

    __repr__ = __str__      # pytest shows assertion messages with repr()


Headers = Mapping[str, str] | Sequence[tuple[str, str]]


def _header_items(headers: Headers | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def build_request(port: int, method: str, target: str, body: bytes | None = None,
                  headers: Headers | None = None) -> bytes:
    """The request bytes. Host and Content-Length are added unless given;
    the connection is closed after the response."""
    items = _header_items(headers)
    names = {name.lower() for name, _ in items}
    if 'host' not in names:
        items.insert(0, ('Host', f'127.0.0.1:{port}'))
    if body is not None and 'content-length' not in names and 'transfer-encoding' not in names:
        items.append(('Content-Length', str(len(body))))
    if 'connection' not in names:
        items.append(('Connection', 'close'))
    head = f'{method} {target} HTTP/1.1\r\n'
    head += ''.join(f'{name}: {value}\r\n' for name, value in items) + '\r\n'
    # latin-1 lets tests put any byte value in a header
    return head.encode('latin-1') + (body or b'')


def read_response(sock: socket.socket, method: str, started: float) -> Response:
    resp = http.client.HTTPResponse(sock, method=method)
    try:
        resp.begin()
        body = resp.read()
    finally:
        resp.close()
    return Response(resp.status, resp.reason, resp.headers, body, time.monotonic() - started)


def http_request(port: int, method: str, target: str, body: bytes | None = None,
                 headers: Headers | None = None, timeout: float = 10.0) -> Response:
    """One request on a fresh connection. A server that answers before reading
    the whole body (413) is fine: send errors are ignored, the answer is read."""
    data = build_request(port, method, target, body, headers)
    started = time.monotonic()
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock, method, started)


class RawRequest:
    """A request sent piece by piece on its own socket (e.g. a trickling body)."""

    def __init__(self, port: int, method: str, target: str, headers: Headers | None = None,
                 body_start: bytes = b'', timeout: float = 10.0) -> None:
        self.method = method
        self.started = time.monotonic()
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.sock.sendall(build_request(port, method, target, None, headers) + body_start)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> Response:
        return read_response(self.sock, self.method, self.started)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------
# Engine.IO v4 payloads, from the protocol description

RECORD_SEPARATOR = '\x1e'
OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = '0123456'


class Packet(NamedTuple):
    type: str            # the type digit
    data: str | bytes = ''

    @classmethod
    def message(cls, data: str | bytes) -> Packet:
        return cls(MESSAGE, data)


class PayloadError(ValueError):
    pass


def encode_packet(packet: Packet) -> str:
    if isinstance(packet.data, bytes):
        assert packet.type == MESSAGE, 'binary data only in messages'
        return 'b' + base64.b64encode(packet.data).decode('ascii')
    return packet.type + packet.data


def encode_payload(packets: Iterable[Packet | str | bytes]) -> bytes:
    """Packets (a bare str or bytes is a message) as a polling body."""
    parts = []
    for item in packets:
        packet = item if isinstance(item, Packet) else Packet.message(item)
        parts.append(encode_packet(packet))
    return RECORD_SEPARATOR.join(parts).encode('utf-8')


def decode_payload(body: bytes) -> list[Packet]:
    """Strictly decode a polling response body."""
    try:
        text = body.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise PayloadError(f'payload is not UTF-8: {body[:100]!r}') from exc
    packets = []
    for part in text.split(RECORD_SEPARATOR):
        if not part:
            raise PayloadError(f'empty packet in payload {body[:200]!r}')
        if part[0] == 'b':
            try:
                packets.append(Packet(MESSAGE, base64.b64decode(part[1:], validate=True)))
            except binascii.Error as exc:
                raise PayloadError(f'bad base64 in {part[:100]!r}') from exc
        elif part[0] in '0123456':
            packets.append(Packet(part[0], part[1:]))
        else:
            raise PayloadError(f'unknown packet type in {part[:100]!r}')
    return packets


# --------------------------------------------------------------------------
# polling client


def expect_error(resp: Response, status: int, code: int) -> dict[str, Any]:
    """Assert an Engine.IO HTTP error: status, JSON content type, {"code", "message"}."""
    assert resp.status == status, f'expected HTTP {status} code {code}, got {resp}'
    assert resp.content_type.startswith('application/json'), f'error not JSON: {resp}'
    try:
        body = resp.json()
    except ValueError as exc:
        raise AssertionError(f'error body is not JSON: {resp}') from exc
    assert isinstance(body, dict) and set(body) == {'code', 'message'}, f'error body keys: {resp}'
    assert isinstance(body['message'], str), f'error message not a string: {resp}'
    assert body['code'] == code, f'expected code {code}, got {resp}'
    return body


class SessionClosed(AssertionError):
    """The server closed the session while the test expected it open."""


class PollingClient:
    """One Engine.IO session over long-polling; every request is a fresh connection."""

    def __init__(self, server: LiveServer | int, path: str = '/engine.io/',
                 headers: Headers | None = None, timeout: float = 10.0) -> None:
        self.server = None if isinstance(server, int) else server
        self.port = server if isinstance(server, int) else server.port
        self.path = path
        self.headers = _header_items(headers)
        self.timeout = timeout
        self.sid: str | None = None
        self.open: dict[str, Any] | None = None
        self.open_response: Response | None = None
        self.opened_at = 0.0       # monotonic time the handshake response arrived
        self.polls: list[list[Packet]] = []   # every payload poll() returned

    # -- requests

    def target(self, sid: bool | str = True, transport: str = 'polling', extra: str = '') -> str:
        query = f'EIO=4&transport={transport}'
        if sid is True:
            assert self.sid, 'no session: call handshake() first'
            query += '&sid=' + quote(self.sid, safe='')
        elif sid:
            query += '&sid=' + quote(sid, safe='')
        if extra:
            query += '&' + extra
        return f'{self.path}?{query}'

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: Headers | None = None, timeout: float | None = None) -> Response:
        return http_request(self.port, method, target, body, self.headers + _header_items(headers),
                            self.timeout if timeout is None else timeout)

    def handshake(self, extra: str = '', headers: Headers | None = None) -> dict[str, Any]:
        resp = self.request('GET', self.target(sid=False, extra=extra), headers=headers)
        assert resp.status == 200, f'handshake failed: {resp}'
        packets = decode_payload(resp.body)
        assert packets and packets[0].type == OPEN, f'handshake without open packet: {resp}'
        self.open = json.loads(packets[0].data)
        self.sid = self.open['sid']
        self.open_response = resp
        self.opened_at = time.monotonic()
        return self.open

    def get(self, timeout: float | None = None, extra: str = '',
            headers: Headers | None = None) -> Response:
        return self.request('GET', self.target(extra=extra), headers=headers, timeout=timeout)

    def poll(self, timeout: float | None = None) -> list[Packet]:
        resp = self.get(timeout)
        assert resp.status == 200, f'poll failed: {resp}'
        packets = decode_payload(resp.body)
        self.polls.append(packets)
        return packets

    def post(self, *packets: Packet | str | bytes, body: bytes | None = None,
             headers: Headers | None = None, timeout: float | None = None, extra: str = '') -> Response:
        if body is None:
            body = encode_payload(packets)
        items = _header_items(headers)
        if not any(name.lower() == 'content-type' for name, _ in items):
            items.append(('Content-Type', 'text/plain;charset=UTF-8'))
        return self.request('POST', self.target(extra=extra), body, items, timeout)

    def post_ok(self, *packets: Packet | str | bytes, **kwargs: Any) -> Response:
        resp = self.post(*packets, **kwargs)
        assert resp.status == 200 and resp.body == b'ok', f'POST not ok: {resp}'
        return resp

    def send(self, *messages: str | bytes) -> None:
        self.post_ok(*[Packet.message(m) for m in messages])

    def pong(self) -> None:
        self.post_ok(Packet(PONG))

    def close(self) -> None:
        """Best-effort close packet; errors ignored (the session may be gone)."""
        if self.sid:
            try:
                self.post(Packet(CLOSE), timeout=3.0)
            except OSError:
                pass

    # -- higher level

    def receive(self, count: int, timeout: float = 5.0, answer_pings: bool = True) -> list[str | bytes]:
        """Poll until ``count`` messages arrived; pings are answered, noops skipped.

        Raises SessionClosed on a close packet, AssertionError after ``timeout``.
        """
        messages: list[str | bytes] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f'got {len(messages)} of {count} messages in {timeout} s: {messages!r}')
            for packet in self.poll(timeout=remaining + 3.0):
                if packet.type == MESSAGE:
                    messages.append(packet.data)
                elif packet.type == PING and answer_pings:
                    self.pong()
                elif packet.type == CLOSE:
                    raise SessionClosed(f'session closed after {len(messages)} messages: {messages!r}')
        assert len(messages) == count, f'more messages than expected: {messages!r}'
        return messages

    def expect_reason(self, reason: str, timeout: float = 5.0) -> None:
        """The echo app's disconnect handler ran for this session, with ``reason``.

        That it runs exactly once is checked over the server's whole life when
        the server stops (``duplicate_disconnects``), where a late second call
        cannot be missed."""
        assert self.server is not None and self.sid
        server, sid = self.server, self.sid
        reasons = wait_until(lambda: disconnect_reasons(server, sid), timeout,
                             message=f'disconnect handler call for {sid}')
        assert reasons == [reason]

    def expect_gone(self, reason: str, timeout: float = 5.0) -> None:
        """The session ended at once (a parse error): the very next GET answers
        400 code 1, without waiting for anything, and the disconnect handler
        ran with ``reason``."""
        expect_error(self.get(timeout=timeout), 400, 1)
        self.expect_reason(reason, timeout)

    def expect_closed(self, timeout: float = 5.0, reason: str | None = None) -> None:
        """The session is over: a GET now answers 400 code 1. With ``reason``:
        see ``expect_reason``."""
        if reason is not None:
            self.expect_reason(reason, timeout)
        expect_error(self.get(timeout=timeout), 400, 1)


def session_state(server: LiveServer | int, sid: str) -> dict[str, Any]:
    """What the echo app's server (or port) holds for ``sid`` now (tests/apps/echo.py ``/__session``)."""
    port = server if isinstance(server, int) else server.port
    resp = http_request(port, 'GET', f'/__session?sid={quote(sid, safe="")}')
    assert resp.status == 200, resp
    return resp.json()


def wait_for_session(server: LiveServer | int, sid: str, timeout: float = 5.0, **expected: Any) -> dict[str, Any]:
    """Wait until the server reports ``expected`` (e.g. ``get_waiting=True``) for ``sid``."""
    seen: list[dict[str, Any]] = []

    def matches() -> dict[str, Any] | None:
        state = session_state(server, sid)
        seen[:] = [state]
        return state if all(state.get(k) == v for k, v in expected.items()) else None
    try:
        return wait_until(matches, timeout, message=f'session {sid} with {expected}')
    except AssertionError as exc:
        raise AssertionError(f'{exc}; last state {seen[0] if seen else None}') from None


def waiting_get(client: PollingClient, timeout: float = 10.0) -> Background:
    """A long-poll GET in the background, returned once the server reports it waiting."""
    assert client.sid
    pending = Background(client.get, timeout)
    wait_for_session(client.server or client.port, client.sid, get_waiting=True)
    return pending


def disconnect_reasons(server: LiveServer, sid: str) -> list[str]:
    """Reasons the echo app's disconnect handler logged for ``sid`` (tests/apps/echo.py
    writes ``echo: disconnect <sid> <reason>``)."""
    prefix = f'echo: disconnect {sid} '
    return [line[len(prefix):] for line in server.log().splitlines() if line.startswith(prefix)]


def messages_received(server: LiveServer, sid: str) -> list[str]:
    """The messages the echo app's handler logged for ``sid``, in order, as it
    writes them (``echo: message <sid> <repr>``: ``'a'`` for the text ``a``)."""
    prefix = f'echo: message {sid} '
    return [line[len(prefix):] for line in server.log().splitlines() if line.startswith(prefix)]


def duplicate_disconnects(server: LiveServer) -> dict[str, list[str]]:
    """Sessions whose disconnect handler the echo app logged more than once: sid -> reasons.
    Meant for a server that has stopped (its log is complete)."""
    reasons: dict[str, list[str]] = {}
    for line in server.log().splitlines():
        if line.startswith('echo: disconnect '):
            sid, _, reason = line[len('echo: disconnect '):].partition(' ')
            reasons.setdefault(sid, []).append(reason)
    return {sid: found for sid, found in reasons.items() if len(found) > 1}


# --------------------------------------------------------------------------
# small concurrency helpers


class Background:
    """Run ``fn(*args)`` in a daemon thread; ``result()`` returns or re-raises."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self._value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in result()
            self._error = exc
        finally:
            self.finished_at = time.monotonic()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float = 10.0) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f'background call did not finish within {timeout} s')
        if self._error is not None:
            raise self._error
        return self._value


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02,
               message: str = 'condition') -> Any:
    """Poll ``predicate`` until it returns something true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f'{message} not met within {timeout} s')
        time.sleep(interval)    # the polling interval of this bounded wait, the one place for it
