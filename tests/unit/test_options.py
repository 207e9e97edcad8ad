import logging

import pytest

from engineio_wsgi import Server
from engineio_wsgi.options import Options

PYTHON_ENGINEIO_KEYWORDS = dict(
    async_mode='threading', ping_interval=25, ping_timeout=20, max_http_buffer_size=1000000,
    allow_upgrades=True, http_compression=True, compression_threshold=1024, cookie=None,
    cors_allowed_origins=None, cors_credentials=True, logger=False, json=None,
    async_handlers=True, monitor_clients=None, transports=None)


def test_every_python_engineio_keyword_is_accepted():
    Server(**PYTHON_ENGINEIO_KEYWORDS)


def test_unknown_keyword_suggests_the_nearest_option():
    with pytest.raises(TypeError) as info:
        Server(ping_intreval=5)
    assert str(info.value) == ("Server() got an unexpected keyword argument 'ping_intreval' "
                               "(did you mean 'ping_interval'?)")


def test_unknown_keywords_each_get_their_suggestion_or_none():
    with pytest.raises(TypeError) as info:
        Server(cors_alowed_origins='*', aroma='blue')
    assert str(info.value) == (
        "Server() got unexpected keyword arguments 'aroma', "
        "'cors_alowed_origins' (did you mean 'cors_allowed_origins'?)")


def test_python_engineio_keywords_are_suggested_too():
    # 'logger' and 'json' are handled before the dataclass fields: still suggested
    with pytest.raises(TypeError, match=r"did you mean 'logger'\?"):
        Server(loger=True)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match='ping_intreval'):
        Server(ping_intreval=3)


@pytest.mark.parametrize('name', ['ping_interval', 'ping_timeout', 'upgrade_timeout'])
@pytest.mark.parametrize('value', [0, -1, 'x'])
def test_times_must_be_positive(name, value):
    with pytest.raises(ValueError):
        Options.from_kwargs(**{name: value})


def test_times_are_advertised_as_whole_milliseconds():
    opts = Options.from_kwargs(ping_interval=0.3, ping_timeout=0.2)
    assert (opts.ping_interval_ms, opts.ping_timeout_ms) == (300, 200)
    assert Options.from_kwargs(ping_interval=1.2345).ping_interval_ms == 1234


def test_ping_interval_with_grace_period():
    opts = Options.from_kwargs(ping_interval=(10, 5))
    assert opts.ping_interval == 10 and opts.ping_grace == 5


def test_transports_as_a_string_or_list():
    assert Options.from_kwargs(transports='polling').transports == ('polling',)
    assert Options.from_kwargs(transports=['websocket']).transports == ('websocket',)
    with pytest.raises(ValueError):
        Options.from_kwargs(transports=['carrier-pigeon'])


def test_bad_async_mode_is_refused():
    with pytest.raises(ValueError, match='async_mode'):
        Options.from_kwargs(async_mode='eventlet')


def test_logger_true_sets_info_and_adds_no_handler():
    lib = logging.getLogger('engineio_wsgi')
    before = list(lib.handlers)
    old = lib.level
    try:
        Server(logger=True)
        assert lib.level == logging.INFO
        assert lib.handlers == before
    finally:
        lib.setLevel(old)


def test_cookie_forms():
    assert Options.from_kwargs(cookie='io').cookie == {'name': 'io'}
    assert Options.from_kwargs(cookie={'samesite': 'None'}).cookie == {'name': 'io',
                                                                       'samesite': 'None'}
    assert Options.from_kwargs(cookie=None).cookie is None


@pytest.mark.parametrize('cookie', [{'path': '/a;b'}, {'domain': 'x\r\nSet-Cookie: y'},
                                    {'name': 'a;b'}, {'name': 3}])
def test_a_cookie_attribute_that_would_break_the_header_is_refused_at_start(cookie):
    with pytest.raises(ValueError, match='cookie'):
        Options.from_kwargs(cookie=cookie)


def test_cookie_callables_are_kept_for_each_handshake():
    def expires():
        return 'Thu, 01 Jan 2099 00:00:00 GMT'
    assert Options.from_kwargs(cookie={'expires': expires}).cookie == {'name': 'io',
                                                                       'expires': expires}


def test_gevent_mode_without_gevent_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from engineio_wsgi.backends import create_backend
    monkeypatch.setitem(sys.modules, 'gevent', None)     # as if gevent were not installed
    with pytest.raises(ValueError) as info:
        create_backend('gevent')          # what Server(async_mode='gevent') uses on first use
    assert str(info.value) == 'async_mode "gevent" needs gevent: pip install gevent'


def test_the_packet_trace_is_on_with_a_logger_only():
    lib = logging.getLogger('engineio_wsgi')
    trace = logging.getLogger('engineio_wsgi.trace')
    old, old_trace = lib.level, trace.level
    try:
        assert Server().options.trace is False
        assert Server(logger=False).options.trace is False
        assert Server(logger=logging.getLogger('the.app')).options.trace is True
        assert trace.level == old_trace      # a logger's own level decides
        server = Server(logger=True)
        assert server.options.trace is True
        # logger=True shows the trace's DEBUG lines, the rest from INFO
        assert trace.level == logging.DEBUG and lib.level == logging.INFO
    finally:
        lib.setLevel(old)
        trace.setLevel(old_trace)


def test_the_trace_is_no_keyword_of_its_own():
    with pytest.raises(TypeError, match="'trace'"):
        Server(trace=True)


def test_socketio_engineio_logger_turns_the_trace_on():
    from engineio_wsgi.socketio import Server as SocketIOServer
    trace = logging.getLogger('engineio_wsgi.trace')
    old = trace.level
    try:
        assert SocketIOServer(engineio_logger=True).eio.options.trace is True
        assert SocketIOServer().eio.options.trace is False
    finally:
        trace.setLevel(old)


def test_a_mode_decided_by_the_caller_is_the_mode():
    server = Server()
    server.decide_async_mode('threading')
    assert server.async_mode == 'threading'
    with pytest.raises(ValueError, match="async_mode is 'threading' already"):
        server.decide_async_mode('gevent')


def test_a_mode_given_is_not_decided_otherwise():
    with pytest.raises(ValueError, match="async_mode='threading' was given"):
        Server(async_mode='threading').decide_async_mode('gevent')
