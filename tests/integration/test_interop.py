"""test_interop.py: the rpc layer against a gRPC stack shardex did not write.

Starts <build>/tests/echo_server as a real process and calls it with Debian's
python3-grpcio, using message classes generated at test time by
`protoc --python_out` (no grpc_tools): round trips, every status code with its
details, deadlines, undecodable requests, unknown methods and services, message
limits, concurrency from threads and futures, and server streams (order,
flow control, cancellation, deadlines, a stream open at SIGTERM). Also compiles the client
contract (proto/shardex/v1/shardex.proto) for Python and imports it. Finally
checks that the server exits 0 on SIGTERM.

Run with /usr/bin/python3 (it has python3-grpcio):
    /usr/bin/python3 tests/integration/test_interop.py \
        --build-dir BUILD --proto-dir REPO/proto [unittest args...]
"""
import argparse
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

MAX_MESSAGE = 65536
PORT_FILE_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 10.0

ECHO_PROTO = 'shardex/testing/v1/echo.proto'
CONTRACT_PROTO = 'shardex/v1/shardex.proto'
SERVICE = 'shardex.testing.v1.Echo'

# Filled in by main() before the tests run.
ENV = {}


def generate_messages(proto_dir, out_dir):
    """Compiles the protos for Python into out_dir and imports them."""
    os.makedirs(out_dir)
    subprocess.run(['protoc', '-I', proto_dir, '--python_out', out_dir,
                    os.path.join(proto_dir, ECHO_PROTO),
                    os.path.join(proto_dir, CONTRACT_PROTO)],
                   check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sys.path.insert(0, out_dir)
    echo_pb2 = importlib.import_module('shardex.testing.v1.echo_pb2')
    contract_pb2 = importlib.import_module('shardex.v1.shardex_pb2')
    return echo_pb2, contract_pb2


class EchoServer:
    """echo_server as a child process; its stdout and stderr go to a log file."""

    def __init__(self, binary, tmp_dir):
        self.binary = binary
        self.port_file = os.path.join(tmp_dir, 'port')
        self.log_path = os.path.join(tmp_dir, 'server.log')
        self.proc = None
        self.port = None

    def start(self):
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen(
                [self.binary, '--listen', '127.0.0.1:0', '--port-file', self.port_file,
                 '--max-message', str(MAX_MESSAGE), '--pool-threads', '8'],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + PORT_FILE_TIMEOUT_S
        delay = 0.005
        while True:
            if os.path.exists(self.port_file):  # written via rename: whole or absent
                with open(self.port_file) as f:
                    self.port = int(f.read().strip())
                return
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError('echo_server exited with %d before writing its port' % rc)
            if time.monotonic() > deadline:
                raise RuntimeError('echo_server wrote no port file within %.0f s'
                                   % PORT_FILE_TIMEOUT_S)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def stop(self):
        """SIGTERM, then SIGKILL after a timeout. Returns (exit code, seconds, killed)."""
        if self.proc is None:
            return None, 0.0, False  # never started
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0, False  # died on its own: rc says how
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
            return rc, time.monotonic() - t0, False
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(), time.monotonic() - t0, True

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, 'rb') as f:
                data = f.read().decode('utf-8', 'replace').splitlines()
        except OSError as e:
            return '(no server log: %s)' % e
        return '\n'.join(data[-lines:])


def identity(b):
    return b


class EchoInterop(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pb = ENV['echo_pb2']
        # Loopback only: never through an http_proxy from the environment.
        cls.channel = grpc.insecure_channel('127.0.0.1:%d' % ENV['port'],
                                            options=[('grpc.enable_http_proxy', 0)])
        grpc.channel_ready_future(cls.channel).result(timeout=CALL_TIMEOUT_S)
        pb = cls.pb
        cls.echo = cls.method('Echo', pb.EchoRequest, pb.EchoResponse)
        cls.sleep = cls.method('Sleep', pb.EchoRequest, pb.EchoResponse)
        cls.fail = cls.method('Fail', pb.FailRequest, pb.FailResponse)
        cls.count = cls.channel.unary_stream('/%s/Count' % SERVICE,
                                             request_serializer=pb.CountRequest.SerializeToString,
                                             response_deserializer=pb.EchoResponse.FromString)
        cls.stream_stats = cls.method('StreamStats', pb.StreamStatsRequest,
                                      pb.StreamStatsResponse)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()

    @classmethod
    def method(cls, name, req_cls, resp_cls):
        return cls.channel.unary_unary('/%s/%s' % (SERVICE, name),
                                       request_serializer=req_cls.SerializeToString,
                                       response_deserializer=resp_cls.FromString)

    def raw(self, path):
        return self.channel.unary_unary(path, request_serializer=identity,
                                        response_deserializer=identity)

    def assertRpcError(self, fn, code, details=None, contains=None):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        err = cm.exception
        self.assertEqual(err.code(), code, 'details: %r' % (err.details(),))
        if details is not None:
            self.assertEqual(err.details(), details)
        if contains is not None:
            self.assertIn(contains, err.details())
        return err

    # ------------------------------------------------------------ round trips --

    def test_echo_round_trip(self):
        payloads = [bytes(range(256)), b'\x00', b'\xff', b'\x00\xff\x00', b'',
                    'h\u00e9llo'.encode('utf-8'), b'x' * 1000]
        last = 0
        for p in payloads:
            resp = self.echo(self.pb.EchoRequest(payload=p), timeout=CALL_TIMEOUT_S)
            self.assertEqual(resp.payload, p)
            self.assertGreater(resp.calls, last)  # other calls may interleave: strictly more
            last = resp.calls

    def test_sleep_round_trip(self):
        resp = self.sleep(self.pb.EchoRequest(payload=b'\x00zz\xff', sleep_ms=20),
                          timeout=CALL_TIMEOUT_S)
        self.assertEqual(resp.payload, b'\x00zz\xff')
        self.assertGreater(resp.calls, 0)

    def test_contract_compiles(self):
        c = ENV['contract_pb2']
        self.assertIn('Shardex', c.DESCRIPTOR.services_by_name)
        req = c.PutRequest(docs=[c.Document(id='d1', fields=[
            c.Field(name='n', value=c.Value(i=-5)), c.Field(name='s', value=c.Value(s='\u00e9'))])])
        self.assertEqual(c.PutRequest.FromString(req.SerializeToString()), req)

    def test_protoset_describes_every_public_method(self):
        """build/shardex.protoset is what a grpcurl-like client needs without the
        sources: every method of the contract and of grpc.health.v1.Health, with
        message types that resolve (imports included)."""
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
        with open(os.path.join(ENV['build_dir'], 'shardex.protoset'), 'rb') as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        pool = descriptor_pool.DescriptorPool()
        for fd in fds.file:
            pool.Add(fd)
        want = ENV['contract_pb2'].DESCRIPTOR.services_by_name['Shardex']
        got = pool.FindServiceByName('shardex.v1.Shardex')
        self.assertEqual(sorted(m.name for m in got.methods), sorted(m.name for m in want.methods))
        health = pool.FindServiceByName('grpc.health.v1.Health')
        self.assertEqual(sorted(m.name for m in health.methods), ['Check', 'Watch'])
        factory = message_factory.MessageFactory(pool)
        for service in (got, health):
            for m in service.methods:
                for t in (m.input_type, m.output_type):
                    factory.GetPrototype(t)()  # resolves, imports included

    # ---------------------------------------------------------------- statuses --

    def test_fail_every_code(self):
        for code in grpc.StatusCode:
            if code == grpc.StatusCode.OK:
                continue
            num = code.value[0]
            msg = 'code %d: \u00fcnic\u00f8de \u2603 \u65e5\u672c \U0001f600 %s' % (num, code.name)
            with self.subTest(code=code.name):
                self.assertRpcError(
                    lambda: self.fail(self.pb.FailRequest(code=num, message=msg),
                                      timeout=CALL_TIMEOUT_S),
                    code, details=msg)
        self.assertEqual(len([c for c in grpc.StatusCode if c != grpc.StatusCode.OK]), 16)

    def test_fail_code_zero_is_ok(self):
        resp = self.fail(self.pb.FailRequest(code=0, message='fine'), timeout=CALL_TIMEOUT_S)
        self.assertEqual(resp, self.pb.FailResponse())

    # --------------------------------------------------------------- deadlines --

    def test_sleep_past_deadline(self):
        t0 = time.monotonic()
        self.assertRpcError(
            lambda: self.sleep(self.pb.EchoRequest(payload=b'z', sleep_ms=2000), timeout=0.2),
            grpc.StatusCode.DEADLINE_EXCEEDED)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.5, 'DEADLINE_EXCEEDED took %.2f s' % elapsed)
        # The server stays usable while that handler still sleeps.
        resp = self.echo(self.pb.EchoRequest(payload=b'after'), timeout=CALL_TIMEOUT_S)
        self.assertEqual(resp.payload, b'after')

    # ----------------------------------------------------- malformed and unknown --

    def test_undecodable_request(self):
        echo_raw = self.raw('/%s/Echo' % SERVICE)
        for data in (b'\x08\x05',     # field 1 as a varint; EchoRequest.payload is bytes
                     b'\x0a\x05ab',   # length-delimited field 1 cut short
                     b'\x0a'):        # a tag and no length
            with self.subTest(data=data):
                self.assertRpcError(lambda: echo_raw(data, timeout=CALL_TIMEOUT_S),
                                    grpc.StatusCode.INVALID_ARGUMENT,
                                    contains='not a valid shardex.testing.v1.EchoRequest message')
        # Well-formed bytes through the same raw path decode fine.
        ok = self.pb.EchoResponse.FromString(
            echo_raw(self.pb.EchoRequest(payload=b'\x00ok').SerializeToString(),
                     timeout=CALL_TIMEOUT_S))
        self.assertEqual(ok.payload, b'\x00ok')

    def test_unknown_method_and_service(self):
        for path in ('/%s/Nope' % SERVICE, '/shardex.testing.v1.Nope/Echo', '/no.such.Svc/Do'):
            with self.subTest(path=path):
                t0 = time.monotonic()
                self.assertRpcError(lambda: self.raw(path)(b'', timeout=CALL_TIMEOUT_S),
                                    grpc.StatusCode.UNIMPLEMENTED,
                                    details='unknown method %s' % path)
                elapsed = time.monotonic() - t0
                self.assertLess(elapsed, 2.0, '%s took %.2f s' % (path, elapsed))

    # ------------------------------------------------------------------ limits --

    def test_message_limit(self):
        big = os.urandom(100 * 1024)
        self.assertRpcError(
            lambda: self.echo(self.pb.EchoRequest(payload=big), timeout=CALL_TIMEOUT_S),
            grpc.StatusCode.RESOURCE_EXHAUSTED)
        ok = os.urandom(60 * 1024)
        resp = self.echo(self.pb.EchoRequest(payload=ok), timeout=CALL_TIMEOUT_S)
        self.assertEqual(resp.payload, ok)

    # ------------------------------------------------------------- concurrency --

    def test_threads(self):
        n_threads, n_calls = 16, 50
        errors = []
        calls_seen = []
        lock = threading.Lock()

        def worker(t):
            mine = []
            try:
                for i in range(n_calls):
                    p = b'\x00t%d-c%d\xff' % (t, i) + os.urandom(i)
                    resp = self.echo(self.pb.EchoRequest(payload=p), timeout=CALL_TIMEOUT_S)
                    if resp.payload != p:
                        raise AssertionError('thread %d call %d: sent %r got %r'
                                             % (t, i, p, resp.payload))
                    mine.append(resp.calls)
            except Exception as e:  # reported by the main thread
                with lock:
                    errors.append(repr(e))
            with lock:
                calls_seen.extend(mine)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        self.assertFalse(any(th.is_alive() for th in threads), 'threads still running')
        self.assertEqual(errors, [])
        self.assertEqual(len(calls_seen), n_threads * n_calls)
        # Every call got its own value of the server's counter.
        self.assertEqual(len(set(calls_seen)), n_threads * n_calls)

    def test_futures(self):
        n = 64
        futures = []
        for i in range(n):
            p = b'f%d\x00' % i + bytes([i % 256]) * i
            # Half on the blocking pool so that many are in flight together.
            if i % 2:
                fut = self.sleep.future(self.pb.EchoRequest(payload=p, sleep_ms=100),
                                        timeout=CALL_TIMEOUT_S)
            else:
                fut = self.echo.future(self.pb.EchoRequest(payload=p), timeout=CALL_TIMEOUT_S)
            futures.append((p, fut))
        for p, fut in futures:
            self.assertEqual(fut.result(timeout=CALL_TIMEOUT_S).payload, p)

    # ------------------------------------------------------ server streaming --

    def stats(self):
        return self.stream_stats(self.pb.StreamStatsRequest(), timeout=CALL_TIMEOUT_S)

    def wait_stats(self, pred, what):
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            st = self.stats()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                self.fail('server stream stats never showed %s: %s' % (what, st))
            time.sleep(0.01)

    def test_stream_every_message_in_order(self):
        before = self.stats().completed
        got = list(self.count(self.pb.CountRequest(count=5, payload=b'\x00s'),
                              timeout=CALL_TIMEOUT_S))
        self.assertEqual([m.calls for m in got], [1, 2, 3, 4, 5])
        self.assertTrue(all(m.payload == b'\x00s' for m in got))
        self.wait_stats(lambda st: st.completed == before + 1, 'the stream completed')

    def test_stream_faster_than_the_client_reads(self):
        # 3000 messages sent as fast as the server can, read slowly at first:
        # the server's queue fills (RESOURCE_EXHAUSTED to its sender, which
        # waits) and nothing is lost or reordered.
        it = self.count(self.pb.CountRequest(count=3000, payload=b'p' * 512),
                        timeout=60)
        seen = []
        for m in it:
            if len(seen) < 5:
                time.sleep(0.05)
            seen.append(m.calls)
        self.assertEqual(seen, list(range(1, 3001)))

    def test_stream_empty(self):
        # count=1 with the smallest message: a stream of one, then OK.
        got = list(self.count(self.pb.CountRequest(count=1), timeout=CALL_TIMEOUT_S))
        self.assertEqual([m.calls for m in got], [1])

    def test_stream_client_cancel_reaches_the_handler(self):
        before = self.stats().cancelled
        it = self.count(self.pb.CountRequest(count=0, interval_ms=5), timeout=CALL_TIMEOUT_S)
        firsts = [next(it).calls for _ in range(3)]
        self.assertEqual(firsts, [1, 2, 3])
        it.cancel()
        with self.assertRaises(grpc.RpcError) as cm:
            for _ in it:
                pass
        self.assertEqual(cm.exception.code(), grpc.StatusCode.CANCELLED)
        self.wait_stats(lambda st: st.cancelled >= before + 1 and st.open == 0,
                        'the cancelled stream ended on the server')

    def test_stream_deadline_reaches_the_handler(self):
        before = self.stats().cancelled
        it = self.count(self.pb.CountRequest(count=0, interval_ms=10), timeout=0.3)
        with self.assertRaises(grpc.RpcError) as cm:
            for _ in it:
                pass
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.wait_stats(lambda st: st.cancelled >= before + 1 and st.open == 0,
                        'the expired stream ended on the server')

    def test_stream_many_at_once(self):
        its = [self.count(self.pb.CountRequest(count=20, interval_ms=1, payload=b'%d' % i),
                          timeout=CALL_TIMEOUT_S) for i in range(16)]
        for i, it in enumerate(its):
            got = list(it)
            self.assertEqual([m.calls for m in got], list(range(1, 21)))
            self.assertTrue(all(m.payload == b'%d' % i for m in got))


def open_stream_then_stop(server, pb, problems):
    """A stream open when the server gets SIGTERM ends with the status its
    handler gave on hearing so (UNAVAILABLE), not with a cancellation after
    the shutdown grace; returns the server's (rc, secs, killed)."""
    ch = grpc.insecure_channel('127.0.0.1:%d' % server.port,
                               options=[('grpc.enable_http_proxy', 0)])
    count = ch.unary_stream('/%s/Count' % SERVICE,
                            request_serializer=pb.CountRequest.SerializeToString,
                            response_deserializer=pb.EchoResponse.FromString)
    it = count(pb.CountRequest(count=0, interval_ms=5), timeout=STOP_TIMEOUT_S)
    try:
        if next(it).calls != 1:
            problems.append('the open stream did not start at 1')
        result = server.stop()
        code = None
        try:
            for _ in it:
                pass
        except grpc.RpcError as e:
            code = e.code()
        if code != grpc.StatusCode.UNAVAILABLE:
            problems.append('a stream open at SIGTERM ended with %r, not UNAVAILABLE from '
                            'its handler' % (code,))
        return result
    finally:
        ch.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--build-dir', required=True)
    parser.add_argument('--proto-dir', required=True)
    args, rest = parser.parse_known_args()

    binary = os.path.join(args.build_dir, 'tests', 'echo_server')
    ENV['build_dir'] = args.build_dir
    tmp_dir = tempfile.mkdtemp(prefix='sx-interop-')
    server = None
    idle = None
    stopped = None
    ok = False
    problems = []
    try:
        ENV['echo_pb2'], ENV['contract_pb2'] = generate_messages(
            os.path.abspath(args.proto_dir), os.path.join(tmp_dir, 'gen'))
        if not os.access(binary, os.X_OK):
            raise RuntimeError('no echo_server at %s (build the echo_server target)' % binary)
        server = EchoServer(binary, tmp_dir)
        server.start()
        ENV['port'] = server.port
        # An idle connection that stays open across SIGTERM: shutdown must not wait on it.
        idle = grpc.insecure_channel('127.0.0.1:%d' % server.port,
                                     options=[('grpc.enable_http_proxy', 0)])
        grpc.channel_ready_future(idle).result(timeout=CALL_TIMEOUT_S)
        prog = unittest.main(module=__name__, argv=[sys.argv[0]] + rest, exit=False)
        ok = prog.result.wasSuccessful()
        stopped = open_stream_then_stop(server, ENV['echo_pb2'], problems)
    except Exception as e:
        problems.append('setup failed: %r' % (e,))
        if isinstance(e, subprocess.CalledProcessError):
            problems.append((e.stderr or b'').decode('utf-8', 'replace'))
    finally:
        if server is not None:
            rc, secs, killed = stopped if stopped else server.stop()
            if killed:
                problems.append('echo_server ignored SIGTERM for %.0f s: killed' % secs)
            elif rc is not None and rc != 0:  # None: never started, already recorded
                problems.append('echo_server exited with %r after SIGTERM (expected 0)' % rc)
            if problems or not ok:
                sys.stderr.write('---- echo_server log (tail) ----\n%s\n' % server.log_tail())
        if idle is not None:
            idle.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)
    for p in problems:
        sys.stderr.write('FAIL: %s\n' % p)
    sys.exit(0 if ok and not problems else 1)


if __name__ == '__main__':
    main()
