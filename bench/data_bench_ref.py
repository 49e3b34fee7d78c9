#!/usr/bin/env python3
"""The reference's Python input pipeline (tifffile + OpenCV + NumPy), side by side with dama's C pipeline.

    python3 bench/data_bench_ref.py [--bench BUILD/data_bench] [--dir /tmp/dama_data_bench] [--n 2000] [--reps 3]

Needs numpy, opencv-python-headless and tifffile. If they are missing the script makes a virtual environment
under /tmp/dama_data_bench_venv, installs them from PyPI there and re-runs itself with it. They are never a
dependency of dama or its tests.

1. `data_bench gen` writes N synthetic 100x100x7 uint16 crops as TIFFs and one .npy (unless present).
2. `data_bench check` writes fixed-parameter train/val outputs of dama; this script recomputes them with cv2
   (the reference's calls, with the same crop, angle, shift and flips) and prints the largest difference.
3. Throughput on one core (process CPU time, both sides pinned to CPU 0) for 7x128x128 training samples:
   the reference's transform on tifffile.imread(file) and on rows of the in-memory array, then dama's, and the
   ratios.
"""
import argparse
import json
import os
import subprocess
import sys
import time

VENV = "/tmp/dama_data_bench_venv"

try:
    import cv2
    import numpy as np
    import tifffile
except ImportError:
    if os.environ.get("DAMA_BENCH_IN_VENV"):
        raise
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "numpy", "opencv-python-headless", "tifffile"])
    os.environ["DAMA_BENCH_IN_VENV"] = "1"
    os.execv(py, [py] + sys.argv)

import random

cv2.setNumThreads(1)


# ---- the reference's transforms (spec 5.3, 5.4, 6.4): OpenCV on uint16 H x W x C ----
def to_tensor(img):
    if img.dtype == np.uint16:
        x = img.astype(np.float32) / 65535
    elif img.dtype == np.uint8:
        x = img.astype(np.float32) / 255
    else:
        x = img.astype(np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def shift(img, dx, dy):
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    ys, yd = (0, dy) if dy >= 0 else (-dy, 0)
    xs, xd = (0, dx) if dx >= 0 else (-dx, 0)
    hh, ww = h - abs(dy), w - abs(dx)
    if hh > 0 and ww > 0:
        out[yd:yd + hh, xd:xd + ww] = img[ys:ys + hh, xs:xs + ww]
    return out


def train_fixed(img, top, left, cs, angle, dx, dy, hf, vf, size=128):
    img = img[top:top + cs, left:left + cs]
    img = cv2.resize(img, (size, size), interpolation=3)  # PIL's BICUBIC constant = cv2.INTER_AREA
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1)
    img = cv2.warpAffine(img, m, (w, h))  # bilinear, constant border 0
    img = shift(img, dx, dy)
    if hf:
        img = cv2.flip(img, 1)
    if vf:
        img = cv2.flip(img, 0)
    return to_tensor(img)


def train_random(img, size=128):
    h, w = img.shape[:2]
    cs = size // 2
    top, left = random.randint(0, h - cs), random.randint(0, w - cs)
    angle = random.uniform(-90, 90)
    s = int(0.3 * size)
    dx, dy = random.randint(-s, s), random.randint(-s, s)
    return train_fixed(img, top, left, cs, angle, dx, dy, random.random() < 0.5, random.random() < 0.5, size)


def val(img, crop=48, size=128):
    h, w = img.shape[:2]
    t, l = (h - crop) // 2, (w - crop) // 2
    img = cv2.resize(img[t:t + crop, l:l + crop], (size, size), interpolation=3)
    return to_tensor(img)


def run_bench(binary, args):
    out = subprocess.run(["taskset", "-c", "0", binary] + args, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/data_bench")
    ap.add_argument("--dir", default="/tmp/dama_data_bench")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.dir, "crops.npy")):
        subprocess.run([a.bench, "gen", a.dir, str(a.n)], check=True)

    # ---- correctness: dama's fixed-parameter transforms against cv2 ----
    subprocess.run([a.bench, "check", a.dir], check=True, capture_output=True)
    x = np.load(os.path.join(a.dir, "check_in.npy"))
    tr = np.load(os.path.join(a.dir, "check_train.npy"))
    va = np.load(os.path.join(a.dir, "check_val.npy"))
    worst_t = worst_v = 0.0
    nexact = 0
    for i, line in enumerate(open(os.path.join(a.dir, "check_params.txt"))):
        top, left, cs, angle, dx, dy, hf, vf = line.split()
        ref = train_fixed(x[i], int(top), int(left), int(cs), float(angle), int(dx), int(dy), int(hf), int(vf))
        d = float(np.abs(ref - tr[i]).max())
        worst_t = max(worst_t, d)
        nexact += d == 0.0
        worst_v = max(worst_v, float(np.abs(val(x[i]) - va[i]).max()))
    print(f"cv2 {cv2.__version__}: train transform max |dama - cv2| = {worst_t:.3g} over {len(tr)} samples "
          f"({nexact} bit-identical); val transform max diff = {worst_v:.3g}")

    # ---- throughput, one core ----
    os.sched_setaffinity(0, {0})
    tifs = sorted(os.listdir(os.path.join(a.dir, "tif")))
    paths = [os.path.join(a.dir, "tif", f) for f in tifs]
    arr = np.load(os.path.join(a.dir, "crops.npy"))
    random.seed(0)

    def timeit(fn, n):
        best = 1e30
        for _ in range(a.reps):
            t0 = time.process_time()
            for i in range(n):
                fn(i)
            best = min(best, time.process_time() - t0)
        return n / best

    ref_tif = timeit(lambda i: train_random(tifffile.imread(paths[i])), len(paths))
    ref_npy = timeit(lambda i: train_random(arr[i]), len(arr))
    ref_val = timeit(lambda i: val(arr[i]), len(arr))
    print(f"reference (Python, 1 core): from TIFF {ref_tif:.0f} samples/s, from in-memory array {ref_npy:.0f}, "
          f"val transform {ref_val:.0f}")
    res = {r["case"]: r["samples_per_s"] for r in run_bench(a.bench, ["bench", a.dir, str(a.reps)])}
    for k, v in res.items():
        print(f"  dama {k}: {v:.0f} samples/s")
    print(f"ratio dama/reference: TIFF {res['dama_tiff_train'] / ref_tif:.2f}x, "
          f"array {res['dama_npy_train'] / ref_npy:.2f}x, val {res['dama_npy_val'] / ref_val:.2f}x")


if __name__ == "__main__":
    main()
