#!/usr/bin/env python3
"""The DAMA pretraining step in PyTorch on one GPU, timed in three modes in one process (issue 11, Performance).

    python3 bench/gpu/torch_dama_bench.py [--config vitb|tiny] [--batch N] [--steps 20] [--warmup 3]
                                          [--modes fp16,bf16,compile] [--time-cap SECONDS] [--json OUT.json]

The model, masking and losses are tests/reference/dama_ref.py, our port of the reference code (hula-ai/DAMA @ 7dfad70,
spec sections 1-5): two independently initialised MAEs (ViT-B/16 encoder 768 x 12, decoder 512 x 8) and the projection
head, branch 1 random masking, branch 2 adaptive masking (the per-sample rule, dama's default), norm-pix losses on both
branches and the feature loss, AdamW (0.9, 0.95), weight decay 0.05 on the reference's groups, lr 1.5e-4 * 512 / 256.
Only the two masking functions are replaced, by copies that allocate on the input's device (dama_ref builds the mask
with torch.ones on the CPU, which is all its fixtures need); their arithmetic is unchanged.

Config vitb = the paper's Table 6 step: batch 512, 128 x 128 x 7 images, patch 16, mask ratio 0.8 (K = 12 of L = 64
patches visible), overlap 0.5, last 6 blocks. tiny: a small model for trying the script on a CPU.

Modes, in this order (torch.compile last: its compilation takes the longest), each on a freshly built model (same
seed), warm-up steps, then --steps timed steps:
  fp16     eager, torch.autocast(float16) + GradScaler (dynamic loss scale, PyTorch defaults): how the reference trains
  bf16     eager, torch.autocast(bfloat16), no scaler
  compile  torch.compile (default mode) of the forward + losses under bf16 autocast; backward through the compiled
           graph, the optimizer step eager (foreach AdamW, as in the eager modes)
  fp32     eager without autocast (PyTorch's default FP32 matmuls, TF32 off): what dama's CUDA step computes until its
           mixed precision exists
Every mode also computes the gradient norm each step, as the reference's loss scaler does (--grad-norm 0: not).
Per mode: samples/s (batch x steps / the wall time of the timed steps, device events, one synchronisation at the
end), the median step time, peak memory (torch.cuda.max_memory_allocated over the timed steps) and MFU: the step's
analytic FLOPs (step_flops below) per second over the card's dense BF16 GEMM rate, measured first in the same process
with one large bf16 matmul (8192^3 on a GPU, best of several). A mode that cannot run says "not run: <reason>".
Prints one "result ..." line per mode and writes everything to --json.
"""
import argparse
import gc
import json
import math
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

import torch  # noqa: E402

import dama_ref  # noqa: E402

CONFIGS = {
    # Table 6 / spec 1.1-1.2: ViT-B/16 encoder, 512 x 8 decoder, batch 512, 128 x 128 x 7
    "vitb": dict(img_size=128, patch_size=16, in_chans=7, embed_dim=768, depth=12, num_heads=12,
                 decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, batch=512, k_blocks=6),
    # recipes/dama.lua's preset=tiny (bench/gpu/dama_step.lua config=tiny): for rehearsing the script on a CPU
    "tiny": dict(img_size=32, patch_size=8, in_chans=7, embed_dim=32, depth=2, num_heads=2,
                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, batch=8, k_blocks=1),
}
MASK_RATIO, OVERLAP = 0.8, 0.5


# ---- device-aware copies of dama_ref.random_masking / adaptive_masking (same arithmetic; tensors on x's device)

def random_masking(x, mask_ratio, noise):
    N, L, D = x.shape
    K = dama_ref.num_keep(L, mask_ratio)
    ids_shuffle = dama_ref.argsort_stable(noise, dim=1)
    ids_restore = dama_ref.argsort_stable(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :K]
    x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, D))
    mask = torch.ones([N, L], dtype=x.dtype, device=x.device)
    mask[:, :K] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_masked, mask, ids_shuffle, ids_restore


def adaptive_masking(x, m1, loss1, mask_ratio, overlap_ratio, mode="per_sample"):
    N, L, D = x.shape
    K = dama_ref.num_keep(L, mask_ratio)
    R = int(L - K * 2)
    O = int(K * overlap_ratio)
    rows = torch.arange(N, device=x.device)[:, None]
    s = loss1.detach().clone() * m1.detach().clone()
    T = dama_ref.argsort_stable(s, dim=1)[:, -(R + O):]
    m2 = torch.where(m1 == 1, 0, 1).to(x.dtype)
    m2[rows, T] = 1
    V = dama_ref.argsort_stable(m1.detach(), dim=1)[:, :O]
    if mode == "union":
        m2[:, V] = 0
    else:
        m2[rows, V] = 0
    ids_shuffle2 = dama_ref.argsort_stable(m2, dim=1)
    ids_keep2 = ids_shuffle2[:, :K]
    x_masked = torch.gather(x, 1, ids_keep2.unsqueeze(-1).repeat(1, 1, D))
    ids_restore2 = dama_ref.argsort_stable(ids_shuffle2, dim=1)
    return x_masked, m2, ids_shuffle2, ids_restore2


dama_ref.random_masking = random_masking
dama_ref.adaptive_masking = adaptive_masking


def step_flops(c):
    """GEMM FLOPs of one training step (forward + backward) of the DAMA model, counted analytically.

    Per branch (two branches, same shapes), with N = batch, L = (img/p)^2 patches, K = int(L(1 - r)) visible,
    D / d = encoder / decoder width, E / e = their depths, P = p*p*C values per patch, a Linear of M rows from
    width a to width b costing 2*M*a*b FLOPs forward, and a block on T tokens of width w costing
    2*N*T*(w*3w + w*w + 2*w*4w) = 24*N*T*w^2 (qkv, proj, fc1, fc2) + 4*N*T^2*w (q k^T and attn v, all heads):
        patch embedding   2*N*L*P*D                         (every patch is embedded; Conv2d = one GEMM)
        encoder           E * block(T = 1 + K, w = D)
        decoder_embed     2*N*(1 + K)*D*d
        decoder           e * block(T = 1 + L, w = d)
        decoder_pred      2*N*(1 + L)*d*P                   (applied to all 1 + L tokens, cls dropped after)
    plus the projection head on branch 1's 1 + K tokens: 2*N*(1 + K)*(D*2D + 2D*D).
    Training = 3 x forward for every product (forward, input gradient, weight gradient), except the patch
    embedding: 2 x (its input is the image, which needs no gradient). LayerNorm, GELU, softmax, the losses, masking
    and AdamW are not counted (the usual MFU convention). Table 6's step: 18.06 TFLOP (spec section 10: "~18").
    """
    N, p, C, D, E, d, e = (c["batch"], c["patch_size"], c["in_chans"], c["embed_dim"], c["depth"],
                           c["decoder_embed_dim"], c["decoder_depth"])
    L = (c["img_size"] // p) ** 2
    K = dama_ref.num_keep(L, MASK_RATIO)
    P = p * p * C

    def block(T, w):
        return 24 * N * T * w * w + 4 * N * T * T * w

    patch = 2 * N * L * P * D
    rest = E * block(1 + K, D) + 2 * N * (1 + K) * D * d + e * block(1 + L, d) + 2 * N * (1 + L) * d * P
    head = 2 * N * (1 + K) * (D * 2 * D + 2 * D * D)
    return 2 * (3 * rest + 2 * patch) + 3 * head


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def gemm_rate(dev, dtype, n, reps=10, warmup=3):
    """TFLOP/s of one n x n x n matmul (torch.matmul: cuBLAS on a GPU), best and median of reps."""
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(warmup):
        torch.matmul(a, b)
    sync(dev)
    times = []
    for _ in range(reps):
        if dev.type == "cuda":
            s, t = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            torch.matmul(a, b)
            t.record()
            t.synchronize()
            times.append(s.elapsed_time(t) / 1e3)
        else:
            t0 = time.perf_counter()
            torch.matmul(a, b)
            times.append(time.perf_counter() - t0)
    times.sort()
    f = 2.0 * n ** 3
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "tflops_best": f / times[0] / 1e12,
            "tflops_median": f / times[len(times) // 2] / 1e12, "reps": reps}


def build(c, dev, seed):
    torch.manual_seed(seed)
    kw = {k: v for k, v in c.items() if k not in ("batch", "k_blocks")}
    kw.update(mask_ratio=MASK_RATIO, mask_overlap_ratio=OVERLAP)
    model = dama_ref.DAMA(kw, loss_beta=2.0, last_k_blocks=c["k_blocks"], loss_alpha=1.0).to(dev)
    model.train()
    groups = dama_ref.param_groups_weight_decay(model, 0.05)
    opt = torch.optim.AdamW(groups, lr=1.5e-4 * c["batch"] / 256, betas=(0.9, 0.95))
    return model, opt


def grad_norm_(params):
    """The reference's per-step gradient norm (MAE util/misc.py get_grad_norm_, called by its loss scaler every step:
    no clipping, the norm is only computed): one norm per parameter, then the norm of those."""
    return torch.norm(torch.stack([torch.norm(q.grad.detach(), 2.0) for q in params if q.grad is not None]), 2.0)


def run_mode(mode, c, dev, steps, warmup, seed, deadline, grad_norm=True):
    """One mode: returns a dict with status 'ok' and the numbers, or status 'not run' and the reason."""
    if mode == "fp16" and dev.type != "cuda":
        return {"status": "not run", "reason": "fp16 autocast + GradScaler need a CUDA device"}
    if mode == "compile" and not hasattr(torch, "compile"):
        return {"status": "not run", "reason": "torch.compile needs PyTorch 2 (this is %s)" % torch.__version__}
    N = c["batch"]
    L = (c["img_size"] // c["patch_size"]) ** 2
    model, opt = build(c, dev, seed)
    g = torch.Generator(device=dev).manual_seed(seed)
    x = torch.rand(N, c["in_chans"], c["img_size"], c["img_size"], device=dev, generator=g)
    adtype = {"fp16": torch.float16, "fp32": None}.get(mode, torch.bfloat16)
    scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None

    def loss_of(x, noise):
        if adtype is None:
            return model(x, noise, adaptive_mode="per_sample")["loss"]
        with torch.autocast(device_type=dev.type, dtype=adtype):
            return model(x, noise, adaptive_mode="per_sample")["loss"]

    fn = torch.compile(loss_of) if mode == "compile" else loss_of

    params = [q for q in model.parameters() if q.requires_grad]
    scales = [] if scaler is not None and hasattr(scaler, "_get_scale_async") else None

    def note_scale():
        t = scaler._get_scale_async()
        if t is not None:
            scales.append(t.detach().clone())

    def step():
        noise = torch.rand(N, L, device=dev, generator=g)
        loss = fn(x, noise)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_norm:
                scaler.unscale_(opt)
                grad_norm_(params)
            scaler.step(opt)
            scaler.update()
            if scales is not None:   # the scale as a device tensor: no host sync inside the timed steps
                note_scale()
        else:
            loss.backward()
            if grad_norm:
                grad_norm_(params)
            opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    t0 = time.perf_counter()
    for _ in range(warmup):
        first = step()
    sync(dev)
    warm_s = time.perf_counter() - t0
    first = float(first)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    if scales is not None:
        scales.clear()
        note_scale()
    ends, t_start = [], None
    done = 0
    wall0 = time.perf_counter()
    if dev.type == "cuda":
        t_start = torch.cuda.Event(enable_timing=True)
        t_start.record()
    marks = [time.perf_counter()]
    for i in range(steps):
        last = step()
        if dev.type == "cuda":
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            ends.append(e)
        else:
            marks.append(time.perf_counter())
        done += 1
        if time.perf_counter() > deadline:
            break
    sync(dev)
    wall = time.perf_counter() - wall0
    if dev.type == "cuda":
        cum = [t_start.elapsed_time(e) / 1e3 for e in ends]
        total = cum[-1]
        per = [cum[0]] + [b - a for a, b in zip(cum, cum[1:])]
        peak = torch.cuda.max_memory_allocated(dev)
    else:
        total = marks[-1] - marks[0]
        per = [b - a for a, b in zip(marks, marks[1:])]
        peak = None
    per.sort()
    res = {"status": "ok", "steps": done, "warmup": warmup, "warmup_s": warm_s, "total_s": total, "wall_s": wall,
           "samples_per_s": N * done / total, "step_ms_median": 1e3 * per[len(per) // 2],
           "step_ms_min": 1e3 * per[0], "peak_mem_bytes": peak, "loss_first": first, "loss_last": float(last),
           "autocast": str(adtype).replace("torch.", "") if adtype else "off", "grad_scaler": scaler is not None, "grad_norm": grad_norm}
    if scales and len(scales) > 1:   # steps whose fp16 gradients overflowed (the step skipped, the scale halved)
        sv = torch.stack(scales).float().cpu()
        res["scaler_skipped_steps"] = int((sv[1:] < sv[:-1]).sum())
        res["scaler_scale_last"] = float(sv[-1])
    if not math.isfinite(res["loss_last"]):
        res["note"] = "non-finite loss (fp16 overflow skipped by the scaler, or a real problem)"
    if mode == "compile":
        torch._dynamo.reset()   # drop the compiled graphs (and the model they hold)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="vitb", choices=sorted(CONFIGS))
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--modes", default="fp16,bf16,fp32,compile")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--gemm-n", type=int, default=None, help="GEMM peak size (default 8192 on a GPU, 1024 on a CPU)")
    ap.add_argument("--time-cap", type=float, default=240.0, help="seconds for the whole script; modes that would "
                    "start after (cap - compile reserve) are not run")
    ap.add_argument("--compile-reserve", type=float, default=90.0,
                    help="seconds torch.compile needs at least (it is not started with less left)")
    ap.add_argument("--grad-norm", type=int, default=1, help="1: compute the gradient norm every step as the "
                    "reference's loss scaler does (default); 0: leave it out")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads when the device is the CPU (default 1: "
                    "on a CPU this script is a rehearsal, not a benchmark)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t_begin = time.perf_counter()
    deadline = t_begin + a.time_cap
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    c = dict(CONFIGS[a.config])
    if a.batch:
        c["batch"] = a.batch
    out = {"config_name": a.config, "config": c, "mask_ratio": MASK_RATIO, "overlap": OVERLAP,
           "adaptive_mode": "per_sample", "device": str(dev), "torch": torch.__version__,
           "python": platform.python_version(), "flops_per_step": step_flops(c), "modes": {}}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        out.update(gpu=p.name, gpu_mem_bytes=p.total_memory, sm_count=p.multi_processor_count,
                   capability="%d.%d" % (p.major, p.minor), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    else:
        torch.set_num_threads(a.threads)
        out.update(cpu_threads=torch.get_num_threads())
    print("torch_dama_bench: torch %s on %s%s; config %s %s; %.4g GFLOP per step" % (
        torch.__version__, dev, " (%s)" % out.get("gpu", "") if "gpu" in out else "", a.config, c,
        out["flops_per_step"] / 1e9), flush=True)

    n = a.gemm_n or (8192 if dev.type == "cuda" else 1024)
    for dt in (torch.bfloat16, torch.float16):
        key = "gemm_" + str(dt).replace("torch.", "")
        try:
            out[key] = gemm_rate(dev, dt, n)
            print("result impl=torch mode=%s n=%d tflops_best=%.4g tflops_median=%.4g" % (
                key, n, out[key]["tflops_best"], out[key]["tflops_median"]), flush=True)
        except Exception as e:  # e.g. fp16 matmul on an old CPU build
            out[key] = {"status": "not run", "reason": "%s: %s" % (type(e).__name__, e)}
            print("result impl=torch mode=%s status=not_run reason=%s" % (key, out[key]["reason"]), flush=True)
    peak = out.get("gemm_bfloat16", {}).get("tflops_best")
    out["peak_bf16_tflops"] = peak

    def save():   # after every mode, so a run stopped from outside (e.g. in a long compile) keeps what it measured
        if a.json:
            with open(a.json + ".tmp", "w") as f:
                json.dump(out, f, indent=1, sort_keys=True)
            os.replace(a.json + ".tmp", a.json)
    save()
    if dev.type == "cuda":
        torch.cuda.empty_cache()

    for mode in [m for m in a.modes.split(",") if m]:
        left = deadline - time.perf_counter()
        need = a.compile_reserve if mode == "compile" else 10.0
        if left < need:
            r = {"status": "not run", "reason": "time cap: %.0f s left of --time-cap %.0f, %s needs about %.0f" % (
                left, a.time_cap, mode, need)}
        else:
            out["modes"][mode] = {"status": "not run", "reason": "stopped from outside while it ran (the time limit "
                                  "of the caller?)"}
            save()
            try:
                r = run_mode(mode, c, dev, a.steps, max(1, a.warmup), a.seed, deadline, bool(a.grad_norm))
            except Exception as e:
                import traceback
                traceback.print_exc()
                msg = str(e).strip().splitlines()
                r = {"status": "not run", "reason": "%s: %s" % (type(e).__name__, msg[0] if msg else "")}
        if r.get("status") == "ok" and peak:
            r["tflops"] = out["flops_per_step"] * r["steps"] / r["total_s"] / 1e12
            r["mfu"] = r["tflops"] / peak
        out["modes"][mode] = r
        if r["status"] == "ok":
            print("result impl=torch mode=%s samples_per_s=%.1f step_ms=%.2f tflops=%s mfu=%s peak_mem_gib=%s "
                  "steps=%d loss=%.4f->%.4f" % (
                      mode, r["samples_per_s"], r["step_ms_median"], "%.4g" % r["tflops"] if "tflops" in r else "n/a",
                      "%.3f" % r["mfu"] if "mfu" in r else "n/a",
                      "%.2f" % (r["peak_mem_bytes"] / 2 ** 30) if r["peak_mem_bytes"] else "n/a",
                      r["steps"], r["loss_first"], r["loss_last"]), flush=True)
        else:
            print("result impl=torch mode=%s status=not_run reason=%s" % (mode, r["reason"]), flush=True)
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        save()
    out["elapsed_s"] = time.perf_counter() - t_begin
    save()
    print("torch_dama_bench: done in %.1f s" % out["elapsed_s"], flush=True)


if __name__ == "__main__":
    main()
