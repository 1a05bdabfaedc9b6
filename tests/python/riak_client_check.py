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
    indexes(client)
    print("riak client: ping, store, fetch, siblings, resolve, delete, list keys, 2i: ok")


def indexes(client):
    """Secondary indexes as the client's 2i calls use them."""
    people = client.bucket_type("default").bucket("people")
    for i in range(40):
        obj = people.new(f"p{i:02d}", data={"i": i})
        obj.add_index("age_int", 20 + i % 10)
        obj.add_index("team_bin", f"team{i % 4}")
        obj.add_index("team_bin", "all")
        obj.store()
    # Equality and range, keys only.
    got = sorted(people.get_index("team_bin", "team1"))
    assert got == [f"p{i:02d}" for i in range(40) if i % 4 == 1], got
    got = sorted(people.get_index("age_int", 21, 23))
    assert got == [f"p{i:02d}" for i in range(40) if 21 <= 20 + i % 10 <= 23], got
    # Terms with their keys, in (term, key) order.
    got = list(people.get_index("age_int", 28, 29, return_terms=True))
    want = sorted((20 + i % 10, f"p{i:02d}") for i in range(40) if i % 10 >= 8)
    assert got == want, got
    # Pages with continuations cover the range exactly once.
    seen, pages = [], 0
    for page in people.paginate_index("team_bin", "all", max_results=7):
        seen.extend(page.results)
        pages += 1
    assert sorted(seen) == [f"p{i:02d}" for i in range(40)], seen
    assert pages == 6, pages
    first = people.get_index("age_int", 20, 29, max_results=5)
    assert len(first) == 5 and first.continuation, first
    rest = people.get_index("age_int", 20, 29, max_results=100, continuation=first.continuation)
    assert sorted(list(first) + list(rest)) == [f"p{i:02d}" for i in range(40)]
    # Streaming, and $key / $bucket.
    streamed = []
    keys = people.stream_index("team_bin", "team2")
    for chunk in keys:
        streamed.extend(chunk)
    keys.close()
    assert sorted(streamed) == [f"p{i:02d}" for i in range(40) if i % 4 == 2], streamed
    got = sorted(people.get_index("$key", "p10", "p13"))
    assert got == ["p10", "p11", "p12", "p13"], got
    assert len(people.get_index("$bucket", "people")) == 40
    # An overwrite moves the object's entries; a delete removes them.
    p05 = people.get("p05")
    p05.remove_index("age_int")
    p05.add_index("age_int", 99)
    p05.store()
    assert list(people.get_index("age_int", 99)) == ["p05"]
    assert "p05" not in people.get_index("age_int", 25)
    p05.delete()
    assert list(people.get_index("age_int", 99)) == []


if __name__ == "__main__":
    main()
