#!/usr/bin/env python3
"""Summarise a tools/gpu-check.sh run: OUTDIR/logs/* -> OUTDIR/summary.md (tables) and OUTDIR/results.json.

    python3 bench/gpu/summarize.py OUTDIR

Standard library only. Reads logs/info.env, logs/steps.tsv, logs/ctest-{gpu,all}.xml (ctest's JUnit), logs/torch.json
(bench/gpu/torch_dama_bench.py), logs/dama-*.json (bench/gpu/dama_step.lua: dama-bf16, dama-bf16-graph, dama-fp16,
dama-fp32 on the device, dama-cpu in a rehearsal), logs/loader.json
(bench/gpu/loader_bench.lua). Anything missing is reported as not run, with the step's status.
"""
import glob
import json
import os
import sys
import xml.etree.ElementTree as ET

TARGETS = "issue 11: >= 2x eager FP16 AMP samples/s, >= 1.3x torch.compile, >= 40 % MFU, batch 512 fits"


def read_env(path):
    d = {}
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            k, sep, v = line.rstrip("\n").partition("=")
            if sep:
                d[k] = v
    return d


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_steps(path):
    rows = []
    if os.path.exists(path):
        lines = open(path).read().splitlines()
        head = lines[0].split("\t") if lines else []
        for line in lines[1:]:
            rows.append(dict(zip(head, line.split("\t"))))
    return rows


def read_junit(path):
    """ctest --output-junit -> {passed, failed, skipped, total, tests: [(name, status, seconds)]} or None."""
    if not os.path.exists(path):
        return None
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None
    tests = []
    for tc in root.iter("testcase"):
        st = tc.get("status", "")
        if tc.find("failure") is not None or st == "fail":
            s = "failed"
        elif tc.find("skipped") is not None or st in ("notrun", "disabled"):
            s = "skipped"
        else:
            s = "passed"
        tests.append((tc.get("name"), s, float(tc.get("time") or 0)))
    c = {k: sum(1 for t in tests if t[1] == k) for k in ("passed", "failed", "skipped")}
    c["total"] = len(tests)
    c["tests"] = tests
    return c


def rehearse_mode(info_path):
    return read_env(info_path).get("mode") == "rehearse"


def fmt(v, spec="%.1f", none="n/a"):
    return none if v is None else spec % v


def main():
    out = sys.argv[1]
    logs = os.path.join(out, "logs")
    info = read_env(os.path.join(logs, "info.env"))
    steps = read_steps(os.path.join(logs, "steps.tsv"))
    step = {r["step"]: r for r in steps}
    gpu_t = read_junit(os.path.join(logs, "ctest-gpu.xml"))
    all_t = read_junit(os.path.join(logs, "ctest-all.xml"))
    if all_t:
        # tests stopped by the step's time limit (ctest --stop-time marks them Timeout) and tests never started
        cut = set()
        for path in glob.glob(os.path.join(logs, "*-ctest-all.log")):
            for line in open(path, errors="replace"):
                line = line.strip()
                if line.endswith("(Timeout)") and " - " in line:
                    cut.add(line.split(" - ", 1)[1].rsplit(" (", 1)[0])
        all_t["tests"] = [(n, "cut" if s == "failed" and n in cut else s, t) for n, s, t in all_t["tests"]]
        all_t["cut"] = sum(1 for t in all_t["tests"] if t[1] == "cut")
        all_t["failed"] = sum(1 for t in all_t["tests"] if t[1] == "failed")
        try:
            all_t["planned"] = int(open(os.path.join(logs, "ctest-all.count")).read().strip())
        except (OSError, ValueError):
            all_t["planned"] = all_t["total"]
        all_t["not_started"] = max(0, all_t["planned"] - all_t["total"])
    torch_r = read_json(os.path.join(logs, "torch.json"))
    variants = []   # dama_step.lua results on the device, in the order gpu-check ran them
    for name in ("dama-bf16", "dama-bf16-graph", "dama-fp16", "dama-fp32"):
        d = read_json(os.path.join(logs, name + ".json"))
        if d is None and os.path.exists(os.path.join(logs, "steps.tsv")) and "dama" in open(
                os.path.join(logs, "steps.tsv")).read():
            d = {"status": "not run", "device": "cuda", "reason": "no result: the process was stopped at its time "
                 "limit or crashed (see the dama step's log)"}
        if d is not None:
            d["variant"] = name
            variants.append(d)
    for path in sorted(glob.glob(os.path.join(logs, "dama-*.json"))):
        name = os.path.basename(path)[:-5]
        if name != "dama-cpu" and name not in [v["variant"] for v in variants]:
            d = read_json(path)
            if d is not None:
                d["variant"] = name
                variants.append(d)
    dama_cpu = read_json(os.path.join(logs, "dama-cpu.json"))
    ok = [v for v in variants if v.get("status") == "ok"]
    # the dama number the ratios use: the fastest variant that ran on the device; in a rehearsal, the CPU run
    dama_r = max(ok, key=lambda v: v["samples_per_s"]) if ok else (variants[0] if variants else None)
    if not ok and dama_cpu and dama_cpu.get("status") == "ok" and rehearse_mode(info_path=os.path.join(logs, "info.env")):
        dama_r = dict(dama_cpu, variant="dama-cpu")
    loader = read_json(os.path.join(logs, "loader.json"))
    rehearse = info.get("mode") == "rehearse"

    def step_note(name):
        r = step.get(name)
        if not r:
            return "not run: step missing"
        if r["status"] == "ok":
            return "ok"
        return "%s (rc %s after %s s of %s; see logs/%s)" % (r["status"], r["rc"], r["seconds"], r["limit"], r["log"])

    L = []
    title = "REHEARSAL on a CPU machine (no GPU parts)" if rehearse else "GPU run"
    L.append("# dama gpu-check: %s, %s" % (title, info.get("date_utc", "?")))
    L.append("")
    L.append("| | |")
    L.append("| --- | --- |")
    for k, label in (("gpu", "card"), ("driver", "driver"), ("cuda_driver", "CUDA (driver)"), ("gpu_mem", "GPU memory"),
                     ("commit", "commit"), ("commit_source", "commit from"), ("host", "host"), ("os", "OS"),
                     ("glibc", "glibc"), ("cpus", "CPUs"), ("cpu_model", "CPU"), ("mem_gib", "memory GiB"),
                     ("cc", "C compiler"), ("nvcc", "nvcc"), ("cmake", "CMake"), ("python", "Python"),
                     ("torch", "PyTorch")):
        if k in info:
            L.append("| %s | %s |" % (label, info[k].replace("|", "/")))
    L.append("")
    L.append("## Steps")
    L.append("")
    L.append("| step | status | rc | seconds | limit | log |")
    L.append("| --- | --- | ---: | ---: | ---: | --- |")
    for r in steps:
        L.append("| %s | %s | %s | %s | %s | logs/%s |" % (r["step"], r["status"], r["rc"], r["seconds"], r["limit"],
                                                          r["log"]))
    L.append("")

    L.append("## Tests")
    L.append("")
    L.append("| ctest | passed | failed | skipped | stopped by the time limit | not started (time) | tests |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, t, st in (("-L gpu", gpu_t, "ctest-gpu"), ("-LE gpu (the rest)", all_t, "ctest-all")):
        if t:
            L.append("| %s | %d | %d | %d | %d | %d | %d |" % (name, t["passed"], t["failed"], t["skipped"], t.get("cut", 0),
                                                          t.get("not_started", 0), t.get("planned", t["total"])))
        else:
            L.append("| %s | not run: %s | | | | | |" % (name, step_note(st)))
    if gpu_t:
        L.append("")
        L.append("GPU tests: " + ", ".join("%s %s (%.1f s)" % t for t in gpu_t["tests"]))
    bad = [t for t in (all_t or {"tests": []})["tests"] if t[1] == "failed"]
    if bad:
        L.append("")
        L.append("Failed: " + ", ".join(t[0] for t in bad))
    cut = [t for t in (all_t or {"tests": []})["tests"] if t[1] == "cut"]
    if cut:
        L.append("")
        L.append("Stopped by the time limit (not failures): " + ", ".join(t[0] for t in cut))
    L.append("")

    L.append("## The DAMA pretraining step (%s)" % ("tiny config on the CPU" if rehearse else
                                                     "ViT-B/16, batch 512, 128 x 128 x 7, mask 0.8: Table 6"))
    L.append("")
    peak = None
    ratios = {}
    if torch_r:
        peak = torch_r.get("peak_bf16_tflops")
        g = torch_r.get("gemm_bfloat16", {})
        h = torch_r.get("gemm_float16", {})
        L.append("PyTorch %s on %s%s; %.4g GFLOP per step (analytic, forward + backward GEMMs: "
                 "bench/gpu/torch_dama_bench.py step_flops). Dense GEMM rate measured in the same call, %dx%dx%d: "
                 "bf16 best %s / median %s TFLOP/s, fp16 best %s TFLOP/s. MFU is against the bf16 best." % (
                     torch_r.get("torch"), torch_r.get("device"),
                     " (%s)" % torch_r["gpu"] if torch_r.get("gpu") else "", torch_r["flops_per_step"] / 1e9,
                     g.get("n", 0), g.get("n", 0), g.get("n", 0), fmt(g.get("tflops_best"), "%.4g"),
                     fmt(g.get("tflops_median"), "%.4g"), fmt(h.get("tflops_best"), "%.4g",
                                                             "not run" if h.get("reason") else "n/a")))
        L.append("")
    else:
        L.append("PyTorch benchmark: not run: %s" % step_note("torch"))
        L.append("")
    if dama_r is not None and dama_r.get("status") == "ok":
        L.append("dama / this: the samples/s of dama's fastest run (%s, %s, %s%s) over each PyTorch mode's." % (
            dama_r["variant"], dama_r.get("device"), dama_r.get("precision"), ", CUDA graph" if dama_r.get("graph")
            else ""))
        L.append("")
    L.append("| implementation | mode | samples/s | step ms (median) | TFLOP/s | MFU | peak memory GiB | dama / this |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    dama_ok = dama_r is not None and dama_r.get("status") == "ok"
    labels = {"fp16": "eager FP16 AMP (GradScaler)", "bf16": "eager BF16 autocast", "compile": "torch.compile (bf16)",
              "fp32": "eager FP32"}
    order = ["fp16", "bf16", "compile", "fp32"]
    tmodes = sorted((torch_r or {}).get("modes", {}).items(),
                    key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    if torch_r:
        for mode, r in tmodes:
            if r.get("status") == "ok":
                ratio = ""
                if dama_ok:
                    ratios[mode] = dama_r["samples_per_s"] / r["samples_per_s"]
                    ratio = "%.2fx" % ratios[mode]
                elif dama_r is not None:
                    ratio = "dama not run"
                mem = r.get("peak_mem_bytes")
                extra = ""
                if r.get("scaler_skipped_steps"):
                    extra = " (%d steps skipped by the scaler)" % r["scaler_skipped_steps"]
                L.append("| PyTorch | %s%s | %.1f | %.2f | %s | %s | %s | %s |" % (
                    labels.get(mode, mode), extra, r["samples_per_s"], r["step_ms_median"], fmt(r.get("tflops"), "%.4g"),
                    fmt(r.get("mfu") and 100 * r["mfu"], "%.1f %%"), fmt(mem and mem / 2 ** 30, "%.2f"), ratio))
            else:
                L.append("| PyTorch | %s | not run: %s | | | | | |" % (labels.get(mode, mode), r.get("reason", "?")))
    if not variants:
        L.append("| dama | cuda | not run: %s | | | | | |" % step_note("dama"))
    rows = list(variants) + ([dict(dama_cpu, variant="dama-cpu (tiny)")] if dama_cpu else [])
    seen = set()
    for d in rows:
        what = "%s, %s%s" % (d.get("device"), d.get("precision", "fp32"), ", CUDA graph" if d.get("graph") else "")
        if d.get("status") == "ok":
            mfu = d["tflops"] / peak if peak and d.get("device", "").startswith("cuda") else None
            L.append("| %s | %s | %.1f | %.2f | %.4g | %s | %s | |" % (
                d["variant"], what, d["samples_per_s"], d["step_ms_median"], d["tflops"],
                fmt(mfu and 100 * mfu, "%.1f %%"), fmt(d.get("peak_mem_bytes", 0) / 2 ** 30, "%.2f")))
        else:
            why = d.get("reason", "?")
            L.append("| %s | %s | not run: %s | | | | | |" % (d["variant"], what, "the same" if why in seen else why))
            seen.add(why)
    L.append("")
    # the targets
    tm = (torch_r or {}).get("modes", {})

    def target(desc, mode, factor):
        r = tm.get(mode, {})
        if not dama_ok:
            return "%s: not measured (dama's step did not run)" % desc
        if r.get("status") != "ok":
            return "%s: not measured (PyTorch %s did not run)" % (desc, mode)
        got = ratios[mode]
        return "%s: %s (%.2fx)" % (desc, "met" if got >= factor else "not met", got)
    lines = [target(">= 2x eager FP16 AMP", "fp16", 2.0), target(">= 1.3x torch.compile", "compile", 1.3)]
    if dama_ok and peak and str(dama_r.get("device", "")).startswith("cuda"):
        m = dama_r["tflops"] / peak
        lines.append(">= 40 %% MFU: %s (%.1f %%)" % ("met" if m >= 0.4 else "not met", 100 * m))
        lines.append("batch 512 fits: %s" % ("yes" if dama_r["shape"]["batch"] == 512 else "not at 512"))
    else:
        lines.append(">= 40 % MFU: not measured")
        lines.append("batch 512 fits: not measured")
    L.append("Targets (%s):" % TARGETS)
    L.append("")
    for t in lines:
        L.append("- %s" % t)
    L.append("")

    L.append("## Input pipeline (bench/gpu/loader_bench.lua)")
    L.append("")
    if loader:
        need = None
        if peak and torch_r and torch_r.get("device", "").startswith("cuda"):
            per_sample = torch_r["flops_per_step"] / torch_r["config"]["batch"]
            need = 0.4 * peak * 1e12 / per_sample
        L.append("%d synthetic 100x100x7 uint16 crops in memory -> the reference's training augmentation -> "
                 "batches of %d x 7 x 128 x 128 f32; %s s per case; %s CPUs (%s)%s." % (
                     loader["n"], loader["batch"], loader["seconds"], loader.get("cpus"), loader.get("cpu_model"),
                     "; the step at 40 %% MFU would eat %.0f samples/s" % need if need else ""))
        L.append("")
        L.append("| to | workers | samples/s (wall) | CPU ms per sample | %s |" % (
            "x 40 % MFU demand" if need else "vs 0 workers"))
        L.append("| --- | ---: | ---: | ---: | ---: |")
        base = {}
        for r in loader["runs"]:
            if r.get("status") == "ok":
                base.setdefault(r["device"], r["samples_per_s"])
                rel = r["samples_per_s"] / need if need else r["samples_per_s"] / base[r["device"]]
                L.append("| %s | %d | %.0f | %.3f | %.2f |" % (r["device"], r["workers"], r["samples_per_s"],
                                                              r["cpu_ms_per_sample"], rel))
            else:
                L.append("| %s | %d | not run: %s | | |" % (r["device"], r["workers"], r.get("reason", "?")))
    else:
        L.append("not run: %s" % step_note("loader"))
    L.append("")

    # a row for bench/RESULTS.md
    parts = []
    for mode, r in tmodes:
        if r.get("status") == "ok":
            parts.append("torch %s %.0f/s%s" % (mode, r["samples_per_s"],
                                                " (MFU %.0f %%)" % (100 * r["mfu"]) if r.get("mfu") else ""))
    if dama_r is not None:
        parts.append("dama %s" % ("%s %.0f/s" % (dama_r["variant"], dama_r["samples_per_s"]) if dama_ok else
                                  "not run: " + dama_r.get("reason", "?")[:120]))
    if gpu_t:
        parts.append("ctest -L gpu %d passed %d failed %d skipped" % (gpu_t["passed"], gpu_t["failed"], gpu_t["skipped"]))
    if all_t:
        parts.append("rest %d/%d passed, %d failed%s" % (
            all_t["passed"], all_t["planned"], all_t["failed"],
            ", %d not finished in time" % (all_t["cut"] + all_t["not_started"]) if all_t["cut"] + all_t["not_started"]
            else ""))
    if loader:
        best = max((r for r in loader["runs"] if r.get("status") == "ok"), key=lambda r: r["samples_per_s"], default=None)
        if best:
            parts.append("loader best %.0f/s (%d workers, to %s)" % (best["samples_per_s"], best["workers"],
                                                                     best["device"]))
    row = "| %s | %s | %s | %s | %s |" % (info.get("date_utc", "?")[:10], info.get("gpu", "?"), info.get("driver", "?"),
                                         info.get("commit", "?")[:12], "; ".join(parts).replace("|", "/"))
    L.append("## For bench/RESULTS.md")
    L.append("")
    L.append(row if not rehearse else "(a rehearsal: no row) " + row)
    L.append("")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(L))
    res = {"info": info, "steps": steps, "ctest_gpu": gpu_t, "ctest_rest": all_t, "torch": torch_r, "dama": variants,
           "dama_cpu": dama_cpu, "loader": loader, "ratios_dama_over_torch": ratios, "targets": lines,
           "results_row": row}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True, default=str)
    print("summarize: wrote %s and %s" % (os.path.join(out, "summary.md"), os.path.join(out, "results.json")))


if __name__ == "__main__":
    main()
