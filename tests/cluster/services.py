"""Real redis-server and nginx processes for the tests of several processes.

Each runs in the foreground as a child of the test process, as the current
user, on a free loopback port, with every file it writes in its own temporary
directory; the tests never use a system-wide redis or nginx (the Debian
packages' default ports 6379 and 80 are never touched).
"""

from __future__ import annotations

import heapq
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence

import pytest

from tests.live import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _need(command: str, package: str) -> str:
    path = shutil.which(command) or shutil.which(command, path='/usr/sbin:/usr/bin:/sbin')
    if path is None:
        pytest.fail(f'{command} is missing: install the Debian package {package} '
                    '(scripts/test does when run as root)')
    return path


def _stop(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class RedisServer:
    """redis-server on 127.0.0.1:port, nothing on disk; ``stop``/``start`` keep the port."""

    def __init__(self, directory: str) -> None:
        self.binary = _need('redis-server', 'redis-server')
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(directory, 'redis.log')
        self.unix_socket = os.path.join(directory, 'redis.sock')

    @property
    def url(self) -> str:
        return f'redis://127.0.0.1:{self.port}/0'

    def start(self, timeout: float = 10.0) -> None:
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(
                [self.binary, '--port', str(self.port), '--bind', '127.0.0.1',
                 '--save', '', '--appendonly', 'no', '--dir', self.directory,
                 '--daemonize', 'no', '--protected-mode', 'yes',
                 '--unixsocket', self.unix_socket, '--unixsocketperm', '700'],
                cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._pong, timeout, message=f'redis-server PONG on port {self.port}')

    def _pong(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            pytest.fail(f'redis-server exited:\n{self.log()}')
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=1.0) as sock:
                sock.sendall(b'PING\r\n')
                return sock.recv(16).startswith(b'+PONG')
        except OSError:
            return False

    def stop(self) -> None:
        """Stops the process and waits until the port refuses connections."""
        _stop(self.proc)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def log(self) -> str:
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''


_NGINX_CONF = """\
daemon off;
master_process on;
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    # no ip_hash / hash: every request goes to the next backend (round robin)
    upstream backends {{
{servers}
{keepalive}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;   # with the port: same-origin checks compare it
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 120s;
            proxy_next_upstream off;
        }}
    }}
}}
"""


def _nginx_user() -> str:
    """As root, nginx would run its workers as "nobody", who cannot use the
    temporary directory: keep them the current user. Otherwise nginx runs as
    the current user anyway (and a user directive only earns a warning)."""
    if os.geteuid() != 0:
        return ''
    import grp
    import pwd
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f'user {user} {group};\n'


class Nginx:
    """nginx balancing every request round robin over ``backends`` (ports)."""

    def __init__(self, directory: str, backends: Sequence[int], keepalive: int = 16) -> None:
        """``keepalive``: idle connections kept to the backends; 0 opens one per
        request (then one gunicorn with several workers on a port gets each
        request on whichever worker accepts it, not on the worker that
        accepted the reused connection)."""
        self.binary = _need('nginx', 'nginx-light')
        self.directory = directory
        self.backends = list(backends)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        servers = '\n'.join(f'        server 127.0.0.1:{port};' for port in self.backends)
        self.conf = os.path.join(directory, 'nginx.conf')
        with open(self.conf, 'w', encoding='utf-8') as f:
            f.write(_NGINX_CONF.format(dir=directory, port=self.port, servers=servers,
                                       user=_nginx_user(),
                                       keepalive=f'        keepalive {keepalive};' if keepalive
                                       else ''))

    def start(self, timeout: float = 10.0) -> None:
        with open(os.path.join(self.directory, 'stderr.log'), 'ab') as log:
            self.proc = subprocess.Popen(
                [self.binary, '-p', self.directory, '-c', self.conf, '-e',
                 os.path.join(self.directory, 'error.log')],
                cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._answers, timeout, message=f'nginx on port {self.port}')

    def _answers(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            pytest.fail(f'nginx exited:\n{self.error_log()}')
        # any HTTP answer: a backend's, or nginx's 502 while none runs
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=1.0) as sock:
                sock.settimeout(5.0)
                sock.sendall(b'GET /__nginx_ready HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                             b'Connection: close\r\n\r\n')
                return sock.recv(16).startswith(b'HTTP/1.')
        except OSError:
            return False

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def error_log(self) -> str:
        parts = []
        for name in ('stderr.log', 'error.log'):
            try:
                with open(os.path.join(self.directory, name), encoding='utf-8',
                          errors='replace') as f:
                    parts.append(f.read())
            except FileNotFoundError:
                pass
        return '\n'.join(parts)

    def access_log(self) -> str:
        try:
            with open(os.path.join(self.directory, 'access.log'), encoding='utf-8') as f:
                return f.read()
        except FileNotFoundError:
            return ''


class LatencyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``port`` that holds every chunk the
    server sends for ``delay`` seconds before passing it on (a Redis that
    far away); what the client sends goes through at once. Each chunk is
    delayed by ``delay`` from when it arrived, not behind the chunks before
    it, so replies to pipelined or concurrent commands are not queued."""

    def __init__(self, port: int, delay: float) -> None:
        self.target = port
        self.delay = delay
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name='latency-proxy', daemon=True).start()

    def url(self) -> str:
        return f'redis://127.0.0.1:{self.port}/0'

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(('127.0.0.1', self.target))
            self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._held, args=(server, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            sink.close()

    def _held(self, source: socket.socket, sink: socket.socket) -> None:
        due: list[tuple[float, int, bytes]] = []   # (when, arrival number, chunk)
        ready = threading.Condition()
        ended = [False]

        def read() -> None:
            number = 0
            try:
                while chunk := source.recv(65536):
                    with ready:
                        number += 1
                        heapq.heappush(due, (time.monotonic() + self.delay, number, chunk))
                        ready.notify()
            except OSError:
                pass
            with ready:
                ended[0] = True
                ready.notify()
        threading.Thread(target=read, daemon=True).start()
        try:
            while True:
                with ready:
                    while not due and not ended[0]:
                        ready.wait()
                    if not due:
                        return
                    when, _, chunk = due[0]
                    wait = when - time.monotonic()
                    if wait > 0:
                        ready.wait(wait)
                        continue
                    heapq.heappop(due)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass


def temp_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


def wait_port_closed(port: int, timeout: float = 5.0) -> None:
    def closed() -> bool:
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                return False
        except OSError:
            return True
    wait_until(closed, timeout, message=f'port {port} closed')
