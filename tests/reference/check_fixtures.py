#!/usr/bin/env python3
"""Re-derive parts of the fixtures with plain numpy from the spec (no torch needed): a second, independent
reading of the formulas a C implementation must follow. usage: python3 tests/reference/check_fixtures.py"""
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io as st  # noqa: E402

FIX = os.path.join(HERE, 'fixtures')
bad = []
count = [0]


def ok(name, cond, info=''):
    print('%-58s %s %s' % (name, 'ok ' if cond else 'BAD', info))
    count[0] += 1
    if not cond:
        bad.append(name)


def load(f):
    t, m = st.load(os.path.join(FIX, f))
    return t, json.loads(m['meta'])


def sincos(dim, g):
    def one(d, pos):
        w = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        o = np.outer(pos, w)
        return np.concatenate([np.sin(o), np.cos(o)], 1)
    r, c = np.divmod(np.arange(g * g), g)          # token t = r*g + c
    return np.concatenate([np.zeros((1, dim)), np.concatenate([one(dim // 2, c), one(dim // 2, r)], 1)], 0)


def patchify(x, p):
    N, C, H, W = x.shape
    h, w = H // p, W // p
    return x.reshape(N, C, h, p, w, p).transpose(0, 2, 4, 3, 5, 1).reshape(N, h * w, p * p * C)


def normpix(x, pred, mask, p):
    t = patchify(x.astype(np.float64), p)
    t = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, ddof=1, keepdims=True) + 1e-6)
    lpp = ((pred - t) ** 2).mean(-1)
    return (lpp * mask).sum() / mask.sum(), lpp


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


# --- MAE fixture
t, m = load('vit_mae_fwd_bwd.safetensors')
c = m['config']
g, p, K = c['img_size'] // c['patch_size'], c['patch_size'], m['K']
ok('mae: pos_embed == spec sin-cos (f32)', rel(t['pos_embed'][0], sincos(c['embed_dim'], g)) < 1e-6)
ok('mae: decoder_pos_embed == spec sin-cos', rel(t['decoder_pos_embed'][0], sincos(c['decoder_embed_dim'], g)) < 1e-6)
ids = np.argsort(t['noise'], 1, kind='stable')
ok('mae: ids_shuffle == stable argsort(noise)', np.array_equal(ids, t['ids_shuffle']))
ok('mae: ids_restore == argsort(ids_shuffle)', np.array_equal(np.argsort(ids, 1), t['ids_restore']))
mask = np.ones_like(t['noise'])
np.put_along_axis(mask, ids[:, :K], 0, 1)
ok('mae: mask (1 = removed, K visible)', np.array_equal(mask, t['mask']))
loss, lpp = normpix(t['x'], t['pred'].astype(np.float64), t['mask'], p)
ok('mae: norm-pix loss_per_patch', rel(t['loss_per_patch'], lpp) < 1e-5, rel(t['loss_per_patch'], lpp))
ok('mae: loss', rel(t['loss'], loss) < 1e-5, rel(t['loss'], loss))
outputs = {'x', 'noise', 'latent', 'mask', 'ids_shuffle', 'ids_restore', 'pred', 'loss_per_patch', 'loss', 'target'}
weights = [k for k in t if k not in outputs and not k.startswith(('grad.', 'feat.'))]
ok('mae: grad.<name> for every weight except the frozen pos embeds',
   all(('grad.' + k in t) != k.endswith('pos_embed') for k in weights), '(%d weights)' % len(weights))

# --- DAMA fixtures
for mode in ('union', 'per_sample'):
    t, m = load('dama_step_%s.safetensors' % mode)
    K, R, O = m['K'], m['R'], m['O']
    m1, l1 = t['m1'], t['loss_per_patch1']
    N, L = m1.shape
    s = l1 * m1
    T = np.argsort(s, 1, kind='stable')[:, -(R + O):]
    m2 = 1 - m1
    np.put_along_axis(m2, T, 1, 1)
    V = np.argsort(m1, 1, kind='stable')[:, :O]
    if mode == 'union':
        m2[:, np.unique(V)] = 0
    else:
        np.put_along_axis(m2, V, 0, 1)
    ok('%s: m2 re-derived from m1, loss_per_patch1' % mode, np.array_equal(m2, t['m2']))
    ok('%s: ids_shuffle2 == stable argsort(m2)' % mode,
       np.array_equal(np.argsort(m2, 1, kind='stable'), t['ids_shuffle2']))
    if mode == 'per_sample':
        ok('per_sample: exactly L-K ones per row', (t['m2'].sum(1) == L - K).all())
    r1, _ = normpix(t['x'], t['pred1'].astype(np.float64), m1, m['config']['patch_size'])
    r2, _ = normpix(t['x'], t['pred2'].astype(np.float64), t['m2'], m['config']['patch_size'])
    ok('%s: recon1, recon2' % mode, rel(t['loss_recon1'], r1) < 1e-5 and rel(t['loss_recon2'], r2) < 1e-5)
    kb = m['dama']['last_k_blocks']
    depth = m['config']['depth']
    y = 0
    for b in range(depth - kb, depth):
        f = t['feat2.%d' % b].astype(np.float64)
        y = y + (f - f.mean(-1, keepdims=True)) / np.sqrt(f.var(-1, keepdims=True) + 1e-5)
    y = y / kb
    y = np.exp(y - y.max(-1, keepdims=True))
    y /= y.sum(-1, keepdims=True)
    ok('%s: feature target' % mode, rel(t['target'], y) < 1e-5, rel(t['target'], y))
    d = np.abs(t['student'].astype(np.float64) - y)
    beta = m['dama']['loss_beta']
    info = np.where(d < beta, 0.5 * d * d / beta, d - beta / 2).sum() * m['dama']['loss_alpha']
    ok('%s: info loss' % mode, rel(t['loss_info'], info) < 1e-5, rel(t['loss_info'], info))
    ok('%s: total = info + recon2 + recon1' % mode,
       rel(t['loss_total'], t['loss_info'] + t['loss_recon2'] + t['loss_recon1']) < 1e-6)

# --- AdamW replay in float64
t, m = load('adamw_10.safetensors')
c = m['config']
names = [k[5:] for k in t if k.startswith('init.')]
w = {n: t['init.' + n].astype(np.float64) for n in names}
mom = {n: 0 * w[n] for n in names}
vel = {n: 0 * w[n] for n in names}


def fwd_bwd(w, x, y):
    h = x @ w['lin.weight'].T + w['lin.bias']
    mu = h.mean(-1, keepdims=True)
    var = h.var(-1, keepdims=True)
    xh = (h - mu) / np.sqrt(var + 1e-5)
    out = xh * w['ln.weight'] + w['ln.bias'] + w['tok'][0, 0]
    loss = ((out - y) ** 2).mean()
    go = 2 * (out - y) / out.size
    gr = {'tok': go.sum(0).reshape(1, 1, -1), 'ln.bias': go.sum(0), 'ln.weight': (go * xh).sum(0)}
    gx = go * w['ln.weight']
    gh = (gx - gx.mean(-1, keepdims=True) - xh * (gx * xh).mean(-1, keepdims=True)) / np.sqrt(var + 1e-5)
    gr['lin.weight'] = gh.T @ x
    gr['lin.bias'] = gh.sum(0)
    return loss, gr


b1, b2 = c['betas']
lrs = []
for step in range(c['steps']):
    e, i = divmod(step, c['iters_per_epoch'])
    te = e + i / c['iters_per_epoch']
    lr = c['lr'] * te / c['warmup_epochs'] if te < c['warmup_epochs'] else \
        c['min_lr'] + (c['lr'] - c['min_lr']) * 0.5 * (1 + math.cos(math.pi * (te - c['warmup_epochs']) /
                                                                   (c['epochs'] - c['warmup_epochs'])))
    lrs.append(lr)
    loss, gr = fwd_bwd(w, t['x'][step].astype(np.float64), t['y'][step].astype(np.float64))
    ok('adamw: step %d loss' % step, rel(t['losses'][step], loss) < 1e-5)
    for n in names:
        wd = c['weight_decay'] if n in m['decayed'] else 0.0
        w[n] *= 1 - lr * wd
        mom[n] = b1 * mom[n] + (1 - b1) * gr[n]
        vel[n] = b2 * vel[n] + (1 - b2) * gr[n] ** 2
        k = step + 1
        w[n] -= lr / (1 - b1 ** k) * mom[n] / (np.sqrt(vel[n]) / math.sqrt(1 - b2 ** k) + c['eps'])
ok('adamw: lrs', np.array_equal(np.array(lrs), t['lrs']))
for n in names:
    ok('adamw: final %s' % n, rel(t['final.' + n], w[n]) < 1e-5, rel(t['final.' + n], w[n]))

print('%d passed, %d failed' % (count[0] - len(bad), len(bad)))
sys.exit(1 if bad else 0)
