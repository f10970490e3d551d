#!/usr/bin/python3
"""A short shardex session from Python, on Debian's python3-grpcio.

    deploy/local-cluster.sh start          # prints the address, e.g. 127.0.0.1:41234
    /usr/bin/python3 examples/python/example.py 127.0.0.1:41234

Writes a few documents, creates an index kept both LOCAL and GLOBAL, and asks
the same question both ways with the write tokens, so the answers include the
writes (read-your-writes) whatever the index's lag.
"""
import sys
import time

from shardex_client import Client


def main():
    c = Client(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7100")
    names = {i.spec.name for i in c.list_indexes()}
    if "example-color" not in names:
        c.create_index("example-color", "color")          # string values, LOCAL and GLOBAL
    while [i.state for i in c.list_indexes() if i.spec.name == "example-color"] != [2]:
        time.sleep(0.1)                                   # BUILDING until backfilled: READY
    tokens = c.put([
        {"id": "ex-1", "fields": {"color": "red", "size": 3}},
        {"id": "ex-2", "fields": {"color": ["red", "blue"], "size": 5}},   # multi-valued
        {"id": "ex-3", "fields": {"color": "green"}},
    ])
    for mode in ("local", "global"):
        r = c.query("example-color", eq="red", mode=mode, after=tokens)
        print("%-6s hits=%s partitions_contacted=%d staleness_ms=%d" % (
            mode, [h.id for h in r.hits], r.partitions_contacted, r.staleness_ms))
    print("range [blue, green]:", c.query_all("example-color", min="blue", max="green",
                                              after=tokens))


if __name__ == "__main__":
    main()
