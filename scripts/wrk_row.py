"""One table row from wrk's --latency output on stdin (shared by the
benchmark scripts).

Usage: wrk ... | python3 scripts/wrk_row.py LABEL STOLEN [RESULTS]
Prints `| LABEL | req/s | p50 | p99 | non-2xx | stolen |`; with RESULTS,
appends `LABEL-WORDS req/s p50 p99` (ms) to that file for the medians.
"""
import re
import sys


def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]


label, stolen = sys.argv[1], float(sys.argv[2])
t = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", t).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
bad = int(bad.group(1)) if bad else 0
print(f"| {label} | {rps:.0f} | {p50:.2f} ms | {p99:.2f} ms | {bad} | {stolen:.1%} |")
if len(sys.argv) > 3:
    with open(sys.argv[3], "a") as f:
        f.write(f"{label.split(' | ')[-1]} {rps} {p50} {p99}\n")
