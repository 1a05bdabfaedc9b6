"""Let the Riak Python client 2.7.0 import on Python 3.10+.

It predates two removals: the ABC aliases in `collections` (moved to
`collections.abc` in 3.3, removed in 3.10) and `namedtuple(verbose=...)`
(removed in 3.7). Import this module before `riak`.
"""
import collections
import collections.abc

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable",
              "MutableSet", "Set", "Hashable", "Sized", "Container", "Iterator"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

_namedtuple = collections.namedtuple


def _namedtuple_without_verbose(*args, verbose=False, **kwargs):
    return _namedtuple(*args, **kwargs)


collections.namedtuple = _namedtuple_without_verbose
