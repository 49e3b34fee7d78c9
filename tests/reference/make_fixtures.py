#!/usr/bin/python3
"""Generate the PyTorch reference fixtures in tests/reference/fixtures/ (see README.md for every key).

Run with Debian's python (apt python3-torch): /usr/bin/python3 tests/reference/make_fixtures.py [outdir]
Deterministic: fixed seeds, single thread, FP32 (no AMP).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dama_ref as R  # noqa: E402
import safetensors_io as st  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

SMALL = dict(img_size=32, patch_size=8, in_chans=7, embed_dim=64, depth=3, num_heads=4,
             decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4, mlp_ratio=4.0,
             mask_ratio=0.75, mask_overlap_ratio=0.5)
BATCH = 3


def versions():
    v = {'torch': torch.__version__, 'numpy': np.__version__}
    try:
        import timm
        v['timm'] = timm.__version__
    except ImportError:
        pass
    return v


def perturb_(model, gen):
    """Reference init, then a small deterministic perturbation of every trainable parameter, so that biases,
    LayerNorm affines and tokens are non-trivial (a swapped or ignored bias/gain would otherwise go unseen)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            p.add_(0.02 * torch.randn(p.shape, generator=gen))


def save(name, tensors, meta):
    path = os.path.join(OUT, name)
    st.save(path, {k: (v.detach().float() if torch.is_tensor(v) and v.is_floating_point() and
                       v.dtype != torch.float64 else v) for k, v in tensors.items()},
            metadata={'meta': json.dumps(meta, sort_keys=True)})
    print('%-34s %4d tensors %8.1f KB' % (name, len(tensors), os.path.getsize(path) / 1024))


def grads_of(model, prefix='grad.'):
    return {prefix + n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def max_rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-30))


# ----------------------------------------------------------------------------------------------------------
def fixture_mae():
    torch.manual_seed(1)
    model = R.MAE(**SMALL)
    perturb_(model, torch.Generator().manual_seed(101))
    gen = torch.Generator().manual_seed(102)
    L = model.patch_embed.num_patches
    x = torch.rand(BATCH, SMALL['in_chans'], SMALL['img_size'], SMALL['img_size'], generator=gen)
    noise = torch.rand(BATCH, L, generator=gen)

    def run(m, xx, nn_):
        m.zero_grad(set_to_none=True)
        out = m(xx, noise=nn_)
        loss, lpp = R.recon_loss(xx, out['pred'], out['mask'], m.patch_size)
        loss.backward()
        return out, loss, lpp

    out, loss, lpp = run(model, x, noise)
    t = dict(model.state_dict())
    t.update(x=x, noise=noise, latent=out['latent'], mask=out['mask'], ids_shuffle=out['ids_shuffle'],
             ids_restore=out['ids_restore'], pred=out['pred'], loss_per_patch=lpp, loss=loss,
             target=R.patchify(x, model.patch_size))
    mean = t['target'].mean(-1, keepdim=True)
    t['target'] = (t['target'] - mean) / (t['target'].var(-1, keepdim=True) + 1e-6) ** .5
    for b, f in enumerate(out['feats']):
        t['feat.%d' % b] = f
    t.update(grads_of(model))

    # float64 rerun of the same step: how far FP32 is from exact (tolerance guidance)
    m64 = R.MAE(**SMALL).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    out64, loss64, _ = run(m64, x.double(), noise.double())
    g32, g64 = grads_of(model), grads_of(m64)
    acc = {'loss_rel': max_rel(loss, loss64), 'pred_rel': max_rel(out['pred'], out64['pred']),
           'grad_rel_max': max(max_rel(g32[k], g64[k]) for k in g32)}
    meta = dict(fixture='vit_mae_fwd_bwd', config=SMALL, batch=BATCH, L=L,
                K=R.num_keep(L, SMALL['mask_ratio']), seeds=dict(torch=1, perturb=101, data=102),
                weights='reference init (spec 1.4) + 0.02*randn on every trainable parameter',
                noise_use='random_masking: ids_shuffle = stable argsort(noise) ascending, first K kept',
                fp32_vs_fp64=acc, versions=versions())
    save('vit_mae_fwd_bwd.safetensors', t, meta)
    return acc


# ----------------------------------------------------------------------------------------------------------
class TinyNet(nn.Module):
    """y = LN(lin(x)) + tok[0, 0]: a 2-D weight (decayed), a bias and 1-D LN params (not decayed), a 3-D
    token-like parameter (decayed, like cls_token/mask_token)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 8)
        self.ln = nn.LayerNorm(8)
        self.tok = nn.Parameter(torch.zeros(1, 1, 8))

    def forward(self, x):
        return self.ln(self.lin(x)) + self.tok[0, 0]


def fixture_adamw():
    cfg = dict(steps=10, epochs=2, iters_per_epoch=5, warmup_epochs=1, blr=0.64, batch=4, min_lr=0.0,
               betas=[0.9, 0.95], eps=1e-8, weight_decay=0.05, loss='mse_mean')
    cfg['lr'] = cfg['blr'] * cfg['batch'] / 256  # = 0.01
    torch.manual_seed(2)
    model = TinyNet()
    perturb_(model, torch.Generator().manual_seed(201))
    gen = torch.Generator().manual_seed(202)
    xs = torch.randn(cfg['steps'], cfg['batch'], 16, generator=gen)
    ys = torch.randn(cfg['steps'], cfg['batch'], 8, generator=gen)
    t = {'init.' + k: v.clone() for k, v in model.state_dict().items()}
    groups = R.param_groups_weight_decay(model, cfg['weight_decay'])
    opt = torch.optim.AdamW(groups, lr=cfg['lr'], betas=tuple(cfg['betas']), eps=cfg['eps'], foreach=False)
    losses, lrs = [], []
    step = 0
    for epoch in range(cfg['epochs']):
        for it in range(cfg['iters_per_epoch']):
            lr = R.lr_at(epoch + it / cfg['iters_per_epoch'], cfg['lr'], cfg['min_lr'], cfg['warmup_epochs'],
                         cfg['epochs'])
            for g in opt.param_groups:
                g['lr'] = lr
            loss = F.mse_loss(model(xs[step]), ys[step])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            lrs.append(lr)
            for k, v in model.state_dict().items():
                t['after.%d.%s' % (step, k)] = v.clone()
            step += 1
    t.update({'final.' + k: v.clone() for k, v in model.state_dict().items()})
    for n, p in model.named_parameters():
        s = opt.state[p]
        t['exp_avg.' + n] = s['exp_avg'].clone()
        t['exp_avg_sq.' + n] = s['exp_avg_sq'].clone()
    t.update(x=xs, y=ys, losses=torch.tensor(losses, dtype=torch.float32),
             lrs=torch.tensor(lrs, dtype=torch.float64))
    decayed = [n for n, p in model.named_parameters() if not (p.ndim <= 1 or n.endswith('.bias'))]
    meta = dict(fixture='adamw_10', config=cfg, decayed=decayed, seeds=dict(torch=2, perturb=201, data=202),
                order='per step t (epoch e, iter i): lr = lr_at(e + i/iters); forward; loss; backward; AdamW step',
                adamw='torch 1.13 single-tensor: p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; '
                      'p -= (lr/(1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps)',
                versions=versions())
    save('adamw_10.safetensors', t, meta)
    return losses, lrs


# ----------------------------------------------------------------------------------------------------------
DAMA_CFG = dict(loss_beta=2.0, last_k_blocks=2, loss_alpha=1.0)


# The paper's token count: L = 64 patches (img 64, patch 8), mask ratio 0.8 -> K = 12, O = 6, R = 40; small widths.
L64 = dict(img_size=64, patch_size=8, in_chans=3, embed_dim=32, depth=2, num_heads=2,
           decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4.0,
           mask_ratio=0.8, mask_overlap_ratio=0.5)


def fixture_dama(mode, cfg=SMALL, dama_cfg=DAMA_CFG, name=None):
    SMALL, DAMA_CFG = cfg, dama_cfg  # noqa: N806 (the body below reads these names)
    name = name or 'dama_step_' + mode
    torch.manual_seed(3)
    model = R.DAMA(SMALL, **DAMA_CFG)
    perturb_(model, torch.Generator().manual_seed(301))
    gen = torch.Generator().manual_seed(302)
    L = model.base_encoder.patch_embed.num_patches
    x = torch.rand(BATCH, SMALL['in_chans'], SMALL['img_size'], SMALL['img_size'], generator=gen)
    noise1 = torch.rand(BATCH, L, generator=gen)

    def run(m, xx, nz):
        m.zero_grad(set_to_none=True)
        o = m(xx, nz, adaptive_mode=mode)
        o['loss'].backward()
        return o

    o = run(model, x, noise1)
    b1, b2 = o['b1'], o['b2']
    K = R.num_keep(L, SMALL['mask_ratio'])
    t = dict(model.state_dict())
    t.update(x=x, noise1=noise1, loss_info=o['info'], loss_recon1=o['recon1'], loss_recon2=o['recon2'],
             loss_total=o['loss'], m1=b1['mask'], ids_shuffle1=b1['ids_shuffle'], ids_restore1=b1['ids_restore'],
             loss_per_patch1=o['lpp1'], m2=b2['mask'], ids_shuffle2=b2['ids_shuffle'],
             ids_restore2=b2['ids_restore'], loss_per_patch2=o['lpp2'], pred1=b1['pred'], pred2=b2['pred'],
             latent1=b1['latent'], latent2=b2['latent'], student=o['student'], target=o['target'])
    for b in range(len(b1['feats'])):
        t['feat1.%d' % b] = b1['feats'][b]
        t['feat2.%d' % b] = b2['feats'][b]
    t.update(grads_of(model))

    zeros = (b2['mask'] == 0).sum(1).tolist()
    if mode == 'per_sample':
        assert zeros == [K] * BATCH, zeros
        kept = torch.zeros_like(b2['mask']).scatter_(1, b2['ids_shuffle'][:, :K], 1.0)
        assert torch.equal(kept, 1 - b2['mask'])  # m2 consistent with ids_keep2
    m64 = R.DAMA(SMALL, **DAMA_CFG).double()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    o64 = run(m64, x.double(), noise1.double())
    same_masks = bool(torch.equal(o64['b2']['mask'].float(), b2['mask']))
    g32, g64 = grads_of(model), grads_of(m64)
    acc = {k: max_rel(o[k], o64[k]) for k in ('loss', 'info', 'recon1', 'recon2')}
    acc['grad_rel_max'] = max(max_rel(g32[k], g64[k]) for k in g32) if same_masks else None
    acc['same_masks_in_fp64'] = same_masks
    O = int(K * SMALL['mask_overlap_ratio'])
    meta = dict(fixture=name, config=SMALL, dama=DAMA_CFG, batch=BATCH, L=L, K=K,
                R=int(L - 2 * K), O=O, adaptive_mode=mode, m2_zeros_per_sample=zeros,
                seeds=dict(torch=3, perturb=301, data=302),
                weights='two MAEs from separate constructor calls (reference init, spec 1.4) + projs_head with '
                        'PyTorch defaults; then 0.02*randn on every trainable parameter',
                sorting='all argsorts stable ascending (ties -> lower patch index first)',
                total='loss_total = loss_info + loss_recon2 + loss_recon1',
                fp32_vs_fp64=acc, versions=versions())
    save(name + '.safetensors', t, meta)
    return {k: float(o[k]) for k in ('loss', 'info', 'recon1', 'recon2')}, zeros, acc


# ----------------------------------------------------------------------------------------------------------
def fixture_timm(pool):
    from timm.models.vision_transformer import VisionTransformer
    cfg = dict(img_size=32, patch_size=8, in_chans=7, num_classes=5, embed_dim=64, depth=2, num_heads=4,
               mlp_ratio=4.0, qkv_bias=True, class_token=True, global_pool=pool)
    torch.manual_seed(4)
    model = VisionTransformer(**cfg).eval()
    perturb_(model, torch.Generator().manual_seed(401))
    gen = torch.Generator().manual_seed(402)
    x = torch.rand(BATCH, 7, 32, 32, generator=gen)
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        logits = model.forward_head(feats)
    t = dict(model.state_dict())
    assert not any(k in t for k in ('x', 'features', 'pre_logits', 'logits'))
    t.update(x=x, features=feats, pre_logits=pre, logits=logits)
    meta = dict(fixture='timm_vit' + ('' if pool == 'token' else '_avg'), timm_kwargs=cfg,
                norm_eps=1e-6, seeds=dict(torch=4, perturb=401, data=402),
                semantics=('token: features = norm(blocks(cat(cls, patch_embed(x)) + pos_embed)); pre_logits = '
                           'features[:, 0]' if pool == 'token' else
                           'avg: norm is Identity, features = blocks(cat(cls, patch_embed(x)) + pos_embed); '
                           'pre_logits = fc_norm(features[:, 1:].mean(1))') + '; logits = head(pre_logits)',
                versions=versions())
    save('timm_vit%s.safetensors' % ('' if pool == 'token' else '_avg'), t, meta)


if __name__ == '__main__':
    OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'fixtures')
    os.makedirs(OUT, exist_ok=True)
    print('mae fp32 vs fp64:', fixture_mae())
    losses, lrs = fixture_adamw()
    print('adamw losses:', ['%.5f' % v for v in losses])
    print('adamw lrs:   ', ['%.6f' % v for v in lrs])
    for mode in ('union', 'per_sample'):
        print('dama', mode, *fixture_dama(mode))
    # loss_beta = 0: the reference's summed MSE feature loss (not SmoothL1 with beta 0, which is L1)
    print('dama beta0', *fixture_dama('per_sample', SMALL, dict(DAMA_CFG, loss_beta=0.0), 'dama_step_beta0'))
    # the paper's L = 64, union mode, stable sorts
    print('dama L64', *fixture_dama('union', L64, DAMA_CFG, 'dama_step_L64_union'))
    fixture_timm('token')
    fixture_timm('avg')
