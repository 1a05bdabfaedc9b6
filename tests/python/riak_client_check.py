"""Drive a ringstore node with the real Riak Python client (riak 2.7.0).

Usage: riak_client_check.py HOST HTTP_PORT

Exits non-zero with a message on the first expectation that fails.
"""
import sys

import riak_shim  # noqa: F401  (must come before riak)
import riak


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    client = riak.RiakClient(protocol="http", host=host, http_port=port)
    assert client.ping(), "ping failed"

    bucket = client.bucket("pyclient")
    obj = bucket.new("doc", data={"name": "ringstore", "n": 3})
    obj.store()
    fetched = bucket.get("doc")
    assert fetched.exists, "stored object not found"
    assert fetched.data == {"name": "ringstore", "n": 3}, fetched.data
    assert fetched.content_type == "application/json", fetched.content_type

    props = bucket.get_properties()
    assert props["allow_mult"] is True, props

    # Two writers store without having read: concurrent, so siblings.
    first = bucket.new("contended", data="one", content_type="text/plain")
    first.store()
    second = bucket.new("contended", data="two", content_type="text/plain")
    second.store()
    conflicted = bucket.get("contended")
    values = sorted(s.data for s in conflicted.siblings)
    assert values == ["one", "two"], values

    # Resolve: keep one sibling and store with the fetched vclock.
    conflicted.siblings = [s for s in conflicted.siblings if s.data == "two"]
    conflicted.store()
    resolved = bucket.get("contended")
    assert len(resolved.siblings) == 1, [s.data for s in resolved.siblings]
    assert resolved.data == "two", resolved.data

    resolved.delete()
    gone = bucket.get("contended")
    assert not gone.exists, "deleted object still exists"

    keys = bucket.get_keys()
    assert "doc" in keys and "contended" not in keys, keys
    print("riak client: ping, store, fetch, siblings, resolve, delete, list keys: ok")


if __name__ == "__main__":
    main()
