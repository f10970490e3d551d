"""make demo: shardex on this machine's Debian package catalogue.

Starts a 3-worker local cluster, loads every package (apt-cache dumpavail, or
/var/lib/dpkg/status when the catalogue is empty) as a document, reads some
back through different workers, kills the worker that leads one of them, shows
that every answer is unchanged after failover, and stops the cluster.
Secondary-index queries join this demo when the indexes land.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
from shardex_client import Client  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
DIR = os.path.join(ROOT, ".demo", "cluster")
CLUSTER = [os.path.join(HERE, "local-cluster.sh")]


def say(msg):
    print("== " + msg, flush=True)


def stanzas():
    text = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True).stdout
    source = "apt-cache dumpavail"
    if "Package:" not in text:
        text = open("/var/lib/dpkg/status", encoding="utf-8", errors="replace").read()
        source = "/var/lib/dpkg/status"
    docs, cur, last = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if "package" in cur:
                docs.append(cur)
            cur, last = {}, None
        elif line[0] in " \t" and last:
            cur[last] += "\n" + line.strip()
        elif ":" in line:
            k, v = line.split(":", 1)
            last = k.strip().lower()
            cur[last] = v.strip()
    return docs, source


def to_doc(st):
    fields = {}
    for k in ("section", "maintainer", "priority", "version", "architecture"):
        if k in st:
            fields[k] = st[k][:4000]
    if st.get("installed-size", "").isdigit():
        fields["installed-size"] = int(st["installed-size"])
    return {"id": st["package"] + ":" + st.get("architecture", "all"), "fields": fields}


def main():
    subprocess.run(CLUSTER + ["stop", "--dir", DIR], check=False)
    subprocess.run(["rm", "-rf", DIR], check=True)
    say("starting a coordinator and 3 workers (P=8, R=3, min_isr=2) in " + DIR)
    addr = subprocess.run(CLUSTER + ["start", "--dir", DIR, "--build", BUILD, "--workers", "3"],
                          check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    ports = [open(os.path.join(DIR, "w%d.port" % i)).read().strip() for i in range(3)]
    clients = [Client("127.0.0.1:" + p) for p in ports]
    say("cluster ready; clients may use any worker, e.g. " + addr)
    try:
        raw, source = stanzas()
        docs = {}
        for st in raw:
            d = to_doc(st)
            docs[d["id"]] = d
        docs = list(docs.values())
        say("loading %d packages from %s in batches of 500" % (len(docs), source))
        t0, tokens = time.time(), {}
        for i in range(0, len(docs), 500):
            batch = docs[i:i + 500]
            for d, t in zip(batch, clients[(i // 500) % 3].put(batch)):
                tokens[d["id"]] = t
            done = min(i + 500, len(docs))
            line = "   %d/%d documents, %.0f docs/s" % (done, len(docs), done / (time.time() - t0))
            if sys.stdout.isatty():
                print("\r" + line, end="", flush=True)  # one line, updated in place
            elif done == len(docs) or (i // 500) % 40 == 0:
                print(line, flush=True)
        if sys.stdout.isatty():
            print()
        say("loaded in %.1f s; every document acknowledged by its partition's ISR" %
            (time.time() - t0))
        sample = [docs[j]["id"] for j in range(0, len(docs), max(1, len(docs) // 5))][:5]
        say("reading back through different workers (with write tokens: read-your-writes)")
        before = {}
        for n, doc_id in enumerate(sample):
            got, ver = clients[n % 3].get(doc_id, after=[tokens[doc_id]])
            before[doc_id] = (got, ver.offset)
            print("   %-40s partition %d version %d  %s" % (doc_id, ver.partition, ver.offset,
                  {k: got["fields"].get(k) for k in ("section", "installed-size")}))
        status = clients[0].status()
        victim_id = status.log_partitions[tokens[sample[0]].partition].leader
        victim = next(i for i in range(3) if open(os.path.join(DIR, "w%d" % i, "worker-id"))
                      .read().strip() == victim_id)
        say("kill -9 worker %d (%s), the leader of partition %d" %
            (victim, victim_id, tokens[sample[0]].partition))
        subprocess.run(CLUSTER + ["kill-worker", str(victim), "--dir", DIR], check=True)
        t0 = time.time()
        survivor = clients[(victim + 1) % 3]
        while True:
            s = survivor.status()
            p = s.log_partitions[tokens[sample[0]].partition]
            if p.leader and p.leader != victim_id:
                break
            time.sleep(0.1)
        say("a new leader (%s, epoch %d) took over after %.1f s" % (p.leader, p.epoch,
            time.time() - t0))
        same = 0
        for doc_id in sample:
            got, ver = survivor.get(doc_id, after=[tokens[doc_id]])
            same += (got, ver.offset) == before[doc_id]
        say("%d of %d answers unchanged after failover" % (same, len(sample)))
        lost, checked = 0, list(tokens)[::50]
        for doc_id in checked:
            got, _ = survivor.get(doc_id, after=[tokens[doc_id]])
            lost += got is None
        say("spot check of %d acknowledged documents after failover: %d missing" %
            (len(checked), lost))
        subprocess.run(CLUSTER + ["restart-worker", str(victim), "--dir", DIR, "--build", BUILD],
                       check=True)
        say("worker %d restarted; it rejoins and catches up from the leaders" % victim)
        if same != len(sample) or lost:
            sys.exit(1)
    finally:
        say("stopping the cluster")
        subprocess.run(CLUSTER + ["stop", "--dir", DIR], check=False)


if __name__ == "__main__":
    main()
