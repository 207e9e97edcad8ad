"""The official client, npm engine.io-client 6, in Node, against the echo app.

For each client mode (polling only, WebSocket only, and the default: polling,
then the upgrade) one Node process runs every case below at once, each on its
own connection, and reports what it saw (tests/interop/node_client.mjs); the
tests here check those reports and the server's log.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from tests.live import LiveServer, disconnect_reasons, wait_until

from .tools import package_version, run_node_script

pytestmark = pytest.mark.interop

MODES = {
    'polling': {'transports': ['polling'], 'upgrade': False},
    'websocket': {'transports': ['websocket'], 'upgrade': False},
    'default': {'transports': ['polling', 'websocket'], 'upgrade': True},
}

TEXTS = [
    'héllo wörld, ünïcödé: 日本語, Ελληνικά, русский',
    'emoji 🎉👍🏽🇫🇷 and a family 👨‍👩‍👧 in one grapheme',
    'line one\nline two\n',
    '\n',
    '{"a": [1, 2.50, "x"], "b": null, "c": {"d": true}}',
    '[1, 2, 3]',
    '"a JSON string"',
    '42',
    'true',
    'null',
    '',
    '4',
    'b',
    '  spaces around  ',
]
BINARIES = [
    bytes(range(256)),
    b'\x00',
    b'',
    'text as UTF-8 bytes ✓'.encode(),
    hashlib.sha256(b'seed').digest() * 40,
]
BATCH = [f'batch-{i:02d} ü' for i in range(20)]
LARGE_TEXT_UNIT = 'abcdefghij€🎉\n'                  # 18 bytes in UTF-8
LARGE_TEXT_TIMES = 500_000 // 18                     # about 500 kB
LARGE_BINARY_UNIT = bytes(range(256))
LARGE_BINARY_TIMES = 500_000 // 256
IDLE_MS = 1500                                       # 5 ping intervals of the fast server


def text(value: str) -> dict[str, Any]:
    return {'text': value}


def binary(value: bytes) -> dict[str, Any]:
    return {'binary': base64.b64encode(value).decode('ascii')}


def scenario(mode: str, server: LiveServer, fast_server: LiveServer) -> dict[str, Any]:
    upgrading = mode == 'default'
    common = {**MODES[mode], 'url': server.url, 'wait_upgrade': upgrading, 'timeout_ms': 15000}
    cases = [
        {**common, 'name': 'text', 'send': [text(t) for t in TEXTS], 'expect': len(TEXTS)},
        {**common, 'name': 'binary', 'expect': len(BINARIES) + 1,
         'send': [binary(BINARIES[0]), text('between'), *[binary(b) for b in BINARIES[1:]]]},
        # queued before the session opens: the client sends them in one write
        {**common, 'name': 'batch', 'send_when': 'opening', 'send': [text(t) for t in BATCH],
         'expect': len(BATCH)},
        {**common, 'name': 'large-text', 'expect': 1,
         'send': [{'text': LARGE_TEXT_UNIT, 'times': LARGE_TEXT_TIMES}]},
        {**common, 'name': 'large-binary', 'expect': 1,
         'send': [{**binary(LARGE_BINARY_UNIT), 'times': LARGE_BINARY_TIMES}]},
        {**common, 'name': 'idle', 'url': fast_server.url, 'send': [text('before')], 'expect': 1,
         'idle_ms': IDLE_MS, 'send_after_idle': [text('after')]},
        {**common, 'name': 'server-close', 'send': [text('hello')], 'expect': 1, 'close': 'server'},
    ]
    if upgrading:
        cases.append({**common, 'name': 'after-upgrade', 'send_when': 'upgraded',
                      'send': [text('on the WebSocket ✓'), binary(b'\x01\x02')], 'expect': 2})
    return {'cases': cases}


@pytest.fixture(scope='module', params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope='module')
def report(mode: str, interop_server: LiveServer, interop_fast_server: LiveServer) -> dict[str, Any]:
    """The Node script's report for this mode, with the cases by name."""
    out = run_node_script('node_client.mjs', scenario(mode, interop_server, interop_fast_server),
                          timeout=60)
    out['by_name'] = {case['name']: case for case in out['cases']}
    return out


@pytest.fixture
def case(request: pytest.FixtureRequest, report: dict[str, Any]) -> dict[str, Any]:
    """The report of the case named like the test (test_large_text -> 'large-text')."""
    name = request.node.originalname.removeprefix('test_').replace('_', '-')
    found = report['by_name'][name]
    assert found['error'] is None, f'{name}: {found["error"]}\nevents: {found["events"]}'
    return found


def texts(case: dict[str, Any]) -> list[str]:
    out = []
    for message in case['received']:
        if message['kind'] == 'undefined':
            out.append('')      # how engine.io-client delivers an empty text message
            continue
        assert message['kind'] == 'text', f'expected text, got {message}'
        out.append(message['data'])
    return out


def check_transports(case: dict[str, Any], mode: str) -> None:
    if mode == 'polling':
        assert (case['transport_at_open'], case['transport_final']) == ('polling', 'polling')
    elif mode == 'websocket':
        assert (case['transport_at_open'], case['transport_final']) == ('websocket', 'websocket')
        assert case['posts'] == [], 'a WebSocket-only client made polling POSTs'
    else:
        assert case['transport_at_open'] == 'polling'
        assert case['upgrade_ms'] is not None, f'no upgrade event: {case["events"]}'
        assert case['transport_final'] == 'websocket'


def expect_reason(server: LiveServer, sid: str, reason: str) -> None:
    wait_until(lambda: disconnect_reasons(server, sid), timeout=5,
               message=f'the disconnect handler to run for {sid}')
    assert disconnect_reasons(server, sid) == [reason]


def test_client_version(report: dict[str, Any]) -> None:
    assert report['client'] == package_version('engine.io-client')
    assert report['client'].startswith('6.')


def test_text(case: dict[str, Any], mode: str) -> None:
    assert texts(case) == TEXTS
    check_transports(case, mode)


def test_binary(case: dict[str, Any], mode: str) -> None:
    got = case['received']
    assert [m['kind'] for m in got] == ['binary', 'text'] + ['binary'] * (len(BINARIES) - 1)
    assert got[1]['data'] == 'between'
    del got[1]
    assert [base64.b64decode(m['b64']) for m in got] == BINARIES
    check_transports(case, mode)


def test_batch(case: dict[str, Any], mode: str) -> None:
    assert texts(case) == BATCH
    if mode != 'websocket':
        messages = [post for post in case['posts'] if '4' in post['types']]
        assert messages, f'no POST carried the messages: {case["posts"]}'
        assert messages[0]['types'] == ['4'] * 20, \
            f'the 20 queued messages did not go in one POST: {case["posts"]}'
    check_transports(case, mode)


def test_large_text(case: dict[str, Any], mode: str) -> None:
    sent = (LARGE_TEXT_UNIT * LARGE_TEXT_TIMES).encode()
    assert len(sent) > 499_000
    [got] = case['received']
    assert got['kind'] == 'text'
    assert got['sha256'] == hashlib.sha256(sent).hexdigest()
    check_transports(case, mode)


def test_large_binary(case: dict[str, Any], mode: str) -> None:
    sent = LARGE_BINARY_UNIT * LARGE_BINARY_TIMES
    [got] = case['received']
    assert (got['kind'], got['length']) == ('binary', len(sent))
    assert got['sha256'] == hashlib.sha256(sent).hexdigest()
    check_transports(case, mode)


def test_idle(case: dict[str, Any], mode: str, interop_fast_server: LiveServer) -> None:
    """Idle for 5 ping intervals (0.3 s), answering pings: still connected, still echoing."""
    assert texts(case) == ['before', 'after']
    assert case['pings'] >= 3, f'only {case["pings"]} pings in {IDLE_MS} ms: {case["events"]}'
    assert 'ping timeout' not in disconnect_reasons(interop_fast_server, case['sid'])
    check_transports(case, mode)


def test_upgrade_event(report: dict[str, Any], mode: str) -> None:
    """Every default-mode case saw the `upgrade` event; no other mode upgraded."""
    for case in report['cases']:
        assert case['error'] is None, f'{case["name"]}: {case["error"]}'
        if mode == 'default':
            assert case['transport_at_open'] == 'polling', case['name']
            assert case['upgrade_ms'] is not None, f'{case["name"]}: no upgrade: {case["events"]}'
            assert case['upgrade_ms'] < 5000
            assert case['transport_final'] == 'websocket', case['name']
        else:
            assert case['upgrade_ms'] is None, case['name']
    if mode == 'default':
        # messages sent from the `upgrade` event handler go on the new WebSocket
        got = report['by_name']['after-upgrade']['received']
        assert got[0] == {**got[0], 'kind': 'text', 'data': 'on the WebSocket ✓'}
        assert (got[1]['kind'], base64.b64decode(got[1]['b64'])) == ('binary', b'\x01\x02')


def test_server_close(case: dict[str, Any], mode: str, interop_server: LiveServer) -> None:
    """The server's disconnect() reaches the client as a clean close."""
    assert texts(case) == ['hello']
    assert case['close_reason'] == 'transport close', case['events']
    expect_reason(interop_server, case['sid'], 'server disconnect')


def test_client_close(report: dict[str, Any], mode: str, interop_server: LiveServer,
                      interop_fast_server: LiveServer) -> None:
    """Every case the client closed ended on the server at once, for the right reason:
    a close packet on polling, the WebSocket's close on WebSocket."""
    for case in report['cases']:
        if case['name'] == 'server-close':
            continue
        assert case['error'] is None, f'{case["name"]}: {case["error"]}'
        assert case['close_reason'] == 'forced close', (case['name'], case['events'])
        server = interop_fast_server if case['name'] == 'idle' else interop_server
        want = 'client disconnect' if case['transport_final'] == 'polling' else 'transport close'
        expect_reason(server, case['sid'], want)
