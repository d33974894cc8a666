# Storm clients for internal/loadgen: C library clients (libpq through
# psycopg2, libmariadb through MySQLdb) as threads of one Debian python3
# process, one process per round. The Go side writes a JSON job on stdin
# and reads one JSON line per client on stdout. The round starts every
# thread, releases them at once, and waits for them until the deadline; a
# thread still running then is reported hung and abandoned (the process
# ends with os._exit, which does not wait for it).
import json
import os
import resource
import sys
import threading
import time


def pg_client(job, n):
    import psycopg2
    kw = dict(host=job["host"], port=job["port"], user=job["user"], dbname=job["database"],
              connect_timeout=max(1, int(job["limit"])), application_name="loadgen")
    if job.get("password"):
        kw["password"] = job["password"]
    if job.get("ca_file"):
        kw.update(sslmode="verify-full", sslrootcert=job["ca_file"])
    else:
        kw.update(sslmode="disable")
    t0 = time.perf_counter()
    conn = psycopg2.connect(**kw)
    t1 = time.perf_counter()
    try:
        cur = conn.cursor()
        cur.execute("SELECT %d" % n)
        got = cur.fetchone()[0]
    finally:
        conn.close()
    return t1 - t0, str(got)


def mysql_client(job, n):
    import MySQLdb
    limit = max(1, int(job["limit"]))
    kw = dict(host=job["host"], port=job["port"], user=job["user"], db=job["database"],
              connect_timeout=limit, read_timeout=limit, write_timeout=limit)
    if job.get("password"):
        kw["passwd"] = job["password"]
    if job.get("ca_file"):
        kw["ssl"] = {"ca": job["ca_file"]}
    t0 = time.perf_counter()
    conn = MySQLdb.connect(**kw)
    t1 = time.perf_counter()
    try:
        cur = conn.cursor()
        cur.execute("SELECT %d" % n)
        got = cur.fetchone()[0]
    finally:
        conn.close()
    return t1 - t0, str(got)


def one(job, client, rnd, idx, go, out):
    n = job["base"] + rnd * job["clients"] + idx
    go.wait()
    start = time.perf_counter()
    rec = {"round": rnd, "index": idx, "want": str(n)}
    try:
        connect, got = client(job, n)
        rec["connect"] = connect
        rec["got"] = got
    except Exception as e:  # the error's text is the result
        rec["error"] = ("%s: %s" % (type(e).__name__, e)).strip()
    rec["total"] = time.perf_counter() - start
    out[idx] = rec


def main():
    job = json.load(sys.stdin)
    client = {"psycopg2": pg_client, "mysqldb": mysql_client}[job["driver"]]
    # Import the driver once here, not in 1,000 threads at the same moment.
    __import__({"psycopg2": "psycopg2", "mysqldb": "MySQLdb"}[job["driver"]])
    # One socket per thread: lift the soft file limit (often 1,024) to the
    # hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Each client needs little stack; 1,000 threads at the default 8 MiB
    # only reserve address space, but a smaller stack keeps it modest.
    threading.stack_size(512 * 1024)
    rnd = job["round"]
    out = [None] * job["clients"]
    go = threading.Event()
    threads = []
    for idx in range(job["clients"]):
        t = threading.Thread(target=one, args=(job, client, rnd, idx, go, out), daemon=True)
        t.start()
        threads.append(t)
    start = time.perf_counter()
    go.set()
    deadline = start + job["limit"]
    for t in threads:
        t.join(max(0.0, deadline - time.perf_counter()))
    for idx in range(job["clients"]):
        rec = out[idx]
        if rec is None:
            rec = {"round": rnd, "index": idx, "hung": True, "total": time.perf_counter() - start}
        sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()
    os._exit(0)


main()
