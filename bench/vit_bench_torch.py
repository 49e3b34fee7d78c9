#!/usr/bin/python3
"""PyTorch (CPU) twin of bench/vit_bench.lua: the same two workloads, the same FLOP formula.

    /usr/bin/python3 bench/vit_bench_torch.py model=mae|vitb|tiny [threads=2] [steps=3] [warmup=1]

A benchmark only (Debian's python3-torch); PyTorch is never a dependency of the project. The model is a plain
timm-style pre-norm ViT (fused qkv Linear, exact GELU, LayerNorm eps 1e-6) and an MAE after
facebookresearch/mae models_mae.py (random masking by argsort of noise, decoder with mask tokens, norm-pix
loss on the removed patches), written here from the papers' descriptions.
Prints "step <seconds>" per timed step and one "result key=value ..." line.
"""
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse(argv):
    opt = {"model": "mae", "threads": 2, "steps": 3, "warmup": 1, "seed": 0}
    for a in argv:
        k, _, v = a.partition("=")
        opt[k] = int(v) if v.lstrip("-").isdigit() else v
    return opt


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Encoder(nn.Module):
    def __init__(self, img, patch, chans, dim, depth, heads):
        super().__init__()
        self.L = (img // patch) ** 2
        self.proj = nn.Conv2d(chans, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim).normal_(std=0.02))
        self.register_buffer("pos_embed", torch.randn(1, 1 + self.L, dim) * 0.02)  # fixed, as sin-cos
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x, ids_keep=None):
        t = self.proj(x).flatten(2).transpose(1, 2) + self.pos_embed[:, 1:]
        if ids_keep is not None:
            t = torch.gather(t, 1, ids_keep.unsqueeze(-1).expand(-1, -1, t.shape[2]))
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(t.shape[0], -1, -1)
        x = torch.cat([cls, t], 1)
        for b in self.blocks:
            x = b(x)
        return self.norm(x)


class MAE(nn.Module):
    def __init__(self, img, patch, chans, dim, depth, heads, dec_dim, dec_depth, dec_heads):
        super().__init__()
        self.p, self.c = patch, chans
        self.encoder = Encoder(img, patch, chans, dim, depth, heads)
        L = self.encoder.L
        self.decoder_embed = nn.Linear(dim, dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim).normal_(std=0.02))
        self.register_buffer("decoder_pos_embed", torch.randn(1, 1 + L, dec_dim) * 0.02)
        self.decoder_blocks = nn.ModuleList([Block(dec_dim, dec_heads) for _ in range(dec_depth)])
        self.decoder_norm = nn.LayerNorm(dec_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(dec_dim, patch * patch * chans)

    def patchify(self, imgs):
        N, C, H, W = imgs.shape
        p, h, w = self.p, H // self.p, W // self.p
        x = imgs.reshape(N, C, h, p, w, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(N, h * w, p * p * C)

    def forward(self, imgs, mask_ratio):
        N, L = imgs.shape[0], self.encoder.L
        keep = int(L * (1 - mask_ratio))
        ids_shuffle = torch.argsort(torch.rand(N, L), dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        mask = torch.ones(N, L)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        latent = self.encoder(imgs, ids_keep)
        x = self.decoder_embed(latent)
        toks = torch.cat([x[:, 1:], self.mask_token.repeat(N, L + 1 - x.shape[1], 1)], 1)
        toks = torch.gather(toks, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], toks], 1) + self.decoder_pos_embed
        for b in self.decoder_blocks:
            x = b(x)
        pred = self.decoder_pred(self.decoder_norm(x))[:, 1:]
        target = self.patchify(imgs)
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(-1)
        return (loss * mask).sum() / mask.sum()


def block_flops(B, T, D):
    return 2 * B * T * (D * 3 * D + D * D + 2 * D * 4 * D), 2 * 2 * B * T * T * D


def main():
    opt = parse(sys.argv[1:])
    torch.set_num_threads(opt["threads"])
    torch.manual_seed(opt["seed"])
    name = opt["model"]
    if name == "gemm":  # torch.nn.functional.linear without bias on the same shapes as vit_bench.lua model=gemm
        for M, N, K in ((8320, 3072, 768), (2080, 3072, 768), (2080, 768, 3072)):
            a, w = torch.randn(M, K), torch.randn(N, K)
            times, cpus = [], []
            for i in range(opt["steps"] + 1):
                t0, c0 = time.perf_counter(), time.process_time()
                F.linear(a, w)
                if i:
                    times.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0)
            times.sort()
            cpus.sort()
            f = 2 * M * N * K / 1e9
            print("result impl=torch model=gemm threads=%d shape=%dx%dx%d gflops=%.1f gflops_per_core=%.1f best_gflops=%.1f"
                  % (torch.get_num_threads(), M, N, K, f / times[(len(times) - 1) // 2], f / cpus[(len(cpus) - 1) // 2],
                     f / times[0]))
        return
    if name in ("mae", "tiny"):
        s = (dict(img=128, patch=16, chans=7, dim=384, depth=12, heads=6, dec_dim=512, dec_depth=8, dec_heads=16)
             if name == "mae" else
             dict(img=32, patch=8, chans=7, dim=96, depth=4, heads=3, dec_dim=64, dec_depth=2, dec_heads=2))
        B = 64
        model = MAE(**s)
        L = (s["img"] // s["patch"]) ** 2
        K, P = int(L * (1 - 0.8)), s["patch"] ** 2 * s["chans"]
        l, a = block_flops(B, K + 1, s["dim"])
        fwd = s["depth"] * (l + a)
        l, a = block_flops(B, L + 1, s["dec_dim"])
        fwd += s["dec_depth"] * (l + a) + 2 * B * (K + 1) * s["dim"] * s["dec_dim"] + 2 * B * (L + 1) * s["dec_dim"] * P
        flops = 3 * fwd + 2 * (2 * B * L * P * s["dim"])
        img, chans = s["img"], s["chans"]
    elif name == "vitb":
        B, img, chans, patch, dim, depth = 32, 128, 7, 16, 768, opt.get("depth", 12)
        model = Encoder(img, patch, chans, dim, depth, 12)
        L = (img // patch) ** 2
        l, a = block_flops(B, L + 1, dim)
        flops = 3 * depth * (l + a) + 2 * (2 * B * L * patch * patch * chans * dim)
    else:
        sys.exit("vit_bench_torch: model must be mae, vitb or tiny")
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                              lr=1.5e-4, betas=(0.9, 0.95))
    x = torch.randn(B, chans, img, img)

    def step():
        optim.zero_grad(set_to_none=True)
        if name == "vitb":
            latent = model(x)
            loss = (latent * latent).mean()
        else:
            loss = model(x, 0.8)
        v = loss.item()
        loss.backward()
        optim.step()
        return v

    for _ in range(opt["warmup"]):
        step()
    times, cpus = [], []
    for _ in range(opt["steps"]):
        t0, c0 = time.perf_counter(), time.process_time()
        v = step()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        print("step %.4f cpu %.4f loss %.5f" % (times[-1], cpus[-1], v), flush=True)

    def median(t):
        t = sorted(t)
        n = len(t)
        return t[n // 2] if n % 2 else 0.5 * (t[n // 2 - 1] + t[n // 2])
    med, cmed = median(times), median(cpus)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("result impl=torch model=%s threads=%d batch=%d sec_per_step=%.4f samples_per_s=%.3f gflop_per_step=%.2f "
          "cpu_per_step=%.4f gflops=%.1f gflops_per_core=%.1f max_rss_mb=%.1f torch=%s"
          % (name, torch.get_num_threads(), B, med, B / med, flops / 1e9, cmed, flops / 1e9 / med, flops / 1e9 / cmed,
             rss, torch.__version__))


if __name__ == "__main__":
    main()
