"""Times a release plystrad from spawn to its first 200 on /api/v1/ready and to its first
answered check (not 503), and reads its RSS then, one second later, and after 1,000 more checks
(one connection; a server's idle threads keep memory they freed until they next allocate, so
the last figure is what a server in use holds). Start it on a migrated
database (an empty one, or one seed.py filled); each run starts and stops the server once.

It also reports the CPU time spent until ready (from /proc/PID/task/*/schedstat, in ns): by
plystrad's threads, and, for a local PostgreSQL, by the postgres processes (the backends that
served the load). A start that needs C ms of CPU cannot be ready in less than C / cores ms.

    cargo build --release -p plystrad
    run.py DATABASE_URL LABEL [RUNS]      (PLYSTRAD overrides target/release/plystrad)
"""
import http.client, json, os, subprocess, sys, time

BIN = os.environ.get("PLYSTRAD", os.path.join(os.path.dirname(__file__), "../../../target/release/plystrad"))
KEY = "readykey-0123456789abcdef0123456789abcdef"
PORT = 18090
CHECK = json.dumps({"actor": {"user_id": "user_00001", "member_id": "member_00001",
    "user_member_id": "um_00001", "space_id": "space_bench"},
    "resource_type": "invoice", "resource_id": "res_000001", "action": "read"})

def get(path, body=None):
    try:
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
        headers = {"X-Plystra-API-Key": KEY, "Content-Type": "application/json"}
        c.request("POST" if body else "GET", path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        return r.status, data
    except OSError:
        return None, b""

def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0

def cpu_ns(pid):
    """CPU time of every live thread of process `pid`, in ns (0 once it is gone)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                total += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    return total

def postgres_cpu():
    """pid -> CPU ns of every process named postgres."""
    found = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if open(f"/proc/{pid}/comm").read().strip() == "postgres":
                    found[pid] = cpu_ns(pid)
            except OSError:
                pass
    return found

def start(url):
    env = dict(os.environ, PLYSTRA_DATABASE_URL=url, PLYSTRA_API_KEY=KEY, PLYSTRA_API_KEY_PERMISSIONS="*",
               PLYSTRA_LOG=os.environ.get("LOGLEVEL", "warn"), RUST_LOG=os.environ.get("LOGLEVEL", "warn"))
    local_pg = url.startswith("postgres") and ("127.0.0.1" in url or "localhost" in url)
    pg_before = postgres_cpu() if local_pg else {}
    t0 = time.monotonic()
    p = subprocess.Popen([BIN, "--port", str(PORT)], env=env, stdout=subprocess.DEVNULL, stderr=open(os.environ.get("SERVER_LOG", os.devnull), "a"))
    ready = checked = cpu = pg_cpu = None
    while time.monotonic() - t0 < 60:
        if ready is None:
            s, _ = get("/api/v1/ready")
            if s == 200:
                ready = time.monotonic() - t0
                cpu = cpu_ns(p.pid) / 1e6
                pg_cpu = sum(ns - pg_before.get(pid, 0) for pid, ns in postgres_cpu().items()) / 1e6 if local_pg else None
        if ready is not None:
            s, data = get("/api/v1/authz/check", CHECK)
            if s is not None and s != 503:
                checked = time.monotonic() - t0
                break
        time.sleep(0.002)
    rss = rss_mb(p.pid)
    time.sleep(1.0)
    rss_later = rss_mb(p.pid)
    for _ in range(1000):
        get("/api/v1/authz/check", CHECK)
    rss_used = rss_mb(p.pid)
    p.terminate(); p.wait()
    return ready, checked, rss, rss_later, rss_used, cpu, pg_cpu

if __name__ == "__main__":
    url, label = sys.argv[1], sys.argv[2]
    for i in range(int(sys.argv[3]) if len(sys.argv) > 3 else 3):
        ready, checked, rss, later, used, cpu, pg_cpu = start(url)
        load = open("/proc/loadavg").read().split()[:3]
        cpu_text = "" if cpu is None else f", CPU until ready {cpu:.0f} ms" + ("" if pg_cpu is None else f" + postgres {pg_cpu:.0f} ms")
        print(f"{label} run {i+1}: ready {ready*1e3 if ready else float('nan'):.0f} ms, first check answered "
              f"{checked*1e3 if checked else float('nan'):.0f} ms{cpu_text}, RSS {rss:.0f} MB (1 s later {later:.0f} MB, after 1,000 checks {used:.0f} MB), load {' '.join(load)}", flush=True)
