#!/usr/bin/env python3
"""BERT golden for generic_attention: the generic attention rule of Chefer, Gur & Wolf (ICCV 2021) applied to
the official BERT model's own attention probabilities and gradients.

    /usr/bin/python3 scripts/golden/make-bert-generic-golden.py GOLDEN_DIR

Input: GOLDEN_DIR/bert/tiny_a/outputs.safetensors and meta.json, written by the official Transformer-Explainability
code (BERT_cls_lrp.py, commit c3e578f; see that folder's README). For each sequence and class choice (pred = the
model's argmax, c0, c1) it holds, per layer, the hooked softmax attention `attn_probs` and `attn_grads` =
d(one_hot · logits)/d(attn_probs) of the `orig_lrp` model (the pipeline's baseline model), [1, H, L, L].

The rule, as in hila-chefer/Transformer-MM-Explainability (commit 58eaea8): `avg_heads` (rule 5: grad * cam,
clamp(min=0), mean over heads), `apply_self_attention_rules` (rule 6: R += cam @ R) over every layer in order from
R = I, and the text read-out of its LXMERT generator (`R_t_t[0, 0] = 0`, then the CLS row R[0]). The output is
[1, L] like the other BERT outputs: [CLS] (set to 0) and padding positions included.

Output: GOLDEN_DIR/bert/tiny_a/generic.safetensors (float32 run and float64 run from the same float32 inputs) and
generic.json (what each tensor is). Needs torch (Debian's python3-torch 1.13) and numpy; deterministic.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)


def read_safetensors(path):
    buf = path.read_bytes()
    n = struct.unpack('<Q', buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    dtypes = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64}
    out = {}
    for k, e in header.items():
        if k == '__metadata__':
            continue
        a, b = e['data_offsets']
        out[k] = np.frombuffer(buf[8 + n + a:8 + n + b], dtype=dtypes[e['dtype']]).reshape(e['shape'])
    return out


def write_safetensors(path, tensors, metadata):
    names = {np.dtype(np.float32): 'F32', np.dtype(np.float64): 'F64'}
    header = {'__metadata__': metadata}
    blobs = []
    offset = 0
    for k in sorted(tensors):
        t = np.ascontiguousarray(tensors[k])
        b = t.tobytes()
        header[k] = {'dtype': names[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    path.write_bytes(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def avg_heads(cam, grad):
    # rule 5
    cam = cam.reshape(-1, cam.shape[-2], cam.shape[-1])
    grad = grad.reshape(-1, grad.shape[-2], grad.shape[-1])
    return (grad * cam).clamp(min=0).mean(dim=0)


def generic_relevance(probs, grads, dtype):
    n = probs[0].shape[-1]
    R = torch.eye(n, n, dtype=dtype)
    for p, g in zip(probs, grads):
        cam = avg_heads(torch.from_numpy(p.copy()).to(dtype), torch.from_numpy(g.copy()).to(dtype))
        R = R + torch.matmul(cam, R)  # rule 6; the product uses the old R
    R[0, 0] = 0  # the text read-out: disregard the [CLS] token itself
    return R[0].unsqueeze(0)


def main():
    root = Path(sys.argv[1]) / 'bert' / 'tiny_a'
    src = read_safetensors(root / 'outputs.safetensors')
    meta = json.loads((root / 'meta.json').read_text())
    depth = json.loads((root / 'config.json').read_text())['num_hidden_layers']
    tensors = {}
    entries = []
    for seq in meta['sequences']:
        name = seq['name']
        for t in meta['targets']:
            pre = f'{name}.orig_lrp.generate_LRP.{t}'
            probs = [src[f'{pre}.layer{l}.attn_probs'] for l in range(depth)]
            grads = [src[f'{pre}.layer{l}.attn_grads'] for l in range(depth)]
            r32 = generic_relevance(probs, grads, torch.float32).numpy()
            r64 = generic_relevance(probs, grads, torch.float64).numpy()
            key = f'{name}.generic_attention.{t}'
            tensors[key] = r32
            tensors[f'{key}_f64'] = r64
            entries.append({
                'tensor': key,
                'sequence': name,
                'class': seq['predicted_class'] if t == 'pred' else int(t[1:]),
                'target': t,
                'from': f'{pre}.layer{{0..{depth - 1}}}.attn_probs / attn_grads of outputs.safetensors',
                'f32_vs_f64_max_abs_diff_over_max_abs': float(np.abs(r32 - r64).max() / np.abs(r64).max()),
            })
    write_safetensors(root / 'generic.safetensors', tensors, {'config': 'tiny_a', 'method': 'generic_attention'})
    doc = {
        'method': 'generic_attention',
        'config': 'tiny_a',
        'made_by': 'scripts/golden/make-bert-generic-golden.py of the bench repository',
        'rule': {
            'repo': 'hila-chefer/Transformer-MM-Explainability',
            'commit': '58eaea85ac9c34aff052f368514b35d2e4c8dd3c',
            'functions': ['avg_heads (rule 5)', 'apply_self_attention_rules (rule 6)',
                          "the text read-out of lxmert/lxmert/src/ExplanationGenerator.py: R_t_t[0, 0] = 0, row 0"],
            'init': 'R = eye(L) in the run dtype; every layer in order, no start layer',
        },
        'inputs': 'attn_probs and attn_grads of the official BERT_cls_lrp.py model (orig_lrp), as hooked by the '
                  'reference generator, read from outputs.safetensors (float32); see README.md',
        'tensors': {'<seq>.generic_attention.<target>': '[1, L] float32, the rule in float32',
                    '<seq>.generic_attention.<target>_f64': '[1, L] float64, the rule in float64 on the same '
                                                             'float32 inputs'},
        'entries': entries,
        'environment': {'torch': torch.__version__, 'numpy': np.__version__, 'torch_num_threads': 1},
    }
    (root / 'generic.json').write_text(json.dumps(doc, indent=1) + '\n')


if __name__ == '__main__':
    main()
