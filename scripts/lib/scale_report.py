"""Prints bench-scale's tables (Markdown) from its results file, one JSON object per line."""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
sizes = sorted({r["size"] for r in rows if "size" in r})


def one(size, **match):
    found = [r for r in rows if r.get("size") == size and all(r.get(k) == v for k, v in match.items())]
    return found[-1] if found else None


def cell(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


table = []


def row(name, values, digits=1, ratio=True):
    ends = [v for v in (values[0], values[-1]) if v is not None]
    growth = f"{values[-1] / values[0]:.2f}" if ratio and len(ends) == 2 and len(values) > 1 and values[0] else ""
    table.append(f"| {name} | " + " | ".join(cell(v, digits) for v in values) + f" | {growth} |")


def shape(size, key):
    r = one(size, command="shape")
    return r and r[key]


def get(size, clients, key):
    r = [x for x in rows if x.get("size") == size and x.get("command") == "get" and x.get("clients") == clients and "startup" not in x]
    return r[-1].get(key) if r else None


def startup(size):
    r = [x["startup_ms"] for x in rows if x.get("size") == size and x.get("startup")]
    return statistics.median(r) if r else None


def maintenance(size, what, key):
    r = one(size, command="maintenance", what=what)
    return r and r[key]


def put(size, key):
    r = [x for x in rows if x.get("size") == size and x.get("command") == "put" and not x.get("growing")]
    return r[-1][key] if r else None


print("| figure | " + " | ".join(f"{s}×" for s in sizes) + f" | {sizes[-1]}× / {sizes[0]}× |")
print("|---|" + "---:|" * (len(sizes) + 1))
row("outputs", [shape(s, "outputs") for s in sizes])
row("sum of outputs, GB", [(shape(s, "logical_bytes") or 0) / 1e9 for s in sizes], 2)
row("disk, MB", [(shape(s, "disk_bytes") or 0) / 1e6 for s in sizes])
row("disk / sum of outputs", [(shape(s, "disk_bytes") or 0) / max(1, shape(s, "logical_bytes") or 1) for s in sizes], 3, ratio=False)
row("pack files", [shape(s, "pack_files") for s in sizes])
row("  of them pending recompression", [shape(s, "pending_pack_files") for s in sizes], ratio=False)
row("  after gc", [(one(s, command="after-gc") or {}).get("pack_files") for s in sizes])
row("catalog, MB", [(shape(s, "catalog_bytes") or 0) / 1e6 for s in sizes])
row("start-up to handshake, ms (median of 7)", [startup(s) for s in sizes])
row("get p50, ms (1 program)", [get(s, 1, "p50_ms") for s in sizes], 2)
row("get p99, ms (1 program)", [get(s, 1, "p99_ms") for s in sizes], 2)
for clients in (1, 4, 16):
    row(f"get MB/s, {clients} program{'s' if clients > 1 else ''} at once", [get(s, clients, "get_mb_s") for s in sizes])
row("16 programs' get MB/s / 1 program's", [(get(s, 16, "get_mb_s") or 0) / max(1e-9, get(s, 1, "get_mb_s") or 1) for s in sizes], 2, ratio=False)
row("get errors + wrong files (all runs)", [sum(x.get("errors", 0) + x.get("wrong", 0) for x in rows if x.get("size") == s and x.get("command") == "get") for s in sizes], ratio=False)
def alternated(size, key):
    r = [x[key] for x in rows if x.get("size") == size and x.get("alternated")]
    return statistics.median(r) if r else None


rounds = len({x["alternated"] for x in rows if x.get("alternated")})
if rounds:
    row(f"get p50, ms (median of {rounds} alternated rounds)", [alternated(s, "p50_ms") for s in sizes], 2)
    row(f"get p99, ms (median of {rounds} alternated rounds)", [alternated(s, "p99_ms") for s in sizes], 2)
    row(f"get MB/s, 1 program (median of {rounds} alternated rounds)", [alternated(s, "get_mb_s") for s in sizes])
    row(f"start-up to handshake, ms (median of {rounds} alternated rounds)", [alternated(s, "startup_ms") for s in sizes])
for clients in (1, 16):
    cpu = [get(s, clients, "program_cpu_s") for s in sizes]
    row(f"{clients} program{'s' if clients > 1 else ''}: CPU s / wall s, start to exit", [c / get(s, clients, "wall_s") if c else None for s, c in zip(sizes, cpu)], 2, ratio=False)
row("put one more build, MB/s", [put(s, "put_mb_s") for s in sizes])
row("  its background work after close, s", [put(s, "exit_s") for s in sizes])
for what in ("stats", "stats --json", "verify", "gc", "gc again", "export", "import", "trim to half"):
    row(f"`{what}`, s", [maintenance(s, what, "seconds") for s in sizes], 2)
    row(f"`{what}`, peak RSS MB", [(maintenance(s, what, "peak_rss_bytes") or 0) / 1e6 for s in sizes])
print("\n".join(table))

big = [r for r in rows if r.get("command", "").startswith("big-")]
if big:
    print("\n| huge output | size | MB/s | peak RSS MB | after close, s |")
    print("|---|---:|---:|---:|---:|")
    for r in big:
        rate = r.get("put_mb_s", r.get("get_mb_s"))
        print(f"| {r['command'][4:]} | {r['bytes'] / 2**30:.0f} GiB | {rate:,.0f} | {r['peak_rss_bytes'] / 1e6:,.1f} | {r['exit_s']:.1f} |")
