#!/usr/bin/env python3
"""Helpers the peer benchmark scripts share (standard library only).

  peerstats.py alternate --runs N [--warmup W] --json OUT NAME=COMMAND ...
      Runs every COMMAND once per round, N rounds, in an order that rotates each round (round r starts
      with command r mod k), after W unrecorded warm-up rounds. Times each run's wall clock from just
      before the process is spawned until it has exited (time.perf_counter_ns; no shell: the command is
      split with shlex; "{n}" in a command becomes the attempt's number, for distinct output paths).
      Prints per command ok/attempts, failures (non-zero exit, with the first stderr
      line), and the median/mean/min/max of the successful runs in ms; writes them to OUT as JSON.
      Exit status 0 whatever the commands did: the caller reads the failures from the JSON.

  peerstats.py startup --json OUT [--expect BACKEND=N ...] DIR...
      Reads the samples.csv of `edgemeter startup` run directories (several rounds pooled) and prints,
      per backend: ok/attempts of the `total` phase (a failed attempt is a failure, its reason is
      printed), the median of each phase over the successful attempts, and per attempt
      create->remove = that attempt's own total + stop + remove (label run=N in one directory), whose
      median is printed too. With --expect, attempts a backend should have made but that no
      directory records (engine missing, run aborted) count as failures. Writes the same figures to
      OUT as JSON.
"""
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

PHASES = ["create", "start", "running", "ready", "stop", "remove", "total"]


def summary(values):
    if not values:
        return {"n": 0, "median": None, "mean": None, "min": None, "max": None}
    return {"n": len(values), "median": statistics.median(values), "mean": statistics.fmean(values),
            "min": min(values), "max": max(values)}


def alternate(args):
    runs, warmup, out, specs = 10, 0, None, []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--runs": runs = int(args[i + 1]); i += 2
        elif a == "--warmup": warmup = int(args[i + 1]); i += 2
        elif a == "--json": out = args[i + 1]; i += 2
        else:
            name, _, cmd = a.partition("=")
            specs.append((name, shlex.split(cmd))); i += 1
    results = {name: {"ok_ms": [], "attempts": 0, "failures": []} for name, _ in specs}
    k = len(specs)
    n = 0
    for r in range(warmup + runs):
        order = [specs[(j + r) % k] for j in range(k)]
        for name, argv in order:
            n += 1
            argv = [a.replace("{n}", str(n)) for a in argv]
            t0 = time.perf_counter_ns()
            p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ms = (time.perf_counter_ns() - t0) / 1e6
            if r < warmup:
                continue
            res = results[name]
            res["attempts"] += 1
            if p.returncode == 0:
                res["ok_ms"].append(ms)
            else:
                first = (p.stderr.decode(errors="replace").strip().splitlines() or [""])[0]
                res["failures"].append(f"exit {p.returncode}: {first[:160]}")
    for name, _ in specs:
        res = results[name]
        s = summary(res["ok_ms"])
        res.update(s)
        line = f"{name:34s} {len(res['ok_ms'])}/{res['attempts']} ok, {len(res['failures'])} failed"
        if s["n"]:
            line += f"; median {s['median']:.1f} ms, mean {s['mean']:.1f} ms, range {s['min']:.1f} … {s['max']:.1f} ms"
        print(line)
        for f in res["failures"][:3]:
            print(f"    failure: {f}")
    if out:
        json.dump(results, open(out, "w"), indent=1)


def startup(args):
    out, dirs, expect = None, [], {}
    i = 0
    while i < len(args):
        if args[i] == "--json": out = args[i + 1]; i += 2
        elif args[i] == "--expect":
            b, _, n = args[i + 1].partition("="); expect[b] = int(n); i += 2
        else: dirs.append(args[i]); i += 1
    per = {}          # backend -> {"phases": {phase: [ms]}, "attempts": n, "failures": [..], "c2r": [ms]}
    order = []
    for d in dirs:
        path = os.path.join(d, "samples.csv")
        if not os.path.exists(path):
            print(f"(no samples.csv in {d}: that edgemeter run did not start)")
            continue
        attempts = {}  # (backend, run) -> {phase: (status, value, reason)}
        for row in csv.DictReader(open(path)):
            if row["probe"] != "startup" or row["metric"] != "startup":
                continue
            labels = dict(kv.split("=", 1) for kv in row["labels"].split(";") if "=" in kv)
            key = (row["target"], labels.get("run", "?"))
            attempts.setdefault(key, {})[row["phase"]] = (row["status"], row["value"], row["reason"])
        for (backend, run), phases in attempts.items():
            if backend not in per:
                per[backend] = {"phases": {p: [] for p in PHASES}, "attempts": 0, "failures": [], "c2r": []}
                order.append(backend)
            b = per[backend]
            b["attempts"] += 1
            status, _, reason = phases.get("total", ("missing", "", "no total phase recorded"))
            bad = [p for p in PHASES if phases.get(p, ("missing",))[0] != "ok"]
            if status != "ok" or bad:
                why = reason or next((phases[p][2] for p in bad if p in phases and phases[p][2]), "")
                b["failures"].append(f"run {run} ({os.path.basename(d.rstrip('/'))}): {','.join(bad) or 'total'} not ok: {why[:160]}")
                continue
            for p in PHASES:
                b["phases"][p].append(float(phases[p][1]))
            b["c2r"].append(float(phases["total"][1]) + float(phases["stop"][1]) + float(phases["remove"][1]))
    for backend, n in expect.items():
        if backend not in per:
            per[backend] = {"phases": {p: [] for p in PHASES}, "attempts": 0, "failures": [], "c2r": []}
            order.append(backend)
        b = per[backend]
        if b["attempts"] < n:
            b["failures"] += [f"{n - b['attempts']} of {n} attempts not recorded (the backend did not run: see the run's log)"] * (n - b["attempts"])
            b["attempts"] = n
    med = lambda v: statistics.median(v) if v else None
    fmt = lambda v: "—" if v is None else f"{v:.1f}"
    print(f"{'backend':8s} {'ok/att':>7s} " + " ".join(f"{p:>8s}" for p in PHASES) + f" {'create→remove':>14s}")
    result = {}
    for backend in order:
        b = per[backend]
        ok = b["attempts"] - len(b["failures"])
        meds = {p: med(b["phases"][p]) for p in PHASES}
        c2r = med(b["c2r"])
        okatt = f"{ok}/{b['attempts']}"
        print(f"{backend:8s} {okatt:>7s} " + " ".join(f"{fmt(meds[p]):>8s}" for p in PHASES) + f" {fmt(c2r):>14s}")
        result[backend] = {"ok": ok, "attempts": b["attempts"], "failures": b["failures"], "p50": meds,
                           "create_to_remove_p50": c2r, "create_to_remove": b["c2r"]}
    for backend in order:
        for f in per[backend]["failures"][:3]:
            print(f"    {backend} failure: {f}")
    if out:
        json.dump(result, open(out, "w"), indent=1)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("alternate", "startup"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    {"alternate": alternate, "startup": startup}[sys.argv[1]](sys.argv[2:])
