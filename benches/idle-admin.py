#!/usr/bin/env python3
"""Idle CPU of `baton node` with and without `[admin]`, by hand.

Usage: benches/idle-admin.py BATON [SECONDS (30)]

Starts two 3-node clusters side by side on loopback (default timings: heartbeat 100 ms,
failure timeout 500 ms; quorum "majority"; one group), one with an `[admin]` listener on every
node, one without; waits 5 s, then reads each process's CPU time (utime + stime of
/proc/PID/stat) over SECONDS in the same window. Nobody scrapes or watches. Prints each node's
CPU as a percentage of one core, the mean per cluster, and the load average; stops the nodes
and removes its directory. Python 3 standard library only; Linux (/proc).

The failover bench measures the same with `--idle --admin` (benches/src/bin/failover.rs);
this script needs no build but `baton` itself, so a debug and a release binary can be compared.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_ticks(pid):
    # Fields after the command name: utime and stime are the 12th and 13th.
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    baton = sys.argv[1]
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    d = tempfile.mkdtemp(prefix="baton-idle-admin-")
    procs = {}
    try:
        with open(f"{d}/s.secret", "w") as f:
            f.write("correct horse battery staple\n")
        for kind in ["admin", "plain"]:
            names = ["a", "b", "c"]
            addrs = {n: f"127.0.0.1:{free_port()}" for n in names}
            for n in names:
                seeds = ", ".join(f'"{m}@{addrs[m]}"' for m in names if m != n)
                text = (
                    f'[node]\nname = "{n}"\nlisten = "{addrs[n]}"\n\n'
                    f'[cluster]\nname = "{kind}"\nseeds = [{seeds}]\n'
                    f'voters = ["a", "b", "c"]\nsecret_file = "s.secret"\n\n'
                    f'[[group]]\nname = "g"\n'
                )
                if kind == "admin":
                    text += f'\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
                cfg = f"{d}/{kind}-{n}.toml"
                with open(cfg, "w") as f:
                    f.write(text)
                log = open(f"{d}/{kind}-{n}.log", "w")
                procs[(kind, n)] = subprocess.Popen(
                    [baton, "node", "--config", cfg], stdout=log, stderr=log
                )
                time.sleep(0.2)
        time.sleep(5)
        tck = os.sysconf("SC_CLK_TCK")
        t0 = {k: cpu_ticks(p.pid) for k, p in procs.items()}
        w0 = time.monotonic()
        time.sleep(secs)
        t1 = {k: cpu_ticks(p.pid) for k, p in procs.items()}
        wall = time.monotonic() - w0
        means = {}
        for kind in ["admin", "plain"]:
            per = [100.0 * (t1[(kind, n)] - t0[(kind, n)]) / tck / wall for n in "abc"]
            means[kind] = sum(per) / len(per)
            shown = ", ".join(f"{x:.3f} %" for x in per)
            print(f"{kind}: per node {shown}; mean {means[kind]:.3f} %")
        print(f"difference (admin - plain): {means['admin'] - means['plain']:+.3f} % of a core per node")
        print("load average:", " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
