"""test_health_watch.py: grpc.health.v1.Health/Watch on the real daemons, read
with Debian's python3-grpcio as a load balancer's health watcher would.

Starts a coordinator and one worker (port 0, port files, a temp dir, a lease
of 1 s) and checks, on streams that stay open throughout:
- the worker's Watch("") says SERVING once it holds a lease; Watch of an
  unknown service says SERVICE_UNKNOWN and stays open (the protocol);
- the coordinator stops answering (SIGSTOP for longer than a lease): the open
  stream says NOT_SERVING, then SERVING again after SIGCONT, each status
  once (a change is sent, not a repeat);
- a cancelled Watch leaves the worker serving others;
- SIGTERM to the worker: an open Watch may first say NOT_SERVING (it hands
  its roles over: a balancer drains it), then ends with UNAVAILABLE, and the
  worker exits 0; the coordinator's Watch says SERVING.

Message classes come from `protoc --python_out` at test time.
Run with /usr/bin/python3:
    /usr/bin/python3 tests/integration/test_health_watch.py \
        --build-dir BUILD --proto-dir REPO/proto
"""
import argparse
import importlib.util
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc

WAIT_S = 30.0  # generous: the machine is shared with the build
HEALTH_PROTO = 'grpc/health/v1/health.proto'


def load_health_pb2(proto_dir, out_dir):
    """protoc writes grpc/health/v1/health_pb2.py, whose package name `grpc`
    would shadow grpcio: load it from its file under another name."""
    os.makedirs(out_dir)
    subprocess.run(['protoc', '-I', proto_dir, '--python_out', out_dir,
                    os.path.join(proto_dir, HEALTH_PROTO)],
                   check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    path = os.path.join(out_dir, 'grpc', 'health', 'v1', 'health_pb2.py')
    spec = importlib.util.spec_from_file_location('sx_health_pb2', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Proc:
    """A daemon as a child process writing a port file; log to a file."""

    def __init__(self, name, argv, tmp):
        self.name = name
        self.port_file = os.path.join(tmp, name + '.port')
        self.log_path = os.path.join(tmp, name + '.log')
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen(argv + ['--port-file', self.port_file],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT_S
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError('%s exited with %d before writing its port'
                                   % (name, self.proc.returncode))
            if time.monotonic() > deadline:
                raise RuntimeError('%s wrote no port file in %.0f s' % (name, WAIT_S))
            time.sleep(0.01)
        with open(self.port_file) as f:
            self.addr = '127.0.0.1:%d' % int(f.read().strip())

    def stop(self):
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGCONT)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return 'killed'

    def tail(self, n=30):
        try:
            with open(self.log_path, 'rb') as f:
                return '\n'.join(f.read().decode('utf-8', 'replace').splitlines()[-n:])
        except OSError as e:
            return '(no log: %s)' % e


class Watch:
    """One Watch stream read by a thread into a queue of status names; the
    stream's end goes in as ('end', code)."""

    def __init__(self, channel, pb, service):
        self.pb = pb
        self.q = queue.Queue()
        call = channel.unary_stream('/grpc.health.v1.Health/Watch',
                                    request_serializer=pb.HealthCheckRequest.SerializeToString,
                                    response_deserializer=pb.HealthCheckResponse.FromString)
        self.it = call(pb.HealthCheckRequest(service=service), timeout=120)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for m in self.it:
                self.q.put(self.pb.HealthCheckResponse.ServingStatus.Name(m.status))
            self.q.put(('end', grpc.StatusCode.OK))
        except grpc.RpcError as e:
            self.q.put(('end', e.code()))

    def next(self, what):
        try:
            return self.q.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError('no message on the Watch stream within %.0f s (waiting for %s)'
                                 % (WAIT_S, what))

    def expect(self, status):
        got = self.next(status)
        if got != status:
            raise AssertionError('Watch said %r, expected %r' % (got, status))

    def expect_soon(self, status):
        """The stream may first repeat nothing else: the next status must be this
        one, except for NOT_SERVING before a worker's first lease."""
        got = self.next(status)
        while got == 'NOT_SERVING' and status == 'SERVING':
            got = self.next(status)
        if got != status:
            raise AssertionError('Watch said %r, expected %r' % (got, status))

    def cancel(self):
        self.it.cancel()
        self.thread.join(WAIT_S)


def run(args, tmp, problems):
    pb = load_health_pb2(os.path.abspath(args.proto_dir), os.path.join(tmp, 'gen'))
    coord_bin = os.path.join(args.build_dir, 'coordinator', 'shardex-coordinator')
    worker_bin = os.path.join(args.build_dir, 'worker', 'shardex-worker')
    coord = Proc('coordinator', [coord_bin, '--listen', '127.0.0.1:0', '--data-dir',
                                 os.path.join(tmp, 'coord'), '--partitions', '2',
                                 '--replication', '1', '--min-isr', '1', '--lease-ms', '1000'],
                 tmp)
    procs = [coord]
    try:
        worker = Proc('worker', [worker_bin, '--listen', '127.0.0.1:0', '--coordinator',
                                 coord.addr, '--data-dir', os.path.join(tmp, 'w0')], tmp)
        procs.append(worker)
        opts = [('grpc.enable_http_proxy', 0)]
        wch = grpc.insecure_channel(worker.addr, options=opts)
        cch = grpc.insecure_channel(coord.addr, options=opts)
        try:
            whole = Watch(wch, pb, '')
            whole.expect_soon('SERVING')
            unknown = Watch(wch, pb, 'no.such.Service')
            unknown.expect('SERVICE_UNKNOWN')
            named = Watch(wch, pb, 'shardex.v1.Shardex')
            named.expect('SERVING')
            coord_watch = Watch(cch, pb, 'shardex.internal.v1.Coordinator')
            coord_watch.expect('SERVING')

            # No coordinator for longer than a lease: the worker has no lease.
            coord.proc.send_signal(signal.SIGSTOP)
            try:
                whole.expect('NOT_SERVING')
                named.expect('NOT_SERVING')
            finally:
                coord.proc.send_signal(signal.SIGCONT)
            whole.expect('SERVING')
            named.expect('SERVING')

            # A cancelled stream leaves the others going.
            named.cancel()
            end = named.next('the end of the cancelled stream')
            if end != ('end', grpc.StatusCode.CANCELLED):
                problems.append('a cancelled Watch ended with %r' % (end,))
            if not unknown.q.empty():
                problems.append('the unknown service got more than SERVICE_UNKNOWN: %r'
                                % (unknown.q.get(),))

            # SIGTERM: the open streams end with UNAVAILABLE, the worker exits 0.
            rc = worker.stop()
            if rc != 0:
                problems.append('the worker exited with %r after SIGTERM (expected 0)' % (rc,))
            for name, w in (('Watch("")', whole), ('Watch(no.such.Service)', unknown)):
                got = w.next('the end of %s at SIGTERM' % name)
                if got == 'NOT_SERVING' and w is whole:  # handing over: drain me
                    got = w.next('the end of %s at SIGTERM' % name)
                if got != ('end', grpc.StatusCode.UNAVAILABLE):
                    problems.append('%s at the worker\'s SIGTERM ended with %r, not UNAVAILABLE'
                                    % (name, got))
            coord_watch.cancel()
        finally:
            wch.close()
            cch.close()
    finally:
        for p in reversed(procs):
            p.stop()
            if problems:
                sys.stderr.write('---- %s log (tail) ----\n%s\n' % (p.name, p.tail()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--build-dir', required=True)
    parser.add_argument('--proto-dir', required=True)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix='sx-health-watch-')
    problems = []
    try:
        run(args, tmp, problems)
    except Exception as e:  # an assertion or a process that did not start
        problems.append('%s: %s' % (type(e).__name__, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for p in problems:
        sys.stderr.write('FAIL: %s\n' % p)
    print('%d passed, %d failed' % (0 if problems else 1, 1 if problems else 0))
    sys.exit(1 if problems else 0)


if __name__ == '__main__':
    main()
