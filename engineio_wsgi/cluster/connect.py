"""A redis-py client from a ``cluster=`` value.

Accepted, as redis-py reads them (``redis.Redis.from_url``):

* ``redis://[[user]:password@]host[:port][/db]``
* ``rediss://...`` (TLS; ``ssl_*`` query arguments as redis-py takes them)
* ``unix://[[user]:password@]/path/to/socket[?db=N]``
* a ready client object (``redis.Redis``, also one from
  ``redis.sentinel.Sentinel([...]).master_for('name')``, or a cluster-mode
  client): used as it is. redis-py reads no Sentinel URL, so Sentinel is
  configured by passing such a client.

redis-py is imported here, on the first call: it is an optional dependency
(``pip install engineio_wsgi[redis]``; redis-py uses hiredis when installed).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

#: socket timeouts of clients made from a URL: a Redis that does not answer
#: must fail a request fast rather than hold its thread
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
SCHEMES = ('redis://', 'rediss://', 'unix://')


class ClusterConfigError(ValueError):
    """A ``cluster=`` value that names no Redis."""


def redis_client(cluster: Any, socket_timeout: float = SOCKET_TIMEOUT) -> Any:
    """The client for ``cluster``: a URL (see the module) or a client object.

    ``socket_timeout`` bounds each command of a client made from a URL (a
    Redis that stopped answering, e.g. a network partition); a ready client
    keeps its own settings."""
    if isinstance(cluster, str):
        if not cluster.startswith(SCHEMES):
            raise ClusterConfigError(
                f'cluster={cluster!r}: expected a redis://, rediss:// or unix:// URL or a '
                'redis-py client object')
        try:
            import redis
        except ImportError:
            raise ClusterConfigError(
                'cluster= needs redis-py: pip install "engineio_wsgi[redis]"') from None
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        # one immediate retry replaces a pooled connection that a Redis
        # restart closed; more would hold a request while Redis is away
        return redis.Redis.from_url(cluster, socket_timeout=socket_timeout,
                                    socket_connect_timeout=CONNECT_TIMEOUT,
                                    health_check_interval=30, retry=Retry(NoBackoff(), 1))
    if callable(getattr(cluster, 'publish', None)) and callable(getattr(cluster, 'pubsub', None)):
        return cluster
    raise ClusterConfigError(
        f'cluster={cluster!r}: expected a redis://, rediss:// or unix:// URL or a redis-py '
        'client object')


def describe(cluster: Any) -> str:
    """Where ``cluster`` points, for the log: a URL without its password, or
    the address a ready client's connections use."""
    if isinstance(cluster, str):
        parts = urlsplit(cluster)
        if parts.password is None:
            return cluster
        user = f'{parts.username}@' if parts.username else ''
        host = parts.netloc.rpartition('@')[2]
        return parts._replace(netloc=user + host).geturl()
    kwargs = getattr(getattr(cluster, 'connection_pool', None), 'connection_kwargs', None)
    if isinstance(kwargs, dict):
        if kwargs.get('path'):
            return f"unix://{kwargs['path']}"
        if kwargs.get('host'):
            return f"{kwargs['host']}:{kwargs.get('port', 6379)}"
    return f'the {type(cluster).__name__} given as cluster='
