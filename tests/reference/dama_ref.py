"""PyTorch port of the DAMA reference (hula-ai/DAMA @ 7dfad70, built on facebookresearch/mae).

Written from shared/spec/dama-reference.md sections 1-5 and a reading of the reference code; it is our own
port, kept deliberately close to the reference's arithmetic so that fixtures generated from it are what the
reference would compute (in FP32, without AMP). Differences that exist only to make results well defined:

* every argsort is a STABLE ascending sort (torch.sort(..., stable=True)); ties keep increasing patch index.
  The reference uses torch.argsort (not stable; on CUDA the tie order is implementation-defined).
* the masking noise is an explicit argument instead of torch.rand inside the model.

Parameter names match the reference's state_dict exactly (MAE names; DAMA wrapper: base_encoder.,
momentum_encoder., projs_head.).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------------------------
# Position embedding (spec 1.1): fixed 2-D sin-cos, first half = column, second half = row, cls slot zero.

def sincos_1d(dim, pos):
    """pos: (M,) float array -> (M, dim): [sin(pos*w_k)]_k<dim/2 then [cos(pos*w_k)], w_k = 10000^(-k/(dim/2))."""
    assert dim % 2 == 0
    omega = np.arange(dim // 2, dtype=np.float64)
    omega /= dim / 2.0
    omega = 1.0 / 10000 ** omega
    out = np.einsum('m,d->md', pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, grid_size, cls_token=True):
    """(1+g*g, dim) float64 table; token t = r*g + c (row-major); dims [0,dim/2) encode c, [dim/2,dim) encode r."""
    gh = np.arange(grid_size, dtype=np.float32)
    gw = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(gw, gh), axis=0).reshape(2, 1, grid_size, grid_size)  # grid[0] = column
    emb = np.concatenate([sincos_1d(dim // 2, grid[0]), sincos_1d(dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
    return emb


# ----------------------------------------------------------------------------------------------------------
# Transformer pieces (spec 1.1): pre-norm blocks, fused qkv with bias, exact-erf GELU.

class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """x = x + Attn(LN1(x)); f = MLP(LN2(x)); x = x + f. forward returns (x, f)."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, eps=1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        f = self.mlp(self.norm2(x))
        return x + f, f


class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, L, D), row-major grid order


# ----------------------------------------------------------------------------------------------------------
# Sorting helper: every argsort in this port is stable (ties: lower index first).

def argsort_stable(x, dim=-1):
    return torch.sort(x, dim=dim, stable=True)[1]


# ----------------------------------------------------------------------------------------------------------
# Masking (spec 2)

def num_keep(L, mask_ratio):
    return int(L * (1 - mask_ratio))  # Python int() truncation, exactly as the reference


def random_masking(x, mask_ratio, noise):
    """Spec 2.1. x (N,L,D), noise (N,L) ~ U[0,1). Returns x_kept (N,K,D), mask (N,L) float 1=removed,
    ids_shuffle (N,L), ids_restore (N,L)."""
    N, L, D = x.shape
    K = num_keep(L, mask_ratio)
    ids_shuffle = argsort_stable(noise, dim=1)
    ids_restore = argsort_stable(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :K]
    x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, D))
    mask = torch.ones([N, L], dtype=x.dtype)
    mask[:, :K] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return x_masked, mask, ids_shuffle, ids_restore


def adaptive_masking(x, m1, loss1, mask_ratio, overlap_ratio, mode='per_sample'):
    """Spec 2.2. x: branch-2 patch embeddings + pos (N,L,D); m1: branch-1 mask (N,L) 1=removed;
    loss1: branch-1 per-patch loss (N,L) (detached here).
    mode 'union': the reference's exact code, m2[:, V] = 0 (zeroes the union of V over the batch).
    mode 'per_sample': the intended rule, m2[n, V[n]] = 0.
    Returns x_kept (N,K,D), m2 (N,L) float (as modified; NOT rebuilt from ids_keep2), ids_shuffle2, ids_restore2."""
    N, L, D = x.shape
    K = num_keep(L, mask_ratio)
    R = int(L - K * 2)
    O = int(K * overlap_ratio)
    s = loss1.detach().clone() * m1.detach().clone()          # branch-1 visible patches score 0
    T = argsort_stable(s, dim=1)[:, -(R + O):]                # the R+O highest-score patches
    m2 = torch.where(m1 == 1, 0, 1).to(x.dtype)              # swap: hidden from branch 1 -> candidate to show
    m2[torch.arange(N)[:, None], T] = 1                       # hardest patches stay masked
    V = argsort_stable(m1.detach(), dim=1)[:, :O]             # first O branch-1-visible patches (lowest index)
    if mode == 'union':
        m2[:, V] = 0                                          # reference: union over the batch
    elif mode == 'per_sample':
        m2[torch.arange(N)[:, None], V] = 0
    else:
        raise ValueError('adaptive_masking: mode must be union or per_sample, got %r' % (mode,))
    ids_shuffle2 = argsort_stable(m2, dim=1)                  # zeros first, then ones, each by patch index
    ids_keep2 = ids_shuffle2[:, :K]
    x_masked = torch.gather(x, 1, ids_keep2.unsqueeze(-1).repeat(1, 1, D))
    ids_restore2 = argsort_stable(ids_shuffle2, dim=1)
    return x_masked, m2, ids_shuffle2, ids_restore2


# ----------------------------------------------------------------------------------------------------------
# The MAE (one branch): encoder (spec 1.1) + decoder (spec 1.2), inits (spec 1.4).

class MAE(nn.Module):
    def __init__(self, img_size=128, patch_size=16, in_chans=7, embed_dim=768, depth=12, num_heads=12,
                 decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.0,
                 mask_ratio=0.8, mask_overlap_ratio=0.5):
        super().__init__()
        self.mask_ratio = mask_ratio
        self.mask_overlap_ratio = mask_overlap_ratio
        self.embed_dim = embed_dim
        self.in_chans = in_chans
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        L = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, L + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, L + 1, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(decoder_embed_dim, decoder_num_heads, mlp_ratio)
                                             for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans, bias=True)
        self._init_weights()

    def _init_weights(self):
        g = self.patch_embed.grid_size[0]
        self.pos_embed.data.copy_(torch.from_numpy(sincos_2d(self.pos_embed.shape[-1], g)).float().unsqueeze(0))
        self.decoder_pos_embed.data.copy_(
            torch.from_numpy(sincos_2d(self.decoder_pos_embed.shape[-1], g)).float().unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))     # conv bias keeps PyTorch's default
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.bias, 0)
                nn.init.constant_(m.weight, 1.0)

    @property
    def patch_size(self):
        return self.patch_embed.patch_size[0]

    def forward_encoder(self, imgs, noise=None, m1=None, loss1=None, adaptive_mode=None):
        """Random masking with `noise` (branch 1), or adaptive masking from (m1, loss1) when adaptive_mode is
        'union' or 'per_sample' (branch 2). Returns latent (N,1+K,D), mask, feats [f_b], ids_shuffle, ids_restore."""
        x = self.patch_embed(imgs)
        x = x + self.pos_embed[:, 1:, :]
        if adaptive_mode is None:
            x, mask, ids_shuffle, ids_restore = random_masking(x, self.mask_ratio, noise)
        else:
            x, mask, ids_shuffle, ids_restore = adaptive_masking(x, m1, loss1, self.mask_ratio,
                                                                 self.mask_overlap_ratio, adaptive_mode)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1)
        feats = []
        for blk in self.blocks:
            x, f = blk(x)
            feats.append(f)
        x = self.norm(x)
        return x, mask, feats, ids_shuffle, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)                              # applied to all 1+K tokens, cls included
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x, _ = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]

    def forward(self, imgs, noise=None, m1=None, loss1=None, adaptive_mode=None):
        latent, mask, feats, ids_shuffle, ids_restore = self.forward_encoder(imgs, noise, m1, loss1, adaptive_mode)
        pred = self.forward_decoder(latent, ids_restore)
        return dict(pred=pred, latent=latent, mask=mask, feats=feats, ids_shuffle=ids_shuffle,
                    ids_restore=ids_restore)


# ----------------------------------------------------------------------------------------------------------
# Losses (spec 3)

def patchify(imgs, p):
    """(N,C,H,W) -> (N,L,p*p*C), element (i*p + j)*C + c inside a patch, patches row-major."""
    N, C, H, W = imgs.shape
    h, w = H // p, W // p
    x = imgs.reshape(N, C, h, p, w, p)
    x = torch.einsum('nchpwq->nhwpqc', x)
    return x.reshape(N, h * w, p * p * C)


def recon_loss(imgs, pred, mask, p):
    """Spec 3.1, norm-pix always on: per-patch mean and UNBIASED var, eps 1e-6 inside sqrt.
    Returns (loss, loss_per_patch (N,L))."""
    target = patchify(imgs, p)
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)                    # unbiased (divides by P-1)
    target = (target - mean) / (var + 1.e-6) ** .5
    loss_per_patch = ((pred - target) ** 2).mean(dim=-1)
    loss = (loss_per_patch * mask).sum() / mask.sum()
    return loss, loss_per_patch


def make_projs_head(embed_dim):
    """Spec 1.3; PyTorch default inits. Indices 0..6 give the state_dict names projs_head.{0,1,3,4}.*"""
    return nn.Sequential(
        nn.Linear(embed_dim, embed_dim * 2), nn.LayerNorm(embed_dim * 2), nn.ReLU(inplace=True),
        nn.Linear(embed_dim * 2, embed_dim), nn.LayerNorm(embed_dim), nn.ReLU(inplace=True),
        nn.Softmax(dim=-1))


def feature_target(feats, k_blocks):
    """Spec 3.2 target: softmax(mean_b layer_norm(f_b, no affine, eps 1e-5)) over the last k_blocks blocks."""
    ys = [F.layer_norm(f.float(), f.shape[-1:]) for f in feats[-k_blocks:]]
    return F.softmax(sum(ys) / len(ys), dim=-1)


def feature_loss(student, target, beta, alpha):
    """SmoothL1(beta) summed over features, then SUMMED over all tokens, times alpha (beta 0 -> summed MSE)."""
    if beta == 0:
        l = F.mse_loss(student.float(), target.float(), reduction='none').sum(dim=-1)
    else:
        l = F.smooth_l1_loss(student.float(), target.float(), reduction='none', beta=beta).sum(dim=-1)
    return l.sum() * alpha


# ----------------------------------------------------------------------------------------------------------
# The DAMA wrapper (spec 4, "student1 -> student2"): two independently initialised MAEs + head, no EMA,
# no stop-gradient on the feature target.

class DAMA(nn.Module):
    def __init__(self, mae_kwargs, loss_beta=2.0, last_k_blocks=6, loss_alpha=1.0):
        super().__init__()
        self.loss_beta = loss_beta
        self.last_k_blocks = last_k_blocks
        self.loss_alpha = loss_alpha
        self.base_encoder = MAE(**mae_kwargs)
        self.momentum_encoder = MAE(**mae_kwargs)
        self.projs_head = make_projs_head(self.base_encoder.embed_dim)

    def forward(self, imgs, noise1, adaptive_mode='per_sample'):
        p = self.base_encoder.patch_size
        b1 = self.base_encoder(imgs, noise=noise1)
        recon1, lpp1 = recon_loss(imgs, b1['pred'], b1['mask'], p)
        b2 = self.momentum_encoder(imgs, m1=b1['mask'], loss1=lpp1, adaptive_mode=adaptive_mode)
        recon2, lpp2 = recon_loss(imgs, b2['pred'], b2['mask'], p)
        student = self.projs_head(b1['latent'])
        target = feature_target(b2['feats'], self.last_k_blocks)
        info = feature_loss(student, target, self.loss_beta, self.loss_alpha)
        total = info + recon2 + recon1
        return dict(loss=total, info=info, recon1=recon1, recon2=recon2, lpp1=lpp1, lpp2=lpp2,
                    b1=b1, b2=b2, student=student, target=target)


# ----------------------------------------------------------------------------------------------------------
# Optimiser pieces (spec 5.2)

def param_groups_weight_decay(model, weight_decay):
    """timm add_weight_decay: no decay for 1-D params and names ending '.bias'; frozen params excluded."""
    decay, no_decay = [], []
    for name, prm in model.named_parameters():
        if not prm.requires_grad:
            continue
        if prm.ndim <= 1 or name.endswith('.bias'):
            no_decay.append(prm)
        else:
            decay.append(prm)
    return [{'params': no_decay, 'weight_decay': 0.0}, {'params': decay, 'weight_decay': weight_decay}]


def lr_at(epoch_f, lr, min_lr, warmup_epochs, epochs):
    """MAE util/lr_sched.adjust_learning_rate at fractional epoch epoch_f = epoch + it/iters_per_epoch."""
    if epoch_f < warmup_epochs:
        return lr * epoch_f / warmup_epochs
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (epoch_f - warmup_epochs) /
                                                           (epochs - warmup_epochs)))
