"""An application that streams to its clients, for the defect tests.

Configured from the environment at import time (as tests/apps/echo.py):

    EIO_PING_INTERVAL, EIO_PING_TIMEOUT   seconds (float)
    STREAM_SECONDS    on connect the handler queues STREAM_PRELOAD messages, then
                      a background task sends more for this many seconds, in
                      bursts of STREAM_BURST with a sleep of STREAM_PAUSE seconds
                      between, then 'stream done <count>' (unset: no stream).
                      Messages are 's<i>' padded to STREAM_SIZE bytes (200)
    EIO_MAX_QUEUED_PACKETS  optional (int)
    EIO_LOG_LEVEL     optional: configure logging to stderr at this level

Text messages:

    __badtext         the handler sends a lone surrogate and answers
                      'refused <ExceptionName>' or 'sent'
    anything else     echoed

Every disconnect is written to stderr as ``stream: disconnect <sid> <reason>``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import engineio_wsgi

_level = os.environ.get('EIO_LOG_LEVEL', '').strip().upper()
if _level:
    logging.basicConfig(level=getattr(logging, _level, logging.INFO), stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')

_options: dict[str, Any] = {}
for _name, _option in (('EIO_PING_INTERVAL', 'ping_interval'),
                       ('EIO_PING_TIMEOUT', 'ping_timeout')):
    if os.environ.get(_name):
        _options[_option] = float(os.environ[_name])
if os.environ.get('EIO_MAX_QUEUED_PACKETS'):
    _options['max_queued_packets'] = int(os.environ['EIO_MAX_QUEUED_PACKETS'])
STREAM_SECONDS = float(os.environ.get('STREAM_SECONDS') or 0)
STREAM_SIZE = int(os.environ.get('STREAM_SIZE') or 200)
STREAM_BURST = int(os.environ.get('STREAM_BURST') or 50)
STREAM_PAUSE = float(os.environ.get('STREAM_PAUSE') or 0)
STREAM_PRELOAD = int(os.environ.get('STREAM_PRELOAD') or 0)

eio = engineio_wsgi.Server(**_options)


def _note(*parts: object) -> None:
    sys.stderr.write(' '.join(['stream:', *map(str, parts)]) + '\n')
    sys.stderr.flush()


def _stream(sid: str, sent: int) -> None:
    pad = 'x' * STREAM_SIZE
    deadline = eio.backend.monotonic() + STREAM_SECONDS
    while eio.backend.monotonic() < deadline:
        for _ in range(STREAM_BURST):
            eio.send(sid, f's{sent}{pad}')
            sent += 1
        # part of the scenario: let the other threads (or greenlets) run, as
        # any producer of a steady stream does
        eio.sleep(STREAM_PAUSE)
    eio.send(sid, f'stream done {sent}')


@eio.on('connect')
def on_connect(sid: str, environ: dict[str, Any]) -> None:
    if not STREAM_SECONDS:
        return
    # queued before the transport takes the session over: the stream is
    # under way from its first write on
    pad = 'x' * STREAM_SIZE
    for i in range(STREAM_PRELOAD):
        eio.send(sid, f's{i}{pad}')
    eio.start_background_task(_stream, sid, STREAM_PRELOAD)


@eio.on('disconnect')
def on_disconnect(sid: str, reason: Any = None) -> None:
    _note('disconnect', sid, reason)


@eio.on('message')
def on_message(sid: str, data: str | bytes) -> None:
    if data == '__badtext':
        try:
            eio.send(sid, 'lone \ud800 surrogate')
        except Exception as exc:  # noqa: BLE001 - reported to the client
            eio.send(sid, f'refused {type(exc).__name__}')
        else:
            eio.send(sid, 'sent')
        return
    eio.send(sid, data)


app = engineio_wsgi.WSGIApp(eio)
