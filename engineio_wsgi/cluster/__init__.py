"""Pieces of the scale-out on Redis (``Server(cluster=...)``, not wired yet).

Nothing outside this package imports it: a server without ``cluster=``
imports neither this package nor redis-py. Each module imports redis-py only
when it connects.

* ``connect``: a redis-py client from a ``cluster=`` value.
* ``node``: this process's node id (the tag its sids start with).
* ``inbox``: messages to one node, in order per sender, refused at once when
  the node is gone.
"""
