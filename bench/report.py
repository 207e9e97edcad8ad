"""Turn ``results/results.json`` into ``results/RESULTS.md`` and ``results/chart.png``.

    python report.py [results.json]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / 'results'

GEVENT = ['eiowsgi-gevent', 'pyeio-gevent', 'node']
GTHREAD = ['eiowsgi-gthread', 'pyeio-gthread']
SOCKETIO = ['sio-eiowsgi-gevent', 'sio-pyeio-gevent', 'sio-node']
SOCKETIO_GTHREAD = ['sio-eiowsgi-gthread', 'sio-pyeio-gthread']
LABELS = {
    'sio-eiowsgi-gthread': 'python-socketio on engineio_wsgi',
    'sio-pyeio-gthread': 'python-socketio on python-engineio',
    'sio-eiowsgi-gevent': 'python-socketio on engineio_wsgi',
    'sio-pyeio-gevent': 'python-socketio on python-engineio',
    'sio-node': 'Node socket.io 4',
    'eiowsgi-gevent': 'engineio_wsgi',
    'pyeio-gevent': 'python-engineio',
    'node': 'Node engine.io 6',
    'eiowsgi-gthread': 'engineio_wsgi',
    'pyeio-gthread': 'python-engineio',
}
CHART_LABELS = {
    'sio-eiowsgi-gthread': 'python-socketio on engineio_wsgi gthread',
    'sio-pyeio-gthread': 'python-socketio on python-engineio gthread',
    'sio-eiowsgi-gevent': 'python-socketio on engineio_wsgi',
    'sio-pyeio-gevent': 'python-socketio on python-engineio',
    'sio-node': 'Node socket.io 4',
    'eiowsgi-gevent': 'engineio_wsgi gevent',
    'pyeio-gevent': 'python-engineio gevent',
    'node': 'Node engine.io 6',
    'eiowsgi-gthread': 'engineio_wsgi gthread',
    'pyeio-gthread': 'python-engineio gthread',
}
COLORS = {
    'sio-eiowsgi-gthread': '#9ecae1',
    'sio-pyeio-gthread': '#fdae6b',
    'sio-eiowsgi-gevent': '#1f77b4',
    'sio-pyeio-gevent': '#ff7f0e',
    'sio-node': '#2ca02c',
    'eiowsgi-gevent': '#1f77b4',
    'pyeio-gevent': '#ff7f0e',
    'node': '#2ca02c',
    'eiowsgi-gthread': '#9ecae1',
    'pyeio-gthread': '#fdae6b',
}

TRAFFIC = [
    ('handshakes', 'rate', 'Handshakes/s (polling handshake + close, 20 at a time)', 0),
    ('handshakes', 'p50_ms', 'Handshake + close, p50 ms', 2),
    ('handshakes', 'rate_per_cpu', 'Handshakes per CPU-second of the server', 0),
    ('handshakes_unclosed', 'rate', 'Handshakes/s, sessions left open (polling handshake only, '
     '20 at a time, a bounded number; each session stays until its ping timeout)', 0),
    ('handshakes_unclosed', 'p50_ms', 'Handshake, sessions left open, p50 ms', 2),
    ('handshakes_unclosed', 'p99_ms', 'Handshake, sessions left open, p99 ms', 2),
    ('handshakes_unclosed', 'rate_per_cpu', 'Handshakes, sessions left open, per CPU-second '
     'of the server', 0),
    ('ws_echo_1', 'rate', 'WebSocket echo, 1 session: msg/s', 0),
    ('ws_echo_1', 'p50_ms', 'WebSocket echo, 1 session: p50 ms', 3),
    ('ws_echo_1', 'p99_ms', 'WebSocket echo, 1 session: p99 ms', 3),
    ('ws_echo_50', 'rate', 'WebSocket echo, 50 sessions: msg/s', 0),
    ('ws_echo_50', 'rate_per_cpu',
     'WebSocket echo, 50 sessions: msg per CPU-second of the server', 0),
    ('ws_echo_50', 'p50_ms', 'WebSocket echo, 50 sessions: p50 ms', 2),
    ('ws_echo_50', 'p99_ms', 'WebSocket echo, 50 sessions: p99 ms', 2),
    ('poll_echo_1', 'rate', 'Polling echo, 1 session: msg/s', 0),
    ('poll_echo_1', 'p50_ms', 'Polling echo, 1 session: p50 ms', 2),
    ('poll_echo_1', 'p99_ms', 'Polling echo, 1 session: p99 ms', 2),
    ('poll_echo_50', 'rate', 'Polling echo, 50 sessions: msg/s', 0),
    ('poll_echo_50', 'rate_per_cpu',
     'Polling echo, 50 sessions: msg per CPU-second of the server', 0),
    ('poll_echo_50', 'p50_ms', 'Polling echo, 50 sessions: p50 ms', 2),
    ('poll_echo_50', 'p99_ms', 'Polling echo, 50 sessions: p99 ms', 2),
]

SIO_ROOM = 'sio_room_1000'
SIO_ROWS = [
    ('sio_connects', 'rate',
     'Connects/s (polling handshake + CONNECT, then disconnect; 20 at a time)', 0),
    ('sio_connects', 'p50_ms', 'Connect, p50 ms', 1),
    ('sio_connects', 'rate_per_cpu', 'Connects per CPU-second of the server', 0),
    ('sio_ack_ws_1', 'rate', 'WebSocket emit with ack, 1 client: acks/s', 0),
    ('sio_ack_ws_1', 'p50_ms', 'WebSocket emit with ack, 1 client: p50 ms', 3),
    ('sio_ack_ws_50', 'rate', 'WebSocket emit with ack, 50 clients: acks/s', 0),
    ('sio_ack_ws_50', 'rate_per_cpu',
     'WebSocket emit with ack, 50 clients: acks per CPU-second', 0),
    ('sio_ack_ws_50', 'p50_ms', 'WebSocket emit with ack, 50 clients: p50 ms', 2),
    ('sio_ack_ws_50', 'p99_ms', 'WebSocket emit with ack, 50 clients: p99 ms', 2),
    ('sio_ack_ws_50_defaults', 'rate', 'The same, client offering permessage-deflate '
     '(its default): acks/s', 0),
    ('sio_ack_ws_50_defaults', 'rate_per_cpu', 'The same, client offering permessage-deflate: '
     'acks per CPU-second', 0),
    ('sio_ack_poll_1', 'rate', 'Polling emit with ack, 1 client: acks/s', 0),
    ('sio_ack_poll_1', 'p50_ms', 'Polling emit with ack, 1 client: p50 ms', 2),
    ('sio_ack_poll_50', 'rate', 'Polling emit with ack, 50 clients: acks/s', 0),
    ('sio_ack_poll_50', 'rate_per_cpu',
     'Polling emit with ack, 50 clients: acks per CPU-second', 0),
    ('sio_ack_poll_50', 'p50_ms', 'Polling emit with ack, 50 clients: p50 ms', 2),
    ('sio_ack_poll_50', 'p99_ms', 'Polling emit with ack, 50 clients: p99 ms', 2),
    (SIO_ROOM, 'broadcast_ms',
     'Emit to a room of 1,000 WebSocket clients: ms until all have it', 1),
    (SIO_ROOM, 'server_cpu_ms_per_broadcast', 'Emit to a room of 1,000: server CPU ms per emit', 1),
]
#: (scenario, field, chart label, the same per server CPU-second): what "faster"
#: means for each Socket.IO scenario
SIO_SPEED = [
    ('sio_connects', 'rate', 'connects/s', 'rate_per_cpu'),
    ('sio_ack_ws_1', 'rate', 'WS ack\n1 client', 'rate_per_cpu'),
    ('sio_ack_ws_50', 'rate', 'WS ack\n50 clients', 'rate_per_cpu'),
    ('sio_ack_ws_50_defaults', 'rate', 'WS ack, 50,\nclient defaults', 'rate_per_cpu'),
    ('sio_ack_poll_1', 'rate', 'polling ack\n1 client', 'rate_per_cpu'),
    ('sio_ack_poll_50', 'rate', 'polling ack\n50 clients', 'rate_per_cpu'),
    (SIO_ROOM, 'broadcast_ms', 'room of 1,000\nbroadcast', 'server_cpu_ms_per_broadcast'),
]


def idle_rows(size: int) -> list[tuple[str, str, str, int]]:
    s = f'{size:,}'
    return [
        (f'idle_{size}', 'rss_per_session_kib', f'{s} idle WebSockets: KiB per session', 1),
        (f'idle_{size}', 'server_cpu_pct', f'{s} idle WebSockets: server CPU %', 1),
        (f'idle_{size}', 'answering', f'{s} idle WebSockets: answering pings', 0),
        (f'idle_{size}', 'broadcast_ms', f'{s} idle WebSockets: broadcast to all, ms', 1),
        (f'idle_{size}', 'broadcast_p99_ms',
         f'{s} idle WebSockets: broadcast to all, slowest of the run, ms', 1),
    ]


def idle_sizes(by: dict) -> list[int]:
    """The sizes of the idle_N scenarios in the results."""
    return sorted({int(k[1].split('_')[1]) for k in by
                   if k[1].startswith('idle_') and k[1].split('_')[1].isdigit()})


GTHREAD_IDLE = 'idle_ws_gthread_5000'
GTHREAD_IDLE_ROWS = [
    (GTHREAD_IDLE, 'answering', '5,000 idle WebSockets on one gthread worker, ping every 5 s: '
     'answering pings after the hold', 0),
    (GTHREAD_IDLE, 'alive', '5,000 idle WebSockets on gthread: sessions still open after the hold',
     0),
    (GTHREAD_IDLE, 'gunicorn_threads', '5,000 idle WebSockets on gthread: gunicorn --threads', 0),
    (GTHREAD_IDLE, 'threads_connected', '5,000 idle WebSockets on gthread: OS threads in the '
     'worker once all connected', 0),
    (GTHREAD_IDLE, 'threads_held', '5,000 idle WebSockets on gthread: OS threads after the hold',
     0),
    (GTHREAD_IDLE, 'rss_per_session_kib', '5,000 idle WebSockets on gthread: KiB per session', 1),
    (GTHREAD_IDLE, 'broadcast_ms', '5,000 idle WebSockets on gthread: broadcast to all, ms', 1),
]

FEW_THREADS = 'idle_ws_gthread_10000_t32'
FEW_THREADS_ROWS = [
    (FEW_THREADS, 'answering', '10,000 idle WebSockets on gthread --threads 32, ping every 5 s: '
     'answering pings after 4 intervals', 0),
    (FEW_THREADS, 'threads_connected', '10,000 idle WebSockets on gthread --threads 32: OS '
     'threads once all connected', 0),
    (FEW_THREADS, 'threads_held', '10,000 idle WebSockets on gthread --threads 32: OS threads '
     'after the hold', 0),
    (FEW_THREADS, 'rss_per_session_kib', '10,000 idle WebSockets on gthread --threads 32: KiB '
     'per session', 1),
    (FEW_THREADS, 'broadcast_ms', '10,000 idle WebSockets on gthread --threads 32: broadcast '
     'to all, ms', 1),
]
#: the most OS threads a gthread worker of 32 may hold: its threads, the
#: handler pool (max_worker_threads), the main thread, the heartbeats'
#: scheduler, the I/O loop and gunicorn's own few
FEW_THREADS_BOUND = 32 + 64 + 8

STUCK = 'stuck_readers'
WAVE = 'ping_wave'
#: the servers of both, engineio_wsgi first
STUCK_SERVERS = ['eiowsgi-gevent', 'eiowsgi-gthread', 'pyeio-gevent', 'pyeio-gthread', 'node']
STUCK_ROWS = [
    (STUCK, 'stuck', 'Clients that stop reading, each owed 1 MB', 0),
    (STUCK, 'unloaded_p50_ms', "Healthy client's echo before they come: p50 ms", 2),
    (STUCK, 'unloaded_p99_ms', "Healthy client's echo before they come: p99 ms", 2),
    (STUCK, 'loaded_p50_ms', "Healthy client's echo while they are stuck: p50 ms", 2),
    (STUCK, 'loaded_p99_ms', "Healthy client's echo while they are stuck: p99 ms", 2),
    (STUCK, 'loaded_max_ms', "Healthy client's echo while they are stuck: slowest, ms", 1),
    (STUCK, 'p99_ratio', 'Echo p99 while stuck ÷ p99 before', 2),
    (STUCK, 'loaded_count', 'Echoes while they are stuck', 0),
    (STUCK, 'loaded_seconds', 'Seconds they were stuck (until the last was cut, or the '
     'deadline)', 1),
    (STUCK, 'cut', 'Stuck clients cut by the server', 0),
    (STUCK, 'not_cut', 'Stuck clients not cut by the deadline', 0),
    (STUCK, 'cut_max_s', 'Slowest cut: s after the client stopped reading', 1),
    (STUCK, 'cut_bound_s', 'Ping interval + ping timeout + close timeout, s', 0),
    (STUCK, 'rss_growth_mib', 'Server RSS, peak − before, MiB', 1),
    (STUCK, 'rss_per_stuck_kib', 'Server RSS, peak − before, per stuck client, KiB', 0),
    (STUCK, 'threads_base', 'OS threads before', 0),
    (STUCK, 'threads_peak', 'OS threads, most while stuck', 0),
]
WAVE_ROWS = [
    (WAVE, 'sessions', 'WebSocket sessions that stop answering pings at once', 0),
    (WAVE, 'connect_seconds', 'Seconds their connects took (about the spread of their ping '
     'timeouts)', 2),
    (WAVE, 'gunicorn_threads', 'gunicorn --threads', 0),
    (WAVE, 'pool_bound', "The handlers' pool bound (max_worker_threads)", 0),
    (WAVE, 'threads_before', 'OS threads before the wave', 0),
    (WAVE, 'threads_peak', 'OS threads, most during the wave (sampled every 20 ms)', 0),
    (WAVE, 'first_close_s', 'First session closed by the server: s after they stopped', 2),
    (WAVE, 'last_close_s', 'Every session closed by the server: s after they stopped', 2),
    (WAVE, 'not_closed', 'Sessions not closed by the deadline', 0),
    (WAVE, 'rss_connected_mib', 'Server RSS before the wave, MiB', 1),
    (WAVE, 'rss_peak_mib', 'Server RSS, most during the wave, MiB', 1),
]
#: counts and settings, which no ratio makes sense of
NO_RATIO = ('answering', 'gunicorn_threads', 'stuck', 'cut', 'not_cut', 'loaded_count',
            'loaded_seconds', 'cut_bound_s', 'sessions', 'connect_seconds', 'pool_bound',
            'not_closed', 'threads_base', 'threads_before')
#: a few OS threads more than the pool's bound: gunicorn's own and the engine's
FEW_THREADS_MORE = 8


LOWER_IS_BETTER = ('p50_ms', 'p99_ms', 'rss_per_session_kib', 'server_cpu_pct', 'broadcast_ms',
                   'broadcast_p99_ms', 'server_cpu_ms_per_broadcast')


def load(path: Path) -> tuple[dict, dict[tuple[str, str], list[dict]]]:
    data = json.loads(path.read_text())
    by: dict[tuple[str, str], list[dict]] = {}
    for rec in data['records']:
        if rec.get('server_cpu') is not None:
            rec['server_cpu_pct'] = 100 * rec['server_cpu']
            if rec.get('rate') and rec['server_cpu'] > 0.05:
                rec['rate_per_cpu'] = rec['rate'] / rec['server_cpu']
        if rec.get('foreign_cpu') is not None:
            rec['foreign_cpu_pct'] = 100 * rec['foreign_cpu']
        if rec.get('loadgen_cpu') is not None:
            rec['loadgen_cpu_pct'] = 100 * rec['loadgen_cpu']
        derive_seconds(rec)
        by.setdefault((rec['server'], rec['scenario']), []).append(rec)
    return data['machine'], by


def derive_seconds(rec: dict) -> None:
    """The stuck_readers and ping_wave figures in the units of their tables."""
    for ms, sec in (('cut_max_ms', 'cut_max_s'), ('first_close_ms', 'first_close_s'),
                    ('last_close_ms', 'last_close_s')):
        if rec.get(ms) is not None:
            rec[sec] = rec[ms] / 1000
    for kib in ('rss_connected_kib', 'rss_peak_kib'):
        if rec.get(kib) and rec.get('scenario') == WAVE:
            rec[kib.replace('_kib', '_mib')] = rec[kib] / 1024
    if rec.get('rss_growth_mib') is not None and rec.get('stuck'):
        rec['rss_per_stuck_kib'] = 1024 * rec['rss_growth_mib'] / rec['stuck']


def values(by: dict, server: str, scenario: str, field: str) -> list[float]:
    out = []
    for rec in by.get((server, scenario), []):
        v = rec.get(field)
        if isinstance(v, (int, float)) and not rec.get('error'):
            out.append(float(v))
    return out


def median(by: dict, server: str, scenario: str, field: str) -> float | None:
    vals = values(by, server, scenario, field)
    return statistics.median(vals) if vals else None


def fmt(v: float | None, digits: int) -> str:
    if v is None:
        return '–'
    if digits == 0:
        return f'{v:,.0f}'
    return f'{v:,.{digits}f}'


def cell(by: dict, server: str, scenario: str, field: str, digits: int) -> str:
    if field == 'answering':
        recs = by.get((server, scenario), [])
        if not recs:
            return '–'
        parts = [f"{r.get('answering', 0):,}/{r.get('sessions', 0):,}" for r in recs]
        total = {r.get('connect_failures', 0) for r in recs}
        worst = min(recs, key=lambda r: r.get('answering', 0) - r.get('sessions', 0))
        text = f"{worst.get('answering', 0):,}/{worst.get('sessions', 0):,}"
        if max(total) > 0:
            text += f' ({max(total)} failed to connect)'
        return text if len(set(parts)) == 1 else f'worst {text}'
    vals = values(by, server, scenario, field)
    if not vals:
        return '–'
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med, digits)
    return f'{fmt(med, digits)} ({fmt(min(vals), digits)}–{fmt(max(vals), digits)})'


def ratio(by: dict, a: str, b: str, scenario: str, field: str) -> str:
    if field in NO_RATIO:
        return ''
    x, y = median(by, a, scenario, field), median(by, b, scenario, field)
    if x is None or not y:
        return '–'
    return f'{x / y:.2f}×'


def table(by: dict, servers: list[str], rows: list, ratios: list[tuple[str, str, str]],
          labels: dict[str, str] = LABELS) -> str:
    head = ['', *[labels[s] for s in servers], *[r[2] for r in ratios]]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for scenario, field, label, digits in rows:
        if not any(by.get((s, scenario)) for s in servers):
            continue
        row = [label, *[cell(by, s, scenario, field, digits) for s in servers],
               *[ratio(by, a, b, scenario, field) for a, b, _ in ratios]]
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def targets(by: dict) -> str:
    def r(a: str, b: str, scenario: str, field: str) -> float | None:
        x, y = median(by, a, scenario, field), median(by, b, scenario, field)
        return None if x is None or not y else x / y

    rows = []

    def add(text: str, value: float | None, goal: float, lower: bool = False,
            shown: str | None = None, per_cpu: float | None = None) -> None:
        if value is None:
            rows.append(f'| {text} | – | – | not measured |')
            return
        ok = value <= goal if lower else value >= goal
        extra = '–' if per_cpu is None else f'{per_cpu:.2f}×'
        rows.append(f"| {text} | {shown or f'{value:.2f}×'} | {extra} | "
                    f"{'met' if ok else '**not met**'} |")

    def both(a: str, b: str, scenario: str) -> dict:
        return {'value': r(a, b, scenario, 'rate'), 'per_cpu': r(a, b, scenario, 'rate_per_cpu')}

    def add2(text: str, goal: float, a: str, b: str, scenario: str) -> None:
        v = both(a, b, scenario)
        add(text, v['value'], goal, per_cpu=v['per_cpu'])

    add2('WebSocket echo, 50 sessions ≥ 2× python-engineio', 2,
         'eiowsgi-gevent', 'pyeio-gevent', 'ws_echo_50')
    add2('WebSocket echo, 50 sessions ≥ 0.5× Node engine.io', 0.5,
         'eiowsgi-gevent', 'node', 'ws_echo_50')
    add2('Polling echo, 50 sessions ≥ 3× python-engineio', 3,
         'eiowsgi-gevent', 'pyeio-gevent', 'poll_echo_50')
    add2('Handshakes/s ≥ 2× python-engineio', 2,
         'eiowsgi-gevent', 'pyeio-gevent', 'handshakes')
    for size in (1000, 5000):
        add(f'Idle memory per session ({size:,}) ≤ 0.5× python-engineio',
            r('eiowsgi-gevent', 'pyeio-gevent', f'idle_{size}', 'rss_per_session_kib'), 0.5,
            lower=True)
    recs = by.get(('eiowsgi-gevent', 'idle_10000'), [])
    if recs:
        worst = min(recs, key=lambda x: x.get('answering', 0))
        ok = worst.get('answering', 0) >= 10000
        rows.append(f"| 10,000 idle sessions on one gevent worker, all answering pings | "
                    f"{worst.get('answering', 0):,}/10,000 | | {'met' if ok else '**not met**'} |")
    else:
        rows.append('| 10,000 idle sessions on one gevent worker, all answering pings | – | | '
                    'not measured (full run only) |')
    add2('Threading mode (gthread) WebSocket echo, 50 sessions ≥ 2.5× python-engineio', 2.5,
         'eiowsgi-gthread', 'pyeio-gthread', 'ws_echo_50')
    return '\n'.join(['| target | ratio of medians | ratio per server CPU-second | |',
                      '|---|---|---|---|', *rows])


def targets_13(by: dict) -> str:
    """The targets of issue 13: handshakes and polling, memory, gthread at 5,000, broadcast."""
    rows = []

    def r(a: str, b: str, scenario: str, field: str) -> float | None:
        x, y = median(by, a, scenario, field), median(by, b, scenario, field)
        return None if x is None or not y else x / y

    def add(text: str, value: float | None, goal: float, lower: bool = False,
            shown: str | None = None, per_cpu: float | None = None) -> None:
        if value is None:
            rows.append(f'| {text} | – | – | not measured |')
            return
        ok = value <= goal if lower else value >= goal
        extra = '–' if per_cpu is None else f'{per_cpu:.2f}×'
        rows.append(f"| {text} | {shown or f'{value:.2f}×'} | {extra} | "
                    f"{'met' if ok else '**not met**'} |")

    for worker in ('gevent', 'gthread'):
        a, b = f'eiowsgi-{worker}', f'pyeio-{worker}'
        for scenario, what in (('handshakes', 'Handshakes/s (closed)'),
                               ('handshakes_unclosed', 'Handshakes/s (left open)'),
                               ('poll_echo_1', 'Polling echo, 1 session'),
                               ('poll_echo_50', 'Polling echo, 50 sessions')):
            add(f'{what}, {worker} ≥ 1.5× python-engineio', r(a, b, scenario, 'rate'), 1.5,
                per_cpu=r(a, b, scenario, 'rate_per_cpu'))
    for size in (1000, 5000):
        kib = median(by, 'eiowsgi-gevent', f'idle_{size}', 'rss_per_session_kib')
        add(f'Memory per idle WebSocket ({size:,}, gevent) ≤ 20 KiB', kib, 20, lower=True,
            shown=None if kib is None else f'{kib:.1f} KiB')
    add('Idle CPU with 5,000 WebSockets (gevent) ≤ 2× Node',
        r('eiowsgi-gevent', 'node', 'idle_5000', 'server_cpu_pct'), 2, lower=True)
    recs = by.get(('eiowsgi-gthread', GTHREAD_IDLE), [])
    if recs:
        worst = min(recs, key=lambda x: x.get('answering', 0))
        rows.append(f"| 5,000 idle WebSockets on one gthread worker all answer pings "
                    f"(--threads {worst.get('gunicorn_threads')}) | "
                    f"{worst.get('answering', 0):,}/5,000 | | "
                    f"{'met' if worst.get('answering', 0) >= 5000 else '**not met**'} |")
    else:
        rows.append('| 5,000 idle WebSockets on one gthread worker all answer pings | – | | '
                    'not measured |')
    recs = by.get(('eiowsgi-gthread', FEW_THREADS), [])
    if recs:
        rec = recs[0]
        answering, held = rec.get('answering', 0), rec.get('threads_held') or 0
        most = max(held, rec.get('threads_connected') or 0)
        ok = answering >= 10000 and 0 < most <= FEW_THREADS_BOUND
        rows.append(f"| 10,000 idle WebSockets on one gthread worker with --threads 32 all "
                    f"answer pings over 4 intervals, at most {FEW_THREADS_BOUND} threads | "
                    f"{answering:,}/10,000, {most} threads | | "
                    f"{'met' if ok else '**not met**'} |")
    add('WebSocket echo, 50 sessions (gevent) ≥ 0.5× Node',
        r('eiowsgi-gevent', 'node', 'ws_echo_50', 'rate'), 0.5,
        per_cpu=r('eiowsgi-gevent', 'node', 'ws_echo_50', 'rate_per_cpu'))
    for field, what in (('broadcast_ms', 'median'), ('broadcast_p99_ms', 'slowest')):
        ms = median(by, 'eiowsgi-gevent', 'idle_5000', field)
        add(f'Broadcast to 5,000 WebSockets (gevent, {what}) ≤ 150 ms', ms, 150, lower=True,
            shown=None if ms is None else f'{ms:.0f} ms')
    return '\n'.join(['| target | measured | per server CPU-second | |', '|---|---|---|---|',
                      *rows])


def stuck_targets(by: dict) -> str:
    """Clients that stop reading and a ping-timeout wave, on engineio_wsgi."""
    rows = []

    def add(text: str, rec: dict | None, ok: bool, shown: str) -> None:
        if rec is None:
            rows.append(f'| {text} | – | not measured |')
        else:
            rows.append(f"| {text} | {shown} | {'met' if ok else '**not met**'} |")

    def first(server: str, scenario: str) -> dict | None:
        recs = [r for r in by.get((server, scenario), []) if not r.get('error')]
        return recs[0] if recs else None

    for worker in ('gevent', 'gthread'):
        rec = first(f'eiowsgi-{worker}', STUCK)
        n = f"{rec['stuck']:,}" if rec else 'N'
        ratio_ = rec and rec.get('p99_ratio')
        add(f"{worker}: with {n} clients that stop reading, each owed 1 MB, a healthy "
            f"client's echo p99 within 2× its p99 before they came", rec,
            bool(ratio_) and ratio_ <= 2,
            f'{ratio_:.2f}×' if ratio_ else 'no echo measured')
        if rec:
            bound = rec['cut_bound_s'] + 1
            slowest = rec.get('cut_max_s')
            ok = rec.get('not_cut') == 0 and slowest is not None and slowest <= bound
            shown = (f"{rec.get('cut', 0):,}/{rec['stuck']:,} cut, slowest "
                     f"{slowest if slowest is not None else float('nan'):.1f} s")
        else:
            bound, ok, shown = 0, False, ''
        add(f'{worker}: every stuck client cut within ping interval + ping timeout + close '
            f'timeout ({bound - 1 if rec else "–"} s, and 1 s for the probe that sees it)',
            rec, ok, shown)
        owed = rec and 2 * rec['stuck'] * rec['owed_bytes'] / 2**20
        growth = rec and rec.get('rss_growth_mib')
        add(f"{worker}: memory bounded: the server's RSS grows by at most twice what the "
            f'stuck clients are owed', rec, growth is not None and growth <= owed,
            f'{growth:.0f} MiB (bound {owed:.0f} MiB)' if rec and growth is not None else '–')
    for worker in ('gevent', 'gthread'):
        rec = first(f'eiowsgi-{worker}', WAVE)
        pool = (rec or {}).get('pool_bound') or 0
        n = f"{rec['sessions']:,}" if rec else 'N'
        before, peak = (rec or {}).get('threads_before'), (rec or {}).get('threads_peak')
        ok = before is not None and peak is not None and peak <= before + pool + FEW_THREADS_MORE
        bound = f'{pool} + {FEW_THREADS_MORE}' if pool else f'{FEW_THREADS_MORE}'
        add(f'{worker}: a ping-timeout wave of {n} sessions: OS threads at most those before '
            f'+ {bound} (the pool bound and a few)', rec, ok, f'{before} → {peak}')
        add(f'{worker}: the wave: every session closed by the server', rec,
            bool(rec) and rec.get('not_closed') == 0 and rec.get('closed') == rec['sessions'],
            f"{(rec or {}).get('closed', 0):,}/{(rec or {}).get('sessions', 0):,} in "
            f"{(rec or {}).get('last_close_s') or 0:.1f} s")
    return '\n'.join(['| target | measured | |', '|---|---|---|', *rows])


def stuck_section(by: dict) -> list[str]:
    """Clients that stop reading and a ping-timeout wave, when the run has them."""
    if not any(key[1] in (STUCK, WAVE) for key in by):
        return []
    ratios = [('eiowsgi-gevent', 'pyeio-gevent', 'engineio_wsgi ÷ python-engineio, gevent'),
              ('eiowsgi-gthread', 'pyeio-gthread', 'engineio_wsgi ÷ python-engineio, gthread'),
              ('eiowsgi-gevent', 'node', 'engineio_wsgi gevent ÷ Node')]
    return [
        '## Clients that stop reading (`stuck_readers`)',
        '',
        'WebSocket clients each ask the echo server for 1 MB (`big:1000000`) and stop '
        'reading (their socket paused, so the kernels\' buffers fill) and answering pings, '
        'while one healthy WebSocket client echoes 100 bytes, one message in flight: its '
        'latency alone, then from when the last stuck client stopped reading until the '
        'server has cut them all (or the deadline). A stuck client sees its end through a '
        'WebSocket ping frame it writes every 250 ms (the server\'s kernel answers it with '
        'a reset once the server closed its side). Memory is the peak of the worker\'s RSS '
        '(sampled every 100 ms) less its RSS before; the kernel holds most of each 1 MB on '
        'loopback. Ping as for the idle runs; run once.',
        '',
        table(by, STUCK_SERVERS, STUCK_ROWS, ratios, CHART_LABELS),
        '',
        '## A ping-timeout wave (`ping_wave`)',
        '',
        'WebSocket sessions connect as fast as the server takes them (200 at a time) and '
        'answer pings, then all stop answering at once: their ping timeouts come due '
        'within about the time their connects took. The worker\'s OS threads are read from '
        '`/proc` every 20 ms during the wave. Ping as for the idle runs; run once.',
        '',
        table(by, STUCK_SERVERS, WAVE_ROWS, ratios, CHART_LABELS),
        '',
        '## Targets: clients that stop reading, a ping-timeout wave',
        '',
        stuck_targets(by),
        '',
    ]


def speedup(by: dict, a: str, b: str, scenario: str, field: str) -> float | None:
    """How many times faster ``a`` is than ``b``: a ratio of rates, or of times inverted."""
    x, y = median(by, a, scenario, field), median(by, b, scenario, field)
    if x is None or y is None or not x or not y:
        return None
    return y / x if field in LOWER_IS_BETTER else x / y


def sio_targets(by: dict) -> str:
    a, b = 'sio-eiowsgi-gevent', 'sio-pyeio-gevent'
    rows = []

    def add(text: str, goal: float, value: float | None, per_cpu: float | None = None) -> None:
        if value is None:
            rows.append(f'| {text} | – | – | not measured |')
            return
        extra = '–' if per_cpu is None else f'{per_cpu:.2f}×'
        rows.append(f"| {text} | {value:.2f}× | {extra} | "
                    f"{'met' if value >= goal else '**not met**'} |")

    add('WebSocket emit with ack, 50 clients ≥ 2× python-socketio on python-engineio', 2,
        speedup(by, a, b, 'sio_ack_ws_50', 'rate'),
        speedup(by, a, b, 'sio_ack_ws_50', 'rate_per_cpu'))
    add('(for information) the same with socket.io-client\'s default options, '
        'permessage-deflate offered', 2,
        speedup(by, a, b, 'sio_ack_ws_50_defaults', 'rate'),
        speedup(by, a, b, 'sio_ack_ws_50_defaults', 'rate_per_cpu'))
    add('Emit to a room of 1,000 clients ≥ 1.5× as fast', 1.5,
        speedup(by, a, b, SIO_ROOM, 'broadcast_ms'),
        speedup(by, a, b, SIO_ROOM, 'server_cpu_ms_per_broadcast'))
    measured = [(sc, speedup(by, a, b, sc, field), speedup(by, a, b, sc, cpu_field))
                for sc, field, _, cpu_field in SIO_SPEED]
    measured = [m for m in measured if m[1] is not None]
    if measured:
        worst = min(measured, key=lambda m: m[1])
        add(f'No scenario slower (slowest: {worst[0]})', 1.0, worst[1], worst[2])
    else:
        add('No scenario slower', 1.0, None)
    return '\n'.join(['| target | speed-up (ratio of medians) | per server CPU-second | |',
                      '|---|---|---|---|', *rows])


def loadgen_table(by: dict, scenarios: list[str]) -> str:
    servers = GEVENT + GTHREAD + SOCKETIO + SOCKETIO_GTHREAD
    head = ['scenario', *[CHART_LABELS[s] for s in servers]]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for sc in scenarios:
        if not any(by.get((s, sc)) for s in servers):
            continue
        row = [sc]
        for s in servers:
            srv = values(by, s, sc, 'server_cpu_pct')
            gen = values(by, s, sc, 'loadgen_cpu_pct')
            other = values(by, s, sc, 'foreign_cpu_pct')
            text = f'{statistics.median(srv):.0f} / {max(gen):.0f}' if srv and gen else '–'
            if other:
                text += f' / {max(other):.0f}'
            row.append(text)
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def chart(by: dict, path: Path, machine: dict) -> bool:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    servers = [s for s in GEVENT + GTHREAD if any(k[0] == s for k in by)]
    if not servers:
        return False
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))

    def bars(ax, groups, field, title, ylabel, log=False):
        width = 0.8 / max(1, len(servers))
        for i, s in enumerate(servers):
            meds, lo, hi, xs = [], [], [], []
            for j, (sc, _) in enumerate(groups):
                vals = values(by, s, sc, field)
                if not vals:
                    continue
                m = statistics.median(vals)
                xs.append(j + (i - (len(servers) - 1) / 2) * width)
                meds.append(m)
                lo.append(m - min(vals))
                hi.append(max(vals) - m)
            if xs:
                ax.bar(xs, meds, width, yerr=[lo, hi], capsize=2, color=COLORS[s],
                       label=CHART_LABELS[s])
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g[1] for g in groups], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        if log:
            ax.set_yscale('log')
        ax.grid(axis='y', alpha=0.3)

    bars(axes[0][0], [('ws_echo_1', 'WS echo\n1 session'), ('ws_echo_50', 'WS echo\n50 sessions'),
                      ('poll_echo_1', 'polling echo\n1 session'),
                      ('poll_echo_50', 'polling echo\n50 sessions'),
                      ('handshakes', 'handshakes\n(per s)')],
         'rate', 'Throughput (higher is better)', 'messages or handshakes per second', log=True)
    bars(axes[0][1], [('ws_echo_50', 'WS echo p50'), ('poll_echo_50', 'polling echo p50')],
         'p50_ms', 'Latency with 50 sessions (lower is better)', 'ms')
    sizes = idle_sizes(by)
    idle = [(f'idle_{n}', f'{n:,} idle') for n in sizes]
    bars(axes[1][0], idle, 'rss_per_session_kib',
         'Memory per idle WebSocket session (lower is better)',
         'KiB (server RSS growth / sessions)')
    bars(axes[1][1], idle, 'broadcast_ms', 'Broadcast to all idle sessions (lower is better)',
         'ms until every client received it')
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=len(servers), fontsize=9)
    fig.suptitle(f"engineio_wsgi benchmarks, {machine['date']}: {machine['nproc']} × "
                 f"{machine['cpu']}, Python {machine['python']}, Node {machine['node']}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(path, dpi=100)
    return True


def sio_chart(by: dict, path: Path, machine: dict) -> bool:
    """Speed-ups over python-socketio on python-engineio: as measured, and per CPU-second."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    base = 'sio-pyeio-gevent'
    servers = [s for s in SOCKETIO if any(k[0] == s for k in by)]
    others = [s for s in servers if s != base]
    if not others:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(14, 6))

    def panel(ax, per_cpu: bool, title: str, ylabel: str) -> None:
        width = 0.8 / len(others)
        for i, s in enumerate(others):
            xs, ys = [], []
            for j, (sc, field, _, cpu_field) in enumerate(SIO_SPEED):
                v = speedup(by, s, base, sc, cpu_field if per_cpu else field)
                if v is not None:
                    xs.append(j + (i - (len(others) - 1) / 2) * width)
                    ys.append(v)
            bars = ax.bar(xs, ys, width, color=COLORS[s], label=CHART_LABELS[s])
            ax.bar_label(bars, fmt='%.2f×', fontsize=7)
        ax.axhline(1.0, color=COLORS[base], linewidth=2, label=f'{CHART_LABELS[base]} (= 1)')
        ax.set_yscale('log')
        ax.yaxis.set_major_locator(FixedLocator([0.125, 0.25, 0.5, 1, 2, 4, 8, 16]))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}×'))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(range(len(SIO_SPEED)))
        ax.set_xticklabels([g[2] for g in SIO_SPEED], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(axis='y', alpha=0.3)
        ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.12), ncol=2)

    panel(axes[0], False, 'Speed-up over python-socketio on python-engineio (higher is better)',
          'rates divided; for the room, times inverted')
    panel(axes[1], True, 'The same per CPU-second of the server (higher is better)',
          'per-CPU rates divided; for the room, CPU per emit inverted')
    fig.suptitle(f"Socket.IO benchmarks (gunicorn -k gevent -w 1, and Node), {machine['date']}: "
                 f"{machine['nproc']} × {machine['cpu']}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    return True


def noise_warning(by: dict, limit: float = 0.2) -> list[str]:
    """A warning when other processes took much of the server's core in some measurement."""
    noisy = sorted({(r['server'], r['scenario']) for recs in by.values() for r in recs
                    if (r.get('foreign_cpu') or 0) > limit})
    if not noisy:
        return []
    worst = max(r.get('foreign_cpu') or 0 for recs in by.values() for r in recs)
    return [f'**Warning**: other processes took more than {100 * limit:.0f} % of the '
            f"server's core during {len(noisy)} of the measurements (up to {100 * worst:.0f} %, "
            'see the last table): those figures are low and their ratios unreliable; the '
            'per-CPU-second ratios hold up better. Run on a quiet machine for figures to keep.',
            '']


def sio_section(by: dict) -> list[str]:
    """The Socket.IO part of RESULTS.md; nothing when the run had no Socket.IO server."""
    if not any(server in SOCKETIO + SOCKETIO_GTHREAD for server, _ in by):
        return []
    return [
        '## Socket.IO: python-socketio on engineio_wsgi, on python-engineio, and Node',
        '',
        'The same python-socketio application (`servers/sio_app.py`) under '
        '`gunicorn -k gevent -w 1`, once on engineio_wsgi and once on python-engineio, and '
        'the same events on Node\'s socket.io 4 (`servers/node_sio_server.js`). The load '
        'generator (`sio_loadgen.js`) runs the official socket.io-client 4: `emit(\'echo\', '
        '100 bytes)` answered by its acknowledgement, one in flight per client, over '
        'WebSocket (without permessage-deflate, which socket.io-client offers by default and '
        'python-engineio accepts: it then compresses every frame it sends; one scenario '
        'keeps the client\'s defaults to show that) or long-polling '
        'only; new clients connecting over long-polling (Engine.IO '
        'handshake, Socket.IO CONNECT and its answer) and disconnecting, 20 at a time; '
        '1,000 WebSocket clients in one room, one of them asks the server to emit 100 bytes '
        'to the room: the time until all 1,000 have it (median of the broadcasts), and the '
        'server\'s CPU time per emit. The room\'s members are minimal Socket.IO clients on '
        '`ws` (CONNECT, join with an acknowledgement, count the event, answer pings): '
        'socket.io-client decoding 1,000 events takes the load generator\'s core about '
        '50 ms, more than the fastest server needs, and would hide the difference; even '
        'so, receiving 1,000 WebSocket messages costs the load generator about 20 ms, a '
        'floor for that figure. '
        'Speed-up: a ratio of rates, or for the room the inverse ratio of times.',
        '',
        table(by, SOCKETIO, SIO_ROWS,
              [('sio-eiowsgi-gevent', 'sio-pyeio-gevent', 'engineio_wsgi ÷ python-engineio'),
               ('sio-node', 'sio-pyeio-gevent', 'Node ÷ python-engineio')]),
        '',
        '### Socket.IO in threading mode (`gunicorn -k gthread -w 1`)',
        '',
        'The same application and scenarios with `async_mode=\'threading\'` (threads: 200, '
        'sessions + 100 for the room).',
        '',
        table(by, SOCKETIO_GTHREAD, SIO_ROWS,
              [('sio-eiowsgi-gthread', 'sio-pyeio-gthread', 'engineio_wsgi ÷ python-engineio')]),
        '',
        '### Socket.IO targets (issue 9)',
        '',
        sio_targets(by),
        '',
        '![Socket.IO chart](chart_socketio.png)',
        '',
    ]


def cluster_section(by: dict) -> list[str]:
    """Several workers on Redis (bench/cluster.py), when the run has them."""
    if not any(key[1].startswith('cluster_') for key in by):
        return []
    out = ['## Several workers sharing sessions on Redis (`cluster=`)', '',
           'The servers (gunicorn, nginx, redis-server) are not pinned here: the second '
           'worker needs the second core, which the load generator (on CPU 1) shares; '
           'compare ratios. 50 sessions, 100-byte messages, one in '
           'flight per session, through nginx round robin (no stickiness).', '',
           '| scenario | nginx → 1 worker, no cluster= | nginx → `-w 2`, cluster= | ratio |',
           '|---|---|---|---|']
    for scenario, label in (('cluster_poll_echo_50', 'polling echo, messages/s'),
                            ('cluster_ws_echo_50', 'WebSocket echo, messages/s')):
        one, two = median(by, 'nginx-w1', scenario, 'rate'), median(by, 'nginx-w2-cluster',
                                                                   scenario, 'rate')
        out.append(f'| {label} | {fmt(one, 0)} | {fmt(two, 0)} | '
                   f'{fmt(two / one if one and two else None, 2)} |')
    out.append('')
    recs = by.get(('cluster-2x1', 'cluster_latency'), [])
    if recs:
        def m(field: str) -> str:
            return fmt(median(by, 'cluster-2x1', 'cluster_latency', field), 2)
        out += ['Two one-worker gunicorns A and B with `cluster=`, requests sent to one '
                'of them directly; one message at a time:', '',
                '| | p50 ms | p99 ms |', '|---|---|---|',
                f"| polling round trip (POST + GET), both on the owner | {m('poll_local_p50_ms')} "
                f"| {m('poll_local_p99_ms')} |",
                f"| the same, both on the other process (forwarded) | "
                f"{m('poll_forwarded_p50_ms')} | {m('poll_forwarded_p99_ms')} |",
                f"| WebSocket echo, upgraded on the owner | {m('ws_local_p50_ms')} | "
                f"{m('ws_local_p99_ms')} |",
                f"| WebSocket echo, upgraded on the other process (relayed) | "
                f"{m('ws_relayed_p50_ms')} | {m('ws_relayed_p99_ms')} |",
                '', f"`Emitter.send` to a WebSocket session of another process: "
                f"{m('emitter_rate')} messages/s received. Redis commands per forwarded "
                f"request: {m('redis_calls_per_forwarded_request')} (per local request, "
                f"background included: {m('redis_calls_per_local_request')}).", '']
    return out


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / 'results.json'
    machine, by = load(path)
    out_dir = path.parent
    sizes = idle_sizes(by)
    rows = TRAFFIC + [r for n in sizes for r in idle_rows(n)]
    reps = max((len(v) for v in by.values()), default=0)
    pk = machine.get('packages', {})
    npk = machine.get('node_packages', {})
    md = [
        '# Benchmark results',
        '',
        f"- **Date**: {machine['date']} ({machine['mode']} run, {machine.get('seconds', '?')} s)",
        f"- **Machine**: `nproc` = {machine['nproc']}, CPU: {machine['cpu']}, "
        f"{machine['mem_gib']} GiB, Linux {machine['kernel']}",
        f"- **Python** {machine['python']}, **Node** {machine['node']}; load average at start "
        f"{' '.join(machine.get('loadavg_start', ['?']))}, at end "
        f"{' '.join(machine.get('loadavg_end', ['?']))}",
        f"- **Versions**: engineio_wsgi {pk.get('engineio_wsgi')} at {machine['commit']}, "
        f"python-engineio {pk.get('python-engineio')}, gunicorn {pk.get('gunicorn')}, "
        f"gevent {pk.get('gevent')}, simple-websocket {pk.get('simple-websocket')}, "
        f"websockets {pk.get('websockets')}, python-socketio {pk.get('python-socketio')}; "
        f"Node engine.io {npk.get('engine.io')}, ws {npk.get('ws')}, "
        f"socket.io {npk.get('socket.io')}, socket.io-client {npk.get('socket.io-client')}"
        + (f"; every server ran a copy of `engineio_wsgi/` taken at the start "
           f"(sources digest {machine['sources']})" if machine.get('sources') else ''),
        f"- **Method**: each server alone on CPU 0 (`taskset`), the Node load generator on CPU 1; "
        f"`gunicorn -w 1 -k gevent` or `-k gthread` (threads: 200, sessions + 100 for idle runs); "
        f"100-byte text messages, one in flight per session; "
        f"{machine['echo_time']['duration']} s measured after {machine['echo_time']['warmup']} s "
        f"warm-up; ping {machine['idle_ping'][0]} s / {machine['idle_ping'][1]} s for the idle "
        f"runs (held {machine['idle_hold']} s after all connected), 25 s / 20 s otherwise. "
        f"Figures are medians of {reps} repeat(s), (min–max) when more than one; "
        f"ratios are of medians from this run. Memory is the growth of the worker's resident "
        f"memory (`VmRSS`, the gunicorn worker's process tree; Node's process) divided by the "
        f"number of sessions."
        + (f" Handshakes left open: {machine['unclosed_handshakes']:,} per server, 20 at a "
           f"time, on a server of their own with the idle runs' ping; "
           f"{machine['gthread_idle']['sessions']:,} idle WebSockets on one gthread worker: "
           f"`--threads` sessions + 100, ping {machine['gthread_idle']['ping'][0]} s / "
           f"{machine['gthread_idle']['ping'][1]} s, held {machine['gthread_idle']['hold']} s."
           if 'gthread_idle' in machine else ''),
        '',
        *noise_warning(by),
        '## gevent (`gunicorn -k gevent -w 1`) and Node',
        '',
        table(by, GEVENT, rows,
              [('eiowsgi-gevent', 'pyeio-gevent', 'engineio_wsgi ÷ python-engineio'),
               ('node', 'pyeio-gevent', 'Node ÷ python-engineio')]),
        '',
        '## Threading mode (`gunicorn -k gthread -w 1`)',
        '',
        table(by, GTHREAD, rows + GTHREAD_IDLE_ROWS + FEW_THREADS_ROWS,
              [('eiowsgi-gthread', 'pyeio-gthread', 'engineio_wsgi ÷ python-engineio')]),
        '',
        *stuck_section(by),
        '## Targets (issue 13)',
        '',
        targets_13(by),
        '',
        '## Targets (issue 6)',
        '',
        targets(by),
        '',
        *sio_section(by),
        *cluster_section(by),
        '## CPU use: server / load generator / other processes on the server\'s core',
        '',
        'Percent of one core during the measurement. Server: median; load generator and '
        'other processes: highest of the repeats. A load generator near 100 % means the '
        'figure is a lower bound for that server; other processes on the server\'s core '
        '(anything else running on the machine) take time from the server and lower its figures.',
        '',
        loadgen_table(by, ['handshakes', 'handshakes_unclosed', 'ws_echo_1', 'ws_echo_50',
                           'poll_echo_1', 'poll_echo_50']
                      + [f'idle_{n}' for n in sizes] + [GTHREAD_IDLE, FEW_THREADS, STUCK]
                      + [g[0] for g in SIO_SPEED]),
        '',
        '![chart](chart.png)',
        '',
    ]
    errors = [r for recs in by.values() for r in recs if r.get('error') or r.get('errors')]
    if errors:
        md += ['## Errors seen', '']
        for r in errors:
            md.append(f"- {r['server']} {r['scenario']} #{r['repeat']}: "
                      f"{r.get('error') or ''} {r.get('error_kinds') or ''}".rstrip())
        md.append('')
    (out_dir / 'RESULTS.md').write_text('\n'.join(md))
    written = [out_dir / 'RESULTS.md']
    try:
        import matplotlib  # noqa: F401
    except ImportError:     # bench/run installs it; a run from another venv gets no charts
        print('no charts: matplotlib is not installed')
    else:
        for draw, name in ((chart, 'chart.png'), (sio_chart, 'chart_socketio.png')):
            if draw(by, out_dir / name, machine):
                written.append(out_dir / name)
    print('wrote ' + ', '.join(str(p) for p in written))


if __name__ == '__main__':
    main()
