#!/usr/bin/env python3
"""Measuring loop and statistics for hack/bench/cni-latency.

Two subcommands:

  run SPEC OUT     Runs inside the benchmark's "node" network namespace (started once with
                   `ip netns exec NODE python3 cni_bench.py run ...`, so that `ip netns exec`
                   is not part of any measured time). SPEC is a JSON file written by the shell
                   script; OUT receives the raw samples. Every plugin invocation is started with
                   posix_spawn and reaped with wait4, so each sample carries the child's wall
                   time and CPU time. Peak memory comes from a separate pass through
                   /usr/bin/time: the kernel folds the high-water mark of the memory a process
                   had before exec (here: this Python interpreter's, shared by posix_spawn) into
                   its ru_maxrss, so a direct child of Python never reports less than Python's
                   own ~15 MiB. `time` is small and forks, so its %M is the plugin's own peak
                   (and that of the children it reaps, e.g. host-local under bridge).

  report RAW [--json FILE]
                   Prints the table and the verdicts from the raw samples; optionally writes
                   the numbers as JSON.

Standard library only.
"""

import json
import os
import signal
import statistics
import sys
import time

# The child currently running, so that a TERM from the shell's cleanup does not leave it behind.
_current_child = None


class PluginFailure(Exception):
    pass


def _on_term(signum, _frame):
    raise SystemExit(128 + signum)


def _spawn_and_wait(argv, env, stdin_path, stdout_path, stderr_path):
    """Returns (wall seconds, exit code, rusage). Only spawn, run and reap are timed."""
    global _current_child
    fd_in = os.open(stdin_path, os.O_RDONLY)
    fd_out = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fd_err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    actions = [
        (os.POSIX_SPAWN_DUP2, fd_in, 0),
        (os.POSIX_SPAWN_DUP2, fd_out, 1),
        (os.POSIX_SPAWN_DUP2, fd_err, 2),
    ]
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _current_child = pid
        _, status, rusage = os.wait4(pid, 0)
        t1 = time.perf_counter()
        _current_child = None
    finally:
        os.close(fd_in)
        os.close(fd_out)
        os.close(fd_err)
    return t1 - t0, os.waitstatus_to_exitcode(status), rusage


def _read(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _check_add_result(stdout, families):
    """An ADD result must be a JSON object with an address of every configured family."""
    try:
        result = json.loads(stdout)
    except ValueError as e:
        return "stdout is not JSON (%s)" % e
    if not isinstance(result, dict):
        return "result is not a JSON object"
    ips = result.get("ips")
    if not isinstance(ips, list) or not ips:
        return "result has no \"ips\""
    seen = set()
    for ip in ips:
        addr = ip.get("address", "") if isinstance(ip, dict) else ""
        if "/" not in addr:
            return "result has an ips entry without a CIDR address: %r" % (ip,)
        seen.add(6 if ":" in addr else 4)
    missing = [f for f in families if f not in seen]
    if missing:
        return "result lacks an IPv%s address" % "/IPv".join(str(f) for f in missing)
    return None


def cmd_run(spec_path, out_path):
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    with open(spec_path) as f:
        spec = json.load(f)
    iterations = spec["iterations"]
    warmup = spec["warmup"]
    families = spec["families"]
    scratch = spec["scratch"]
    plugins = spec["plugins"]  # [{label, bin, config, pods: [netns names]}]
    base_env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_PATH": spec["cni_path"],
        "CNI_IFNAME": "eth0",
    }
    samples = {p["label"]: {"add": [], "del": [], "maxrss_kib": []} for p in plugins}
    checked = {}

    def invoke(plugin, command, pod, container_id, record, memory=None):
        env = dict(base_env)
        env["CNI_COMMAND"] = command
        env["CNI_CONTAINERID"] = container_id
        env["CNI_NETNS"] = "/var/run/netns/" + pod
        out = os.path.join(scratch, "out")
        err = os.path.join(scratch, "err")
        argv = [plugin["bin"]]
        memfile = os.path.join(scratch, "maxrss")
        if memory is not None:
            argv = ["/usr/bin/time", "-f", "%M", "-o", memfile, plugin["bin"]]
        wall, code, ru = _spawn_and_wait(argv, env, plugin["config"], out, err)
        if memory is not None and code == 0:
            memory.append(int(_read(memfile).strip().splitlines()[-1]))
        stdout = _read(out)
        problem = None
        if code != 0:
            problem = "exit status %d" % code
        elif command == "ADD":
            problem = _check_add_result(stdout, families)
        if problem:
            raise PluginFailure(
                "%s %s failed (%s)\n  binary: %s\n  CNI_CONTAINERID=%s CNI_NETNS=%s\n"
                "  --- stdout ---\n%s\n  --- stderr ---\n%s"
                % (plugin["label"], command, problem, plugin["bin"], container_id,
                   env["CNI_NETNS"], stdout.rstrip() or "(empty)",
                   _read(err).rstrip() or "(empty)"))
        if command == "ADD" and plugin["label"] not in checked:
            # Once per plugin, outside the timed region: the result's addresses, for the log.
            ips = [ip["address"] for ip in json.loads(stdout)["ips"]]
            checked[plugin["label"]] = ips
        if record is not None:
            record.append({
                "wall_ms": wall * 1e3,
                "cpu_ms": (ru.ru_utime + ru.ru_stime) * 1e3,
            })

    def ordered(i):
        # Alternate which plugin goes first, so neither always runs right after the other.
        return plugins if i % 2 == 0 else list(reversed(plugins))

    try:
        # Warm-up: ADD then DEL, not recorded. This also creates each plugin's bridge, so the
        # one-time bridge creation is outside the measurement for both.
        for i in range(warmup):
            for p in ordered(i):
                cid = "trlbench-warmup-%d" % i
                invoke(p, "ADD", p["pods"][i], cid, None)
                invoke(p, "DEL", p["pods"][i], cid, None)
        for i in range(iterations):
            for p in ordered(i):
                invoke(p, "ADD", p["pods"][i], "trlbench-%d" % i, samples[p["label"]]["add"])
        for i in range(iterations):
            for p in ordered(i):
                invoke(p, "DEL", p["pods"][i], "trlbench-%d" % i, samples[p["label"]]["del"])
        # Memory pass, untimed: a few more ADD+DEL through /usr/bin/time (see the top comment).
        for i in range(min(5, iterations)):
            for p in ordered(i):
                cid = "trlbench-mem-%d" % i
                invoke(p, "ADD", p["pods"][i], cid, None, memory=samples[p["label"]]["maxrss_kib"])
                invoke(p, "DEL", p["pods"][i], cid, None, memory=samples[p["label"]]["maxrss_kib"])
    except PluginFailure as e:
        print("cni-latency: %s" % e, file=sys.stderr)
        return 1
    finally:
        if _current_child is not None:
            try:
                os.kill(_current_child, signal.SIGKILL)
                os.waitpid(_current_child, 0)
            except OSError:
                pass
    for label, ips in checked.items():
        print("cni-latency: %s ADD result sample: %s" % (label, ", ".join(ips)), file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump({"spec": {k: spec[k] for k in ("iterations", "warmup", "families")},
                   "plugins": [{"label": p["label"], "bin": p["bin"]} for p in plugins],
                   "samples": samples}, f)
    return 0


def _summary(rows):
    wall = sorted(r["wall_ms"] for r in rows)
    if len(wall) >= 2:
        p90 = statistics.quantiles(wall, n=10, method="inclusive")[8]
    else:
        p90 = wall[0]
    return {
        "median_ms": statistics.median(wall),
        "p90_ms": p90,
        "min_ms": wall[0],
        "max_ms": wall[-1],
        "cpu_median_ms": statistics.median(r["cpu_ms"] for r in rows),
        "samples_ms": [r["wall_ms"] for r in rows],
    }


TARGETS = [
    # (key, description, metric path, limit)
    ("add_median_ratio", "ADD median ratio", ("add", "median_ms"), 0.5),
    ("peak_rss_ratio", "peak RSS ratio", ("peak_rss_max_mib",), 1.0),
]


def _metric(summary, path):
    v = summary
    for k in path:
        v = v[k]
    return v


def cmd_report(raw_path, json_path, meta):
    with open(raw_path) as f:
        raw = json.load(f)
    labels = [p["label"] for p in raw["plugins"]]
    summaries = {}
    for label in labels:
        s = raw["samples"][label]
        rss = s["maxrss_kib"]
        summaries[label] = {
            "add": _summary(s["add"]),
            "del": _summary(s["del"]),
            "peak_rss_max_mib": max(rss) / 1024.0,
            "peak_rss_median_mib": statistics.median(rss) / 1024.0,
        }

    have_both = "trellis" in summaries and "reference" in summaries
    rows = [
        ("ADD median (ms)", ("add", "median_ms")),
        ("ADD p90 (ms)", ("add", "p90_ms")),
        ("ADD min (ms)", ("add", "min_ms")),
        ("DEL median (ms)", ("del", "median_ms")),
        ("DEL p90 (ms)", ("del", "p90_ms")),
        ("DEL min (ms)", ("del", "min_ms")),
        ("peak RSS max (MiB)", ("peak_rss_max_mib",)),
    ]
    ratios = {}
    header = "%-20s" % "" + "".join("%12s" % l for l in labels)
    if have_both:
        header += "%12s" % "ratio"
    spec = raw["spec"]
    print("CNI ADD/DEL wall time per invocation: %d iterations after %d warm-up, %s"
          % (spec["iterations"], spec["warmup"],
             "dual-stack" if len(spec["families"]) > 1 else "IPv4 only"))
    for p in raw["plugins"]:
        print("  %-10s %s" % (p["label"], p["bin"]))
    print()
    print(header)
    for name, path in rows:
        line = "%-20s" % name + "".join("%12.2f" % _metric(summaries[l], path) for l in labels)
        if have_both:
            ref = _metric(summaries["reference"], path)
            r = _metric(summaries["trellis"], path) / ref if ref > 0 else float("inf")
            ratios["/".join(path)] = r
            line += "%12.2f" % r
        print(line)
    print()

    verdicts = []
    for key, desc, path, limit in TARGETS:
        if not have_both:
            print("%s: n/a (trellis not measured)" % desc)
            continue
        ref = _metric(summaries["reference"], path)
        r = _metric(summaries["trellis"], path) / ref if ref > 0 else float("inf")
        ok = r <= limit
        verdicts.append({"target": key, "ratio": r, "limit": limit, "pass": ok})
        print("%s %.2f (target <= %.1f): %s" % (desc, r, limit, "PASS" if ok else "FAIL"))

    if json_path:
        doc = {
            "benchmark": "cni-latency",
            "meta": meta,
            "iterations": spec["iterations"],
            "warmup": spec["warmup"],
            "dual_stack": len(spec["families"]) > 1,
            "binaries": {p["label"]: p["bin"] for p in raw["plugins"]},
            "results": summaries,
            "ratios_trellis_over_reference": ratios,
            "targets": verdicts,
        }
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "run":
        return cmd_run(argv[1], argv[2])
    if len(argv) >= 2 and argv[0] == "report":
        json_path = None
        meta = {}
        rest = argv[2:]
        while rest:
            if rest[0] == "--json" and len(rest) >= 2:
                json_path = rest[1]
                rest = rest[2:]
            elif rest[0] == "--meta" and len(rest) >= 2:
                k, _, v = rest[1].partition("=")
                meta[k] = v
                rest = rest[2:]
            else:
                print("cni_bench.py report: unexpected argument %r" % rest[0], file=sys.stderr)
                return 2
        return cmd_report(argv[1], json_path, meta)
    print("usage: cni_bench.py run SPEC OUT | report RAW [--json FILE] [--meta K=V]...",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
