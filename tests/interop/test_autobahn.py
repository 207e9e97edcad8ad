"""The Autobahn TestSuite's cases against the WebSocket layer, on gunicorn.

kosoku drives the Autobahn TestSuite's own case files (its fuzzing client)
against the echo of tests/apps/wsecho.py (``/ws``: ``rfc6455.accept`` on the
WSGI request, as the WebSocket transport does, then every message sent back
as it came), served by gunicorn's gevent and gthread workers. Engine.IO's own
packets are not in the way: the cases send raw WebSocket frames.

Every case must end OK, NON-STRICT or INFORMATIONAL, its closing handshake OK
or INFORMATIONAL; the README (section "Autobahn TestSuite") says which cases
are not OK and why. The default run has groups 1 to 10 (301 cases) and a
sample of the permessage-deflate groups 12 and 13: the first and the eleventh
case of each subgroup (small messages, and 8 KiB messages in 256-byte
fragments), which covers each of their data sets and each compression offer.
All 216 cases of groups 12 and 13 take about 3.5 minutes a worker:
``EIO_AUTOBAHN_DEFLATE=1`` runs them too (otherwise those tests are skipped).
``EIO_AUTOBAHN_REPORTS=DIR`` writes kosoku's reports (Autobahn's JSON and
HTML, one folder per worker and run) into DIR.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import kosoku
import kosoku.cases
import pytest

from tests.live import LiveServer, start_server, wait_until

pytestmark = pytest.mark.interop

APP = 'tests.apps.wsecho:app'
KINDS = ['gunicorn-gevent', 'gunicorn-gthread']

# The largest message of the cases (9.1.6 and 9.2.6: 16 MiB); the echo app's
# default limit is 1 MB.
MAX_MESSAGE = 16 * 2 ** 20

#: The groups without compression, all in the default run (the TestSuite has
#: no group 8 nor 11).
GROUPS = ['1', '2', '3', '4', '5', '6', '7', '9', '10']
#: The permessage-deflate groups.
DEFLATE_GROUPS = ['12', '13']

ACCEPTED = {'OK', 'NON-STRICT', 'INFORMATIONAL'}
ACCEPTED_CLOSE = {'OK', 'INFORMATIONAL'}

# Cases run in parallel: without compression a case mostly waits (the whole
# selection takes about 5 s instead of 15 one at a time); with compression
# both ends use the CPU, and two keep the machine's two cores busy.
CONCURRENCY = 4
DEFLATE_CONCURRENCY = 2

RUN_DEFLATE = os.environ.get('EIO_AUTOBAHN_DEFLATE', '') not in ('', '0')
REPORTS = os.environ.get('EIO_AUTOBAHN_REPORTS', '')

BAD_LOG = re.compile(r'Traceback|Error handling request|Exception| 500 |\[ERROR\]|\[CRITICAL\]')


def cases_of(group: str) -> list[str]:
    """The ids of a group's cases, as kosoku's index has them."""
    return [case for case in kosoku.cases.CASES if case.split('.')[0] == group]


def deflate_sample() -> list[str]:
    """The first and the eleventh case of every subgroup of 12 and 13."""
    return [case for group in DEFLATE_GROUPS for case in cases_of(group)
            if case.split('.')[2] in ('1', '11')]


@dataclass
class Run:
    """What one kosoku run against one server found."""

    kind: str
    label: str
    cases: list[str]
    # case id -> kosoku's CaseResult
    results: dict[str, Any] = field(default_factory=dict, repr=False)
    seconds: float = 0.0
    ended: int = 0          # connections the app saw end ('WS END id=...' lines)
    log: str = field(default='', repr=False)   # the server's, once it stopped

    def outcomes(self) -> Counter[str]:
        return Counter(f'{r.behavior.value}/{r.behavior_close.value}' for r in self.results.values())


def _run_cases(server: LiveServer, label: str, cases: list[str], *, deflate: bool,
               concurrency: int, timeout: float) -> Run:
    """Run ``cases`` against the server's echo, then wait until the app saw
    every connection end (each case opens one)."""
    run = Run(server.kind, label, cases)
    query = f'id={label}&max={MAX_MESSAGE}' + ('&deflate=1' if deflate else '')
    url = f'ws://127.0.0.1:{server.port}/ws?{query}'
    started = time.monotonic()
    try:
        results = asyncio.run(asyncio.wait_for(
            kosoku.run_fuzzingclient(url, cases, concurrency=concurrency), timeout))
    except kosoku.FailureError as failure:   # some case failed: its results say which
        results = failure.results
    run.seconds = time.monotonic() - started
    run.results = {result.case_id: result for result in results}
    # (lines of the app and of gunicorn's access log may interleave: count the marks)
    marker = f'WS END id={label} '
    try:
        wait_until(lambda: server.log().count(marker) >= len(results), 10,
                   message=f'{len(results)} connections ended')
    except AssertionError:
        pass            # test_every_connection_ended says how many did
    run.ended = server.log().count(marker)
    if REPORTS:
        # what the kosoku command writes
        from kosoku._report import write_reports
        write_reports(results, os.path.join(REPORTS, f'{server.kind}-{label}'))
    print(f'\nautobahn {server.kind} {label}: {len(results)} cases in {run.seconds:.1f} s: '
          f'{dict(run.outcomes())}')
    return run


def _finish(server: LiveServer, runs: list[Run]) -> None:
    server.stop()
    log = server.log()
    for run in runs:
        run.log = log


@pytest.fixture(scope='module', params=KINDS)
def default_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Run]]:
    """Groups 1 to 10 and the compression sample, against one server."""
    server = start_server(request.param, APP)
    runs: dict[str, Run] = {}
    try:
        runs['plain'] = _run_cases(server, 'autobahn-plain', [f'{g}.*' for g in GROUPS],
                                   deflate=False, concurrency=CONCURRENCY, timeout=240)
        runs['deflate'] = _run_cases(server, 'autobahn-deflate-sample', deflate_sample(),
                                     deflate=True, concurrency=DEFLATE_CONCURRENCY, timeout=240)
    finally:
        _finish(server, list(runs.values()))
    yield runs


@pytest.fixture(scope='module', params=KINDS)
def deflate_run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """Every case of groups 12 and 13 (EIO_AUTOBAHN_DEFLATE=1 only)."""
    if not RUN_DEFLATE:
        pytest.skip('all of groups 12 and 13 (about 3.5 minutes a worker): set EIO_AUTOBAHN_DEFLATE=1')
    server = start_server(request.param, APP)
    runs: list[Run] = []
    try:
        runs.append(_run_cases(server, 'autobahn-deflate', [f'{g}.*' for g in DEFLATE_GROUPS],
                               deflate=True, concurrency=DEFLATE_CONCURRENCY, timeout=1500))
    finally:
        _finish(server, runs)
    yield runs[0]


def _report(result: Any) -> str:
    received = repr(result.received)
    return (f'  {result.case_id}: {result.behavior.value} / close {result.behavior_close.value}'
            f' ({result.description.strip()})\n'
            f'    expected: {result.expectation.strip()}\n'
            f'    result: {result.result} | {result.result_close}\n'
            f'    close from the server: {result.remote_close_code} {result.remote_close_reason!r};'
            f' sent first by the client: {result.closed_by_me}; clean: {result.was_clean}'
            f' ({result.was_not_clean_reason})\n'
            f'    received: {received[:300]}{"..." if len(received) > 300 else ""}')


def check_cases(run: Run, expected: list[str]) -> None:
    """Each case of ``expected`` ran, with an accepted outcome."""
    assert expected, f'no case selected for {run.label}'
    missing = [case for case in expected if case not in run.results]
    assert not missing, (f'{run.kind}: {len(missing)} cases did not run: {missing} '
                         f'(kosoku ran {len(run.results)} cases for {run.cases})')
    bad = [run.results[case] for case in expected
           if run.results[case].behavior.value not in ACCEPTED
           or run.results[case].behavior_close.value not in ACCEPTED_CLOSE]
    assert not bad, (f'{run.kind}: {len(bad)} of {len(expected)} cases not OK, NON-STRICT or '
                     f'INFORMATIONAL:\n' + '\n'.join(map(_report, bad)))


def check_server(run: Run) -> None:
    """The app saw every connection end, and the server logged no error."""
    assert run.ended == len(run.results), (
        f'{run.kind}: the app saw {run.ended} of {len(run.results)} connections end '
        f'({run.label})')
    found = BAD_LOG.search(run.log)
    assert found is None, f'{run.kind} logged an error:\n{run.log[max(0, found.start() - 2000):][:6000]}'


# -- the default run ---------------------------------------------------------------

def test_every_group_of_the_suite_is_run() -> None:
    """No group of kosoku's index is left out (a new kosoku with another group
    must be added here, or said to be left out)."""
    groups = {case.split('.')[0] for case in kosoku.cases.CASES}
    assert groups == set(GROUPS) | set(DEFLATE_GROUPS)
    assert sum(len(cases_of(group)) for group in GROUPS) == 301
    assert len(deflate_sample()) == 24


@pytest.mark.timeout(600)
@pytest.mark.parametrize('group', GROUPS)
def test_group(default_runs: dict[str, Run], group: str) -> None:
    check_cases(default_runs['plain'], cases_of(group))


@pytest.mark.timeout(600)
def test_compression_sample(default_runs: dict[str, Run]) -> None:
    run = default_runs['deflate']
    check_cases(run, deflate_sample())
    # compression was negotiated: a case without it ends UNIMPLEMENTED (refused above)
    assert all('permessage-deflate' in r.http_response.lower() for r in run.results.values())


@pytest.mark.timeout(600)
def test_every_connection_ended(default_runs: dict[str, Run]) -> None:
    for run in default_runs.values():
        check_server(run)


# -- EIO_AUTOBAHN_DEFLATE=1 ---------------------------------------------------------

@pytest.mark.timeout(1800)
@pytest.mark.parametrize('group', DEFLATE_GROUPS)
def test_deflate_group(deflate_run: Run, group: str) -> None:
    check_cases(deflate_run, cases_of(group))


@pytest.mark.timeout(1800)
def test_deflate_connections_ended(deflate_run: Run) -> None:
    check_server(deflate_run)
