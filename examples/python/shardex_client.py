"""A small Python client for shardex, on Debian's python3-grpcio.

Any gRPC stack can talk to shardex: this one compiles the client contract
(proto/shardex/v1/shardex.proto) with `protoc --python_out` at import time into
a cache directory and calls the methods by path. Run with /usr/bin/python3.

    from shardex_client import Client
    c = Client("127.0.0.1:7100")
    tokens = c.put([{"id": "a", "fields": {"title": "x", "size": 3}}])
    print(c.get("a", after=tokens))

A cluster that serves TLS (docs/security.md; certificates from deploy/certs.sh)
takes the CA, and either a client certificate or a bearer token, as the
`shardex` tool does; each argument left out comes from its environment
variable (SHARDEX_TLS_CA, SHARDEX_TLS_CERT, SHARDEX_TLS_KEY, SHARDEX_TOKEN):

    c = Client("10.200.0.1:7100", tls_ca="ca.pem",                    # verifies the worker
               tls_cert="admin.pem", tls_key="admin.key")             # and proves who we are
    c = Client("10.200.0.1:7100", tls_ca="ca.pem", token="0f3a...")   # or a token: its role

With grpcio that is grpc.ssl_channel_credentials(root_certificates=...,
private_key=..., certificate_chain=...) for the channel, and the token as
`authorization: Bearer TOKEN` metadata on every call
(grpc.access_token_call_credentials, which grpcio sends over TLS only).
"""
import os
import subprocess
import sys
import tempfile

import grpc

_HERE = os.path.dirname(os.path.abspath(__file__))
_PROTO = os.path.normpath(os.path.join(_HERE, "..", "..", "proto"))
_CACHE = os.path.join(tempfile.gettempdir(), "shardex-python-%d" % os.getuid())
os.makedirs(_CACHE, exist_ok=True)
subprocess.check_call(["protoc", "-I" + _PROTO, "--python_out=" + _CACHE,
                       "shardex/v1/shardex.proto"])
sys.path.insert(0, _CACHE)
from shardex.v1 import shardex_pb2 as pb  # noqa: E402


def _value(v):
    return pb.Value(i=v) if isinstance(v, int) else pb.Value(s=str(v))


def document(doc):
    """{"id": ..., "fields": {name: value or [values]}} -> shardex.v1.Document."""
    fields = []
    for name, v in doc.get("fields", {}).items():
        for one in (v if isinstance(v, list) else [v]):
            fields.append(pb.Field(name=name, value=_value(one)))
    return pb.Document(id=doc["id"], fields=fields)


def as_dict(d):
    out = {}
    for f in d.fields:
        v = f.value.i if f.value.WhichOneof("kind") == "i" else f.value.s
        out.setdefault(f.name, []).append(v)
    return {"id": d.id, "fields": {k: v[0] if len(v) == 1 else v for k, v in out.items()}}


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def credentials(tls_ca=None, tls_cert=None, tls_key=None, token=None):
    """The channel credentials for these files and token (None: from the
    environment, as libshardex reads it), or None for plaintext: no CA given."""
    tls_ca = tls_ca if tls_ca is not None else os.environ.get("SHARDEX_TLS_CA")
    tls_cert = tls_cert if tls_cert is not None else os.environ.get("SHARDEX_TLS_CERT")
    tls_key = tls_key if tls_key is not None else os.environ.get("SHARDEX_TLS_KEY")
    token = token if token is not None else os.environ.get("SHARDEX_TOKEN")
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("tls: a client certificate and its key go together")
    if not tls_ca:
        if tls_cert or token:
            raise ValueError("tls: a client certificate or a token needs the CA (tls_ca, "
                             "SHARDEX_TLS_CA): neither is ever sent in plaintext")
        return None
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca),
        private_key=_read(tls_key) if tls_key else None,
        certificate_chain=_read(tls_cert) if tls_cert else None)
    if token:  # `authorization: Bearer TOKEN` on every call
        creds = grpc.composite_channel_credentials(
            creds, grpc.access_token_call_credentials(token))
    return creds


class Client:
    def __init__(self, address, timeout=10.0, tls_ca=None, tls_cert=None, tls_key=None,
                 token=None):
        """A channel to one worker (any worker answers any call). With a CA
        (tls_ca or SHARDEX_TLS_CA) it is TLS, with the client certificate or
        token given, if any (credentials())."""
        options = [("grpc.enable_http_proxy", 0),
                   ("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.max_send_message_length", 64 << 20)]
        creds = credentials(tls_ca, tls_cert, tls_key, token)
        if creds is None:
            self.channel = grpc.insecure_channel(address, options=options)
        else:
            self.channel = grpc.secure_channel(address, creds, options=options)
        self.timeout = timeout

    def _call(self, method, req, resp_type):
        f = self.channel.unary_unary("/shardex.v1.Shardex/" + method,
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=resp_type.FromString)
        return f(req, timeout=self.timeout)

    def put(self, docs):
        """Writes documents; returns one write token per document, in order."""
        r = self._call("Put", pb.PutRequest(docs=[document(d) for d in docs]), pb.PutResponse)
        return list(r.tokens)

    def delete(self, ids):
        return list(self._call("Delete", pb.DeleteRequest(ids=list(ids)),
                               pb.DeleteResponse).tokens)

    def get(self, doc_id, after=()):
        """The document as a dict (None if absent) and its version token."""
        r = self._call("Get", pb.GetRequest(id=doc_id, after=list(after)), pb.GetResponse)
        return (as_dict(r.doc) if r.found else None), (r.version if r.found else None)

    def status(self):
        return self._call("ClusterStatus", pb.ClusterStatusRequest(), pb.ClusterStatusResponse)

    def create_index(self, name, field, type="string", local=True, global_=True,
                     term_partitions=0):
        t = pb.VALUE_TYPE_INT if type == "int" else pb.VALUE_TYPE_STRING
        spec = pb.IndexSpec(name=name, field=field, type=t, local=local, **{"global": global_},
                            term_partitions=term_partitions)
        return self._call("CreateIndex", pb.CreateIndexRequest(spec=spec),
                          pb.CreateIndexResponse).index

    def drop_index(self, name):
        self._call("DropIndex", pb.DropIndexRequest(name=name), pb.DropIndexResponse)

    def list_indexes(self):
        return list(self._call("ListIndexes", pb.ListIndexesRequest(),
                               pb.ListIndexesResponse).indexes)

    def query(self, index, eq=None, min=None, max=None, mode="auto", limit=0, page_token=b"",
              after=(), include_docs=False):
        """One page: the QueryResponse (hits ordered by (value, id))."""
        modes = {"auto": pb.MODE_UNSPECIFIED, "local": pb.MODE_LOCAL, "global": pb.MODE_GLOBAL}
        req = pb.QueryRequest(index=index, mode=modes[mode], limit=limit, page_token=page_token,
                              after=list(after), include_docs=include_docs)
        if eq is not None:
            req.eq.CopyFrom(_value(eq))
        else:
            req.range.SetInParent()
            if min is not None:
                req.range.min.CopyFrom(_value(min))
            if max is not None:
                req.range.max.CopyFrom(_value(max))
        return self._call("Query", req, pb.QueryResponse)

    def query_all(self, index, **kw):
        """Every hit, paging through: a list of (value, id)."""
        out, token = [], b""
        while True:
            r = self.query(index, page_token=token, **kw)
            out += [(h.value.i if h.value.WhichOneof("kind") == "i" else h.value.s, h.id)
                    for h in r.hits]
            token = r.next_page_token
            if not token:
                return out
