"""Times a release plystrad from spawn to its first 200 on /api/v1/ready and to its first
answered check (not 503), and reads its RSS then, one second later, and after 1,000 more checks
(one connection; a server's idle threads keep memory they freed until they next allocate, so
the last figure is what a server in use holds). Start it on a migrated
database (an empty one, or one seed.py filled); each run starts and stops the server once.

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

def start(url):
    env = dict(os.environ, PLYSTRA_DATABASE_URL=url, PLYSTRA_API_KEY=KEY, PLYSTRA_API_KEY_PERMISSIONS="*",
               PLYSTRA_LOG=os.environ.get("LOGLEVEL", "warn"), RUST_LOG=os.environ.get("LOGLEVEL", "warn"))
    t0 = time.monotonic()
    p = subprocess.Popen([BIN, "--port", str(PORT)], env=env, stdout=subprocess.DEVNULL, stderr=open(os.environ.get("SERVER_LOG", os.devnull), "a"))
    ready = checked = None
    while time.monotonic() - t0 < 60:
        if ready is None:
            s, _ = get("/api/v1/ready")
            if s == 200:
                ready = time.monotonic() - t0
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
    return ready, checked, rss, rss_later, rss_used

if __name__ == "__main__":
    url, label = sys.argv[1], sys.argv[2]
    for i in range(int(sys.argv[3]) if len(sys.argv) > 3 else 3):
        ready, checked, rss, later, used = start(url)
        load = open("/proc/loadavg").read().split()[:3]
        print(f"{label} run {i+1}: ready {ready*1e3 if ready else float('nan'):.0f} ms, first check answered "
              f"{checked*1e3 if checked else float('nan'):.0f} ms, RSS {rss:.0f} MB (1 s later {later:.0f} MB, after 1,000 checks {used:.0f} MB), load {' '.join(load)}", flush=True)
