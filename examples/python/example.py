#!/usr/bin/python3
r"""A short shardex session from Python, on Debian's python3-grpcio.

    deploy/local-cluster.sh start          # prints the address, e.g. 127.0.0.1:41234
    /usr/bin/python3 examples/python/example.py 127.0.0.1:41234

Writes a few documents, creates an index kept both LOCAL and GLOBAL, and asks
the same question both ways with the write tokens, so the answers include the
writes (read-your-writes) whatever the index's lag.

Against a cluster that serves TLS (docs/security.md), give the CA and a client
certificate, or the CA and a bearer token, as flags or as the `shardex` tool's
environment variables. In the TLS lab (docs/deploy.md), whose certificates are
in /run/sxlab/tls:

    deploy/lab.sh up --tls
    # `client` sets SHARDEX_TLS_* to the admin certificate (the index needs admin)
    deploy/lab.sh client /usr/bin/python3 examples/python/example.py 10.200.0.1:7100
    # the same with flags, on the client host (`exec` sets no variable)
    deploy/lab.sh exec 5 /usr/bin/python3 examples/python/example.py 10.200.0.1:7100 \
        --tls-ca /run/sxlab/tls/ca.pem \
        --tls-cert /run/sxlab/tls/admin.pem --tls-key /run/sxlab/tls/admin.key
    # once the index exists, the write token will do (SHARDEX_TOKEN)
    deploy/lab.sh client --as write /usr/bin/python3 examples/python/example.py 10.200.0.1:7100
"""
import argparse
import time

from shardex_client import Client


def main():
    ap = argparse.ArgumentParser(description="A short shardex session.")
    ap.add_argument("server", nargs="?", default="127.0.0.1:7100", help="a worker, HOST:PORT")
    ap.add_argument("--tls-ca", help="the CA (PEM) of the workers' certificates: TLS "
                    "(default: SHARDEX_TLS_CA; none: plaintext)")
    ap.add_argument("--tls-cert", help="this client's certificate (PEM; SHARDEX_TLS_CERT)")
    ap.add_argument("--tls-key", help="its private key (PEM; SHARDEX_TLS_KEY)")
    ap.add_argument("--token", help="a bearer token (SHARDEX_TOKEN, which others cannot see "
                    "in ps)")
    a = ap.parse_args()
    c = Client(a.server, tls_ca=a.tls_ca, tls_cert=a.tls_cert, tls_key=a.tls_key, token=a.token)
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
