#!/usr/bin/env python3
"""ViT golden geometries G1…G6 (issue 15): the official Transformer-Explainability code run on random ViTs of
several shapes, each method's raw map in float32 and in float64 (the same generator call on `.double()` models).

    git --git-dir=<fetched hila-chefer/Transformer-Explainability> archive HEAD | tar -x -C /tmp/te
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/golden/make-vit-geometries.py --te /tmp/te \
        --out /work/golden-extra/vit [--only G1,G2]

The official code (commit c3e578f) is not part of this repository: the script copies `baselines/` and `modules/`
of the extracted checkout into a temporary folder and imports them from there, unedited. Stubs, as for S1:
`einops.rearrange` (a shim for the four patterns the model files use), and `.cuda()` (the generators call
`one_hot.cuda()` and `input.cuda()`; made the identity, this is a CPU run). `generate_visualizations.py` is not
imported (it needs h5py and a dataset); its per-image post-processing (the ×16 bilinear upsampling and the
min-max) is re-issued here with the same two torch calls, and each method's generator call is the script's.

Weights are not drawn from torch's RNG but from a counter-based hash, so that bench can rebuild them bit for bit
(test/helpers/formula-weights.ts) and large configs need no stored weights:
    mix32(x) = lowbias32 (x ^= x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16, all mod 2^32)
    h = mix32(i + mix32(t + mix32(seed)))        i: element index (C order), t: tensor index (state-dict order)
    u = (h - 2^31) / 2^31                        in [-1, 1), exact in float64
    w = float32(base + amp * u)                  base + amp*u in float64, one rounding to float32
with (base, amp) per tensor kind, uniform with S1's standard deviations (amp = std·√3); the Linear weights of the
blocks and the head scale with 1/√fan_in so that wide models stay in the regime of S1:
    cls_token std 0.5; pos_embed 0.2; patch_embed.proj.weight 0.1; LayerNorm weight 1 + (std 0.1);
    every bias (LayerNorm too) 0.05; other weights std 1.4/√fan_in (S1: 0.2 at fan_in 48, i.e. 1.386/√48).
config.json records the recipe and, per tensor, (base, amp), the first 8 values and the SHA-256 of its float32
bytes; weights.safetensors is written only for configs under 2 MB of weights.
Deterministic; torch 1 thread (and OPENBLAS_NUM_THREADS=1) as for S1.
"""

import argparse
import copy
import hashlib
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import time
import types
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)

REF_COMMIT = 'c3e578f76b954e8528afeaaee26de3f07e3fe559'

CONFIGS = [
    # name, depth, heads, D, qkv_bias, classes, weight seed, cases [(kind, seed)]
    dict(name='G1', depth=2, heads=1, dim=32, qkv_bias=False, classes=5, seed=101,
         cases=[('random', 1101), ('smooth', 1102)]),
    dict(name='G2', depth=4, heads=4, dim=64, qkv_bias=True, classes=7, seed=202,
         cases=[('smooth', 2201), ('random', 2202)]),
    dict(name='G3', depth=6, heads=2, dim=96, qkv_bias=True, classes=3, seed=303,
         cases=[('random', 3301), ('smooth', 3302)]),
    dict(name='G4', depth=3, heads=12, dim=768, qkv_bias=True, classes=1000, seed=404,
         cases=[('smooth', 4401), ('random', 4402)]),
    dict(name='G5', depth=8, heads=6, dim=192, qkv_bias=True, classes=1000, seed=505,
         cases=[('random', 5501), ('smooth', 5502)]),
    dict(name='G6', depth=3, heads=8, dim=256, qkv_bias=False, classes=11, seed=606,
         cases=[('smooth', 6601), ('random', 6602)]),
]

M32 = 0xFFFFFFFF
M32U = np.uint64(M32)


def mix32(x):
    """lowbias32 on uint64 arrays holding 32-bit values (products stay below 2^64)."""
    x = np.asarray(x, dtype=np.uint64) & M32U
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & M32U
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & M32U
    x ^= x >> np.uint64(16)
    return x


def hash_uniform(seed, t, n):
    """u in [-1, 1) for elements 0..n-1 of stream t (float64, exact)."""
    s = int(mix32(np.uint64(seed)))
    k = int(mix32(np.uint64((t + s) & M32)))
    h = mix32((np.arange(n, dtype=np.uint64) + np.uint64(k)) & M32U)
    return (h.astype(np.float64) - 2.0 ** 31) / 2.0 ** 31


def weight_kind(key, shape):
    """(base, amp, kind) of a state-dict tensor."""
    r3 = math.sqrt(3.0)
    if key == 'cls_token':
        return 0.0, 0.5 * r3, 'cls_token'
    if key == 'pos_embed':
        return 0.0, 0.2 * r3, 'pos_embed'
    if key == 'patch_embed.proj.weight':
        return 0.0, 0.1 * r3, 'patch_embed weight'
    if key.endswith('.bias'):
        return 0.0, 0.05 * r3, 'bias'
    if key.startswith('norm') or '.norm' in key:
        return 1.0, 0.1 * r3, 'LayerNorm weight'
    fan_in = shape[1]
    return 0.0, 1.4 * math.sqrt(3.0 / fan_in), 'Linear weight (fan_in %d)' % fan_in


def expected_keys(c):
    """The state-dict keys in ViT_new order (as bench's expectedVitKeys)."""
    D, H = c['dim'], 4 * c['dim']
    keys = [('cls_token', [1, 1, D]), ('pos_embed', [1, 197, D]), ('patch_embed.proj.weight', [D, 3, 16, 16]),
            ('patch_embed.proj.bias', [D])]
    for i in range(c['depth']):
        p = 'blocks.%d.' % i
        keys += [(p + 'norm1.weight', [D]), (p + 'norm1.bias', [D]), (p + 'attn.qkv.weight', [3 * D, D])]
        if c['qkv_bias']:
            keys.append((p + 'attn.qkv.bias', [3 * D]))
        keys += [(p + 'attn.proj.weight', [D, D]), (p + 'attn.proj.bias', [D]), (p + 'norm2.weight', [D]),
                 (p + 'norm2.bias', [D]), (p + 'mlp.fc1.weight', [H, D]), (p + 'mlp.fc1.bias', [H]),
                 (p + 'mlp.fc2.weight', [D, H]), (p + 'mlp.fc2.bias', [D])]
    keys += [('norm.weight', [D]), ('norm.bias', [D]), ('head.weight', [c['classes'], D]),
             ('head.bias', [c['classes']])]
    return keys


def formula_weights(c):
    sd, checks = {}, {}
    for t, (k, shape) in enumerate(expected_keys(c)):
        base, amp, kind = weight_kind(k, shape)
        n = int(np.prod(shape))
        w = (base + amp * hash_uniform(c['seed'], t, n)).astype(np.float32).reshape(shape)
        sd[k] = w
        checks[k] = {'index': t, 'shape': shape, 'kind': kind, 'base': base, 'amp': amp,
                     'first8': [float(x) for x in w.reshape(-1)[:8]],
                     'sha256_f32le': hashlib.sha256(w.astype('<f4').tobytes()).hexdigest()}
    return sd, checks


# ---------------------------------------------------------------------------------------------------- inputs

def random_image(seed):
    """Uniform noise quantised like an 8-bit image: k/255 with k = mix32(i + mix32(seed ^ 0xA5A5A5A5)) >> 24."""
    k = int(mix32(np.uint64((seed ^ 0xA5A5A5A5) & M32)))
    h = mix32((np.arange(3 * 224 * 224, dtype=np.uint64) + np.uint64(k)) & M32U) >> np.uint64(24)
    img = (h.astype(np.float64) / 255.0).astype(np.float32).reshape(1, 3, 224, 224)
    recipe = ('k = mix32(i + mix32(seed ^ 0xA5A5A5A5)) >> 24 for i = 0..150527 in (C,H,W) order (mix32 as for the '
              'weights); img = float32(k / 255.0) in [0,1]; then the script\'s normalize(): (img-0.5)/0.5 in float32')
    return img, recipe, {}


def smooth_image(seed):
    """S1's smooth recipe with its frequencies, phase and blob centre drawn from the seed."""
    u8 = (hash_uniform(seed, 7, 8) + 1) / 2  # 8 numbers in [0, 1)
    p = {'a': 0.8 + 1.6 * u8[0], 'b': 0.3 + 1.2 * u8[1], 'phi': 2 * math.pi * u8[2], 'cx': 0.2 + 0.6 * u8[3],
         'cy': 0.2 + 0.6 * u8[4], 's': 0.08 + 0.12 * u8[5], 'f': 2 + 4 * u8[6]}
    x = np.arange(224, dtype=np.float64) / 223
    u, v = np.meshgrid(x, x)  # u: column, v: row
    R = 0.5 + 0.35 * np.sin(2 * np.pi * (p['a'] * u + p['b'] * v) + p['phi'])
    G = 0.1 + 0.85 * np.exp(-((u - p['cx']) ** 2 + (v - p['cy']) ** 2) / (2 * p['s'] ** 2))
    B = 0.15 + 0.7 * v * (1 - 0.5 * u) + 0.1 * np.cos(p['f'] * np.pi * u)
    img = np.clip(np.stack([R, G, B])[None], 0, 1).astype(np.float32)
    recipe = ('u=x/223, v=y/223 (x column, y row, float64); R=0.5+0.35*sin(2*pi*(a*u+b*v)+phi); '
              'G=0.1+0.85*exp(-((u-cx)^2+(v-cy)^2)/(2*s^2)); B=0.15+0.7*v*(1-0.5u)+0.1*cos(f*pi*u); clip to [0,1], '
              'cast float32; then the script\'s normalize(): (img-0.5)/0.5 in float32. a, b, phi, cx, cy, s, f: '
              '`params` (from the seed)')
    return img, recipe, {k: float(val) for k, val in p.items()}


# ------------------------------------------------------------------------------------------ official code

# einops shim: the four rearrange patterns of the model files, as module source (make-e2e-geometry.py writes it into
# its work copy as einops.py, for the perturbation script's spawned DataLoader workers).
EINOPS_SOURCE = '''import torch


def rearrange(t, pattern, **kw):
    if pattern == 'b n (qkv h d) -> qkv b h n d':
        b, n, f = t.shape
        return t.reshape(b, n, kw['qkv'], kw['h'], f // (kw['qkv'] * kw['h'])).permute(2, 0, 3, 1, 4)
    if pattern == 'b h n d -> b n (h d)':
        b, h, n, d = t.shape
        return t.permute(0, 2, 1, 3).reshape(b, n, h * d)
    if pattern == 'b n (h d) -> b h n d':
        b, n, f = t.shape
        return t.reshape(b, n, kw['h'], f // kw['h']).permute(0, 2, 1, 3)
    if pattern == 'qkv b h n d -> b n (qkv h d)':
        t = torch.stack(list(t))
        q, b, h, n, d = t.shape
        return t.permute(1, 3, 0, 2, 4).reshape(b, n, q * h * d)
    raise NotImplementedError(pattern)
'''


def import_official(te):
    tmp = Path(tempfile.mkdtemp(prefix='te-official-'))
    for d in ('baselines', 'modules'):
        shutil.copytree(Path(te) / d, tmp / d)
    sys.path.insert(0, str(tmp))
    einops = types.ModuleType('einops')
    exec(EINOPS_SOURCE, einops.__dict__)
    sys.modules['einops'] = einops
    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU run: .cuda() is the identity
    from baselines.ViT import ViT_LRP, ViT_new, ViT_orig_LRP
    from baselines.ViT.ViT_explanation_generator import LRP, Baselines
    return tmp, ViT_new, ViT_LRP, ViT_orig_LRP, LRP, Baselines


def normalize(tensor, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]):
    # generate_visualizations.normalize, verbatim
    dtype = tensor.dtype
    mean = torch.as_tensor(mean, dtype=dtype, device=tensor.device)
    std = torch.as_tensor(std, dtype=dtype, device=tensor.device)
    tensor.sub_(mean[None, :, None, None]).div_(std[None, :, None, None])
    return tensor


CALLS = {
    'rollout': ('baselines', 'baselines.generate_rollout(data, start_layer=1).reshape(data.shape[0], 1, 14, 14)',
                'baselines/ViT/ViT_new.py'),
    'lrp': ('lrp', 'lrp.generate_LRP(data, start_layer=1, index=index).reshape(data.shape[0], 1, 14, 14)',
            'baselines/ViT/ViT_LRP.py'),
    'transformer_attribution': (
        'lrp', 'lrp.generate_LRP(data, start_layer=1, method="grad", index=index).reshape(data.shape[0], 1, 14, 14)',
        'baselines/ViT/ViT_LRP.py'),
    'full_lrp': ('orig_lrp',
                 'orig_lrp.generate_LRP(data, method="full", index=index).reshape(data.shape[0], 1, 224, 224)',
                 'baselines/ViT/ViT_orig_LRP.py'),
    'lrp_last_layer': ('orig_lrp', 'orig_lrp.generate_LRP(data, method="last_layer", is_ablation=False, '
                                   'index=index).reshape(data.shape[0], 1, 14, 14)', 'baselines/ViT/ViT_orig_LRP.py'),
    'attn_last_layer': ('lrp', 'lrp.generate_LRP(data, method="last_layer_attn", is_ablation=False)'
                               '.reshape(data.shape[0], 1, 14, 14)', 'baselines/ViT/ViT_LRP.py'),
    'attn_gradcam': ('baselines', 'baselines.generate_cam_attn(data, index=index).reshape(data.shape[0], 1, 14, 14)',
                     'baselines/ViT/ViT_new.py'),
}
METHODS = list(CALLS)


def run_method(method, gens, data, index):
    """The script's branch for `method`; returns (raw as the generator returned it, final)."""
    baselines, lrp, orig_lrp = gens['baselines'], gens['lrp'], gens['orig_lrp']
    if method == 'rollout':
        raw = baselines.generate_rollout(data, start_layer=1)
        Res = raw.reshape(data.shape[0], 1, 14, 14)
    elif method == 'lrp':
        raw = lrp.generate_LRP(data, start_layer=1, index=index)
        Res = raw.reshape(data.shape[0], 1, 14, 14)
    elif method == 'transformer_attribution':
        raw = lrp.generate_LRP(data, start_layer=1, method="grad", index=index)
        Res = raw.reshape(data.shape[0], 1, 14, 14)
    elif method == 'full_lrp':
        raw = orig_lrp.generate_LRP(data, method="full", index=index)
        Res = raw.reshape(data.shape[0], 1, 224, 224)
    elif method == 'lrp_last_layer':
        raw = orig_lrp.generate_LRP(data, method="last_layer", is_ablation=False, index=index)
        Res = raw.reshape(data.shape[0], 1, 14, 14)
    elif method == 'attn_last_layer':
        raw = lrp.generate_LRP(data, method="last_layer_attn", is_ablation=False)
        Res = raw.reshape(data.shape[0], 1, 14, 14)
    elif method == 'attn_gradcam':
        raw = baselines.generate_cam_attn(data, index=index)
        Res = raw.reshape(data.shape[0], 1, 14, 14)
    if method != 'full_lrp' and method != 'input_grads':
        Res = torch.nn.functional.interpolate(Res, scale_factor=16, mode='bilinear').cuda()
    Res = (Res - Res.min()) / (Res.max() - Res.min())
    return raw.detach().numpy().copy(), Res.detach().numpy().copy()


def write_safetensors(path, tensors, metadata):
    names = {np.dtype(np.float32): 'F32', np.dtype(np.float64): 'F64', np.dtype(np.int64): 'I64'}
    header = {'__metadata__': metadata}
    blobs, offset = [], 0
    for k in sorted(tensors):
        t = np.ascontiguousarray(tensors[k])
        b = t.astype(t.dtype.newbyteorder('<')).tobytes()
        header[k] = {'dtype': names[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    path.write_bytes(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def pearson(a, b):
    a = a.reshape(-1).astype(np.float64)
    b = b.reshape(-1).astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


def build_models(c, sd, official):
    _, ViT_new, ViT_LRP, ViT_orig_LRP, LRP, Baselines = official
    kw = dict(img_size=224, patch_size=16, in_chans=3, num_classes=c['classes'], embed_dim=c['dim'],
              depth=c['depth'], num_heads=c['heads'], mlp_ratio=4, qkv_bias=c['qkv_bias'])
    state = {k: torch.from_numpy(v.copy()) for k, v in sd.items()}
    models = {
        'vit_new': ViT_new.VisionTransformer(**kw, norm_layer=partial(nn.LayerNorm, eps=1e-6)),
        'vit_lrp': ViT_LRP.VisionTransformer(**kw),
        'vit_orig_lrp': ViT_orig_LRP.VisionTransformer(**kw),
    }
    for name, m in models.items():
        keys = list(m.state_dict().keys())
        want = [k for k, _ in expected_keys(c)]
        # ViT_new's order is the formula's tensor order; ViT_LRP / ViT_orig_LRP list pos_embed before cls_token
        assert (keys == want) if name == 'vit_new' else (sorted(keys) == sorted(want)), (name, keys[:6])
        m.load_state_dict(state, strict=True)
        m.eval()
    return models


def generators(models, LRP, Baselines):
    return {'baselines': Baselines(models['vit_new']), 'lrp': LRP(models['vit_lrp']),
            'orig_lrp': LRP(models['vit_orig_lrp'])}


def make_case(c, case_kind, case_seed, models32, models64, official, out):
    LRP, Baselines = official[4], official[5]
    gens32, gens64 = generators(models32, LRP, Baselines), generators(models64, LRP, Baselines)
    # The input seed: the first of case_seed, case_seed + 1000, … whose input passes the cheap checks (the three
    # models agree on the top class in both precisions with a top-2 margin >= 0.05, and attn_gradcam is not 0/0
    # for either class: quirk 4 of the S1 README, all head weights negative).
    rejected = []
    for attempt in range(20):
        seed = case_seed + 1000 * attempt
        img, recipe, params = (random_image if case_kind == 'random' else smooth_image)(seed)
        data = normalize(torch.from_numpy(img.copy()))
        data.requires_grad_()
        data64 = data.detach().double().requires_grad_()
        # (with autograd on: the LRP model files register a hook in forward)
        logits = {k: m(data).detach().numpy().copy() for k, m in models32.items()}
        logits64 = {k: m(data64).detach().numpy().copy() for k, m in models64.items()}
        C = c['classes']
        srt = np.argsort(-logits['vit_lrp'][0])
        top = int(srt[0])
        margin = float(logits['vit_lrp'][0][srt[0]] - logits['vit_lrp'][0][srt[1]])
        problems = []
        for k in logits:
            for L in (logits[k], logits64[k]):
                if int(np.argmax(L[0])) != top:
                    problems.append('argmax of %s differs' % k)
        if margin < 0.05:
            problems.append('top-2 margin %.4f < 0.05' % margin)
        target = int((top + 1 + int(mix32(np.uint64(seed))) % (C - 1)) % C)
        assert target != top
        for index in (None, torch.tensor([target])):
            raw, _ = run_method('attn_gradcam', gens32, data, index)
            if not np.all(np.isfinite(raw)) or float(raw.max()) == float(raw.min()):
                problems.append('attn_gradcam is 0/0 or constant (class %s)' % ('top' if index is None else target))
        if not problems:
            break
        rejected.append({'seed': seed, 'why': problems})
        print('    %s/%s: input seed %d rejected: %s' % (c['name'], case_kind, seed, problems), flush=True)
    case_seed = seed
    tensors = {'input': data.detach().numpy().copy(), 'logits': logits['vit_lrp'],
               'logits.vit_orig_lrp': logits['vit_orig_lrp'], 'logits.vit_new': logits['vit_new'],
               'logits_f64': logits64['vit_lrp'], 'logits_f64.vit_new': logits64['vit_new'],
               'logits_f64.vit_orig_lrp': logits64['vit_orig_lrp']}
    entries = []
    timing = {}
    for vis in ('top', 'target'):
        for method in METHODS:
            t0 = time.time()
            index = None if vis == 'top' else torch.tensor([target])
            raw, final = run_method(method, gens32, data, index)
            t1 = time.time()
            index64 = None if vis == 'top' else torch.tensor([target])
            raw64, final64 = run_method(method, gens64, data64, index64)
            t2 = time.time()
            timing['%s.%s' % (method, vis)] = [round(t1 - t0, 2), round(t2 - t1, 2)]
            for name, a in (('raw', raw), ('raw_f64', raw64), ('final', final)):
                if not np.all(np.isfinite(a)) or float(a.max()) == float(a.min()):
                    problems.append('%s.%s.%s is not finite or constant' % (method, vis, name))
            tensors['%s.%s.raw' % (method, vis)] = raw.astype(np.float32)
            tensors['%s.%s.raw_f64' % (method, vis)] = raw64.astype(np.float64)
            tensors['%s.%s.final' % (method, vis)] = final.astype(np.float32)
            if method == 'attn_gradcam':
                attn = models64['vit_new'].blocks[-1].attn
                tensors['debug.attn_gradcam.%s.attn_row0' % vis] = \
                    attn.get_attention_map()[:, :, 0, :].detach().numpy().astype(np.float32)
                tensors['debug.attn_gradcam.%s.grad_row0' % vis] = \
                    attn.get_attn_gradients()[:, :, 0, :].detach().numpy().astype(np.float32)
            scale = float(np.abs(raw64).max())
            obj, call, model_file = CALLS[method]
            class_indep = method in ('rollout', 'attn_last_layer')
            entries.append({
                'method': method, 'vis_class': vis,
                'index_passed': ('None (argmax of the model\'s logits inside the generator)' if vis == 'top' else
                                 ('not passed by the script (index ignored)' if class_indep else
                                  'torch.tensor([%d])' % target)),
                'class_used': top if (vis == 'top' or class_indep) else target,
                'model_file': model_file,
                'generator_object': {'baselines': 'baselines = Baselines(ViT_new model)',
                                     'lrp': 'lrp = LRP(ViT_LRP model)',
                                     'orig_lrp': 'orig_lrp = LRP(ViT_orig_LRP model)'}[obj],
                'generator_call': call,
                'raw': '%s.%s.raw' % (method, vis), 'raw_shape': list(raw.shape),
                'final': '%s.%s.final' % (method, vis), 'interpolated': method != 'full_lrp',
                'raw_f64': '%s.%s.raw_f64' % (method, vis),
                'f32_vs_f64': {
                    'raw_max_abs_diff_over_max_abs': float(np.abs(raw.astype(np.float64) - raw64).max() / scale),
                    'final_max_abs_diff': float(np.abs(final.astype(np.float64) - final64).max()),
                    'raw_pearson': pearson(raw, raw64),
                },
            })
    for vis in ('top', 'target'):
        if not np.array_equal(tensors['lrp.%s.raw' % vis], tensors['transformer_attribution.%s.raw' % vis]):
            problems.append('lrp != transformer_attribution (%s)' % vis)
    meta = {
        'config': c['name'], 'case': case_kind,
        'image': {'kind': case_kind, 'seed': case_seed, 'recipe': recipe, **({'params': params} if params else {}),
                  'input_sha256': hashlib.sha256(tensors['input'].astype('<f4').tobytes()).hexdigest(),
                  **({'seeds_rejected': rejected} if rejected else {})},
        'input_note': '`input` is the normalised tensor the models received: generate_visualizations.normalize(img) '
                      '= (img - 0.5) / 0.5 per channel, float32, shape 1x3x224x224, NCHW',
        'top_class': top, 'target_class': target, 'logits_top2_margin': margin,
        'vis_classes': {
            'top': 'index=None -> argmax of logits inside the generator',
            'target': 'index = torch.tensor([target_class]) as the script\'s data loader would pass; rollout and '
                      'attn_last_layer ignore it. target_class = (top + 1 + mix32(case seed) % (C-1)) % C'},
        'postprocess': 'if method != \'full_lrp\': Res = torch.nn.functional.interpolate(Res, scale_factor=16, '
                       'mode=\'bilinear\')  (align_corners=False);  Res = (Res - Res.min()) / (Res.max() - Res.min()) '
                       '(the two lines of generate_visualizations.compute_saliency_and_save, re-issued in-process: '
                       '.final is that tensor, not read back from an HDF5 file)',
        'float64_twin': '*.raw_f64, logits_f64* and debug.* come from re-issuing the identical generator call on '
                        'float64 copies of the three models (same weights, copy.deepcopy(model).double()) with '
                        'input.double(); debug.* are stored rounded to float32. f32_vs_f64.final_max_abs_diff '
                        'compares .final with the same post-processing of the float64 run',
        'timing_s': {'note': '[float32 call, float64 call] per method.class, wall seconds on a shared 2-core '
                             'machine', **timing},
        'methods': entries,
        'tensors': {k: {'dtype': str(v.dtype), 'shape': list(v.shape)} for k, v in sorted(tensors.items())},
    }
    return meta, tensors, problems


def config_json(c, checks, stored):
    D = c['dim']
    return {
        'name': c['name'],
        'model': {'img_size': 224, 'patch_size': 16, 'in_chans': 3, 'grid': 14, 'num_tokens': 197, 'embed_dim': D,
                  'depth': c['depth'], 'num_heads': c['heads'], 'head_dim': D // c['heads'], 'mlp_ratio': 4,
                  'mlp_hidden': 4 * D, 'qkv_bias': c['qkv_bias'], 'num_classes': c['classes'],
                  'attn_scale': (D // c['heads']) ** -0.5, 'activation': 'GELU (exact, erf)'},
        'layernorm_eps': {
            'vit_new': {'blocks': 1e-06, 'final_norm': 1e-06},
            'vit_lrp': {'blocks': 1e-06, 'final_norm': 1e-05},
            'vit_orig_lrp': {'blocks': 1e-06, 'final_norm': 1e-05},
            'note': 'ViT_LRP.py / ViT_orig_LRP.py build the final `norm` as LayerNorm(embed_dim) -> eps 1e-5, '
                    'ViT_new.py uses eps 1e-6 everywhere'},
        'normalisation': {'mean': [0.5, 0.5, 0.5], 'std': [0.5, 0.5, 0.5],
                          'formula': 'input = (image - mean) / std, per channel'},
        'weights': {
            **({'file': 'weights.safetensors'} if stored else {}),
            'dtype': 'F32',
            'naming': 'timm / reference state_dict keys',
            'seed': c['seed'],
            'formula': {
                'hash': 'mix32(x) = lowbias32: x ^= x>>16; x = x*0x7feb352d mod 2^32; x ^= x>>15; '
                        'x = x*0x846ca68b mod 2^32; x ^= x>>16',
                'element': 'h = mix32((i + mix32((t + mix32(seed)) mod 2^32)) mod 2^32); u = (h - 2^31) / 2^31 in '
                           '[-1, 1) (float64, exact); w = float32(base + amp * u) (float64 multiply and add, one '
                           'rounding to float32, nearest-even). i: element index in C order, t: tensor index in '
                           'the state-dict order below',
                'kinds': 'uniform with S1\'s standard deviations (amp = std * sqrt(3), computed in float64 as '
                         'written): cls_token amp 0.5*sqrt(3); pos_embed 0.2*sqrt(3); patch_embed.proj.weight '
                         '0.1*sqrt(3); LayerNorm weight base 1, amp 0.1*sqrt(3); every bias 0.05*sqrt(3); other '
                         'weights (qkv, proj, fc1, fc2, head) 1.4*sqrt(3/fan_in), fan_in = shape[1]',
                'implementations': ['scripts/golden/make-vit-geometries.py', 'test/helpers/formula-weights.ts'],
            },
            'tensors': checks,
            'loaded_into': ['baselines/ViT/ViT_new.py', 'baselines/ViT/ViT_LRP.py', 'baselines/ViT/ViT_orig_LRP.py'],
            'strict_load': True,
            'stored': ('weights.safetensors holds the same float32 tensors' if stored else
                       'not stored (over 2 MB): rebuild them from the formula; per tensor, first8 and the SHA-256 '
                       'of the float32 little-endian bytes check the result'),
        },
        'model_construction': {
            'vit_new': 'ViT_new.VisionTransformer(img_size=224, patch_size=16, in_chans=3, num_classes, embed_dim, '
                       'depth, num_heads, mlp_ratio=4, qkv_bias=%s, norm_layer=partial(nn.LayerNorm, eps=1e-6))'
                       % c['qkv_bias'],
            'vit_lrp': 'ViT_LRP.VisionTransformer(img_size=224, patch_size=16, in_chans=3, num_classes, embed_dim, '
                       'depth, num_heads, mlp_ratio=4, qkv_bias=%s)' % c['qkv_bias'],
            'vit_orig_lrp': 'ViT_orig_LRP.VisionTransformer(same arguments as vit_lrp)'},
        'method_model_file': {m: CALLS[m][2] for m in METHODS},
        'method_generator_call': {m: CALLS[m][1] for m in METHODS},
        'generator': 'scripts/golden/make-vit-geometries.py (bench repository)',
        'stubs': '.cuda() made the identity (CPU run); einops.rearrange replaced by a shim for the four patterns '
                 'the model files use; generate_visualizations.py not imported (h5py), its normalize() and '
                 'post-processing re-issued verbatim',
        'reference': {
            'repo': 'hila-chefer/Transformer-Explainability', 'commit': REF_COMMIT,
            'torch': '%s (Debian python3-torch 1.13.1+dfsg, CPU)' % torch.__version__,
            'torch_num_threads': torch.get_num_threads(),
            'OPENBLAS_NUM_THREADS': os.environ.get('OPENBLAS_NUM_THREADS'),
            'numpy': np.__version__},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--te', required=True, help='extracted official checkout (git archive of commit c3e578f)')
    ap.add_argument('--out', required=True, help='output folder (vit/ of a golden tree)')
    ap.add_argument('--only', default='', help='comma-separated config names')
    ap.add_argument('--cases', type=int, default=2, help='cases per config (1: the first only)')
    ap.add_argument('--kinds', default='random,smooth', help='input kinds to make (random, smooth)')
    ap.add_argument('--weights-only', action='store_true', help='write config.json and weights only')
    args = ap.parse_args()
    official = import_official(args.te)
    only = set(args.only.split(',')) if args.only else None
    for c in CONFIGS:
        if only and c['name'] not in only:
            continue
        out = Path(args.out) / c['name']
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        sd, checks = formula_weights(c)
        nbytes = sum(v.nbytes for v in sd.values())
        stored = nbytes < 2 * 2 ** 20
        if stored:
            write_safetensors(out / 'weights.safetensors', sd, {'format': 'pt', 'generator': 'make-vit-geometries.py'})
        cfg = config_json(c, checks, stored)
        (out / 'config.json').write_text(json.dumps(cfg, indent=1) + '\n')
        print('%s: weights %.1f MB (%s), %.1f s' % (c['name'], nbytes / 2 ** 20, 'stored' if stored else 'formula',
                                                 time.time() - t0), flush=True)
        if args.weights_only:
            continue
        models32 = build_models(c, sd, official)
        models64 = {k: copy.deepcopy(m).double() for k, m in models32.items()}
        for kind, seed in c['cases'][:args.cases]:
            if kind not in args.kinds.split(','):
                continue
            t1 = time.time()
            meta, tensors, problems = make_case(c, kind, seed, models32, models64, official, out)
            meta['wall_s'] = round(time.time() - t1, 1)
            if problems:
                print('  %s/%s: PROBLEMS %s' % (c['name'], kind, problems), flush=True)
                meta['problems'] = problems
            write_safetensors(out / ('case-%s.safetensors' % kind), tensors,
                              {'config': c['name'], 'case': kind, 'generator': 'make-vit-geometries.py'})
            (out / ('case-%s.json' % kind)).write_text(json.dumps(meta, indent=1) + '\n')
            worst = {e['method']: e['f32_vs_f64']['raw_max_abs_diff_over_max_abs'] for e in meta['methods']}
            print('  %s/%s: top %d target %d margin %.3f, %.1f s; f32-vs-f64 %s' % (
                c['name'], kind, meta['top_class'], meta['target_class'], meta['logits_top2_margin'],
                meta['wall_s'], {k: '%.1e' % v for k, v in worst.items()}), flush=True)


if __name__ == '__main__':
    main()
