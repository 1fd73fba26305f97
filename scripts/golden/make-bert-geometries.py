#!/usr/bin/env python3
"""BERT golden cases with padding (issue 15, item 3): the official Transformer-Explainability BERT code run on two
random BERTs of different shapes (P1, P2), each on three batch-1 sequences - half of the positions padding, a single
padding position, no padding - every ExplanationGenerator method bench implements, for the predicted class and one
other class, in float32 and as a float64 twin (the same generator calls on `.double()` copies of the models).

    git --git-dir=<fetched hila-chefer/Transformer-Explainability> archive HEAD | tar -x -C /tmp/te
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/golden/make-bert-geometries.py --te /tmp/te \
        --out <golden tree>/bert

The official code (commit c3e578f) is not part of this repository: the script copies `BERT_explainability/` and
`BERT_rationale_benchmark/` of the extracted checkout into a temporary folder and imports the model files and
`ExplanationGenerator.py` from there, unedited. As for bert/tiny_a (see that README): `.cuda()` is made the
identity (CPU run) and HuggingFace `transformers` 3.5.1 is replaced by a minimal stand-in with 3.5.1's behaviour
where the model files use it (`return_dict=False`, `output_attentions` / `output_hidden_states` False, `is_decoder`
False, `get_extended_attention_mask`: `(1 - mask[:, None, None, :].to(model dtype)) * -10000`, `get_head_mask(None)`
= `[None] * layers`; `init_weights` does nothing: every parameter is then loaded from the formula below, strictly);
`gensim` (imported by `model_utils.py` for `PaddedSequence`, unused here) is a stub module.

Models (as for tiny_a): `ours` = BERT_explainability/modules/BERT/BertForSequenceClassification.py (layers_ours.py),
`orig_lrp` = BERT_explainability/modules/BERT/BERT_cls_lrp.py (layers_lrp.py), both `eval()`. Calls, per sequence
and class choice `pred` (index=None: the generator's argmax) / `other` (index = the class in meta.json), with
`input_ids` and `attention_mask` as int64 [1, L] tensors:
    Generator(ours).generate_LRP(..., index, start_layer=0)            -> ours.generate_LRP.start_layer0.<t>
    Generator(ours).generate_LRP(..., index, start_layer=layers-1)     -> ours.generate_LRP.start_layerLAST.<t>
    Generator(orig_lrp).generate_LRP_last_layer(..., index)            -> orig_lrp.generate_LRP_last_layer.<t>
    Generator(orig_lrp).generate_full_lrp(..., index)                  -> orig_lrp.generate_full_lrp.<t>
    Generator(orig_lrp).generate_attn_gradcam(..., index)              -> orig_lrp.generate_attn_gradcam.<t>
    Generator(orig_lrp).generate_attn_last_layer(...)                  -> orig_lrp.generate_attn_last_layer
    Generator(orig_lrp).generate_rollout(..., start_layer=0)           -> orig_lrp.generate_rollout.start_layer0
and generic_attention.<t>: the rule of scripts/golden/make-bert-generic-golden.py (Transformer-MM-Explainability's
avg_heads / apply_self_attention_rules / text read-out) applied to every layer's `get_attn()` and
`get_attn_gradients()` of orig_lrp right after Generator(orig_lrp).generate_LRP(..., index, start_layer=0), in the
run's dtype. Every tensor is stored as returned ([1, L], [CLS] and padding positions included); `<name>_f64` is the
same call on the float64 models.

Weights: the counter-based hash of make-vit-geometries.py (mix32 = lowbias32; u = (mix32(i + mix32(t +
mix32(seed))) - 2^31) / 2^31; w = float32(base + amp*u)), t = tensor index in HF state-dict order (bench's
expectedBertKeys), with tiny_a's standard deviations as uniform amplitudes (amp = std*sqrt(3)):
    word_embeddings 1.0; position_embeddings 0.5; token_type_embeddings 0.3; LayerNorm weight 1 + (0.1);
    LayerNorm bias 0.1; Linear bias 0.1; Linear weight 1.2/sqrt(in_features).
meta.json records the recipe and per tensor (base, amp), the first 8 values and the SHA-256 of its float32 bytes;
test/helpers/formula-weights.ts rebuilds them (no weights file is stored).

Token ids: [CLS]=1, [SEP]=2, [PAD]=0 (tiny_a's choice), the other tokens 3 + mix32(i + mix32(seq seed)) % (vocab - 3);
the seq seed is the first of s, s + 1000, ... whose outputs are finite and not all zeros in both precisions, with a
top-2 margin >= 0.05 and the same argmax in float64 (meta.json lists the seeds rejected).
Per output, meta.json also gives the float32 run's distance to its twin and a float32 noise scale: the distance to the
twin of the same float32 calls on models whose every weight is moved one ulp up or down (4 random draws).
Deterministic; torch 1 thread (and OPENBLAS_NUM_THREADS=1).
"""

import argparse
import copy
import hashlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

torch.set_num_threads(1)

REF_COMMIT = 'c3e578f76b954e8528afeaaee26de3f07e3fe559'
HERE = Path(__file__).resolve().parent


def load(name, file):
    spec = importlib.util.spec_from_file_location(name, HERE / file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


vitgeo = load('make_vit_geometries', 'make-vit-geometries.py')
generic = load('make_bert_generic_golden', 'make-bert-generic-golden.py')
mix32, hash_uniform, write_safetensors = vitgeo.mix32, vitgeo.hash_uniform, vitgeo.write_safetensors

CONFIGS = [
    # sequences: (name, length, real tokens incl. [CLS] and [SEP], id seed)
    dict(name='P1', layers=2, heads=3, hidden=48, intermediate=96, vocab=40, max_position=32, labels=2, seed=7101,
         sequences=[('half_pad', 16, 8, 7111), ('one_pad', 12, 11, 7112), ('no_pad', 10, 10, 7113)]),
    dict(name='P2', layers=4, heads=4, hidden=64, intermediate=128, vocab=60, max_position=32, labels=3, seed=7202,
         sequences=[('half_pad', 20, 10, 7211), ('one_pad', 15, 14, 7212), ('no_pad', 13, 13, 7213)]),
]
PAD, CLS, SEP = 0, 1, 2
ULP_DRAWS = 4


def hf_config(c):
    return {
        'architectures': ['BertForSequenceClassification'], 'attention_probs_dropout_prob': 0.1, 'hidden_act': 'gelu',
        'hidden_dropout_prob': 0.1, 'hidden_size': c['hidden'], 'initializer_range': 0.02,
        'intermediate_size': c['intermediate'], 'layer_norm_eps': 1e-12, 'max_position_embeddings': c['max_position'],
        'model_type': 'bert', 'num_attention_heads': c['heads'], 'num_hidden_layers': c['layers'],
        'num_labels': c['labels'], 'pad_token_id': PAD, 'type_vocab_size': 2, 'vocab_size': c['vocab'],
    }


def expected_keys(c):
    """HF state-dict order (bench's expectedBertKeys), without the position_ids buffer."""
    D, I = c['hidden'], c['intermediate']
    keys = [('bert.embeddings.word_embeddings.weight', [c['vocab'], D]),
            ('bert.embeddings.position_embeddings.weight', [c['max_position'], D]),
            ('bert.embeddings.token_type_embeddings.weight', [2, D]),
            ('bert.embeddings.LayerNorm.weight', [D]), ('bert.embeddings.LayerNorm.bias', [D])]

    def linear(p, out, inp):
        keys.extend([(p + '.weight', [out, inp]), (p + '.bias', [out])])

    for i in range(c['layers']):
        p = 'bert.encoder.layer.%d.' % i
        for n in ('query', 'key', 'value'):
            linear(p + 'attention.self.' + n, D, D)
        linear(p + 'attention.output.dense', D, D)
        keys += [(p + 'attention.output.LayerNorm.weight', [D]), (p + 'attention.output.LayerNorm.bias', [D])]
        linear(p + 'intermediate.dense', I, D)
        linear(p + 'output.dense', D, I)
        keys += [(p + 'output.LayerNorm.weight', [D]), (p + 'output.LayerNorm.bias', [D])]
    linear('bert.pooler.dense', D, D)
    linear('classifier', c['labels'], D)
    return keys


def weight_kind(key, shape):
    r3 = math.sqrt(3.0)
    if key.endswith('word_embeddings.weight'):
        return 0.0, 1.0 * r3, 'word_embeddings'
    if key.endswith('position_embeddings.weight'):
        return 0.0, 0.5 * r3, 'position_embeddings'
    if key.endswith('token_type_embeddings.weight'):
        return 0.0, 0.3 * r3, 'token_type_embeddings'
    if 'LayerNorm.weight' in key:
        return 1.0, 0.1 * r3, 'LayerNorm weight'
    if key.endswith('.bias'):
        return 0.0, 0.1 * r3, 'bias'
    return 0.0, 1.2 * math.sqrt(3.0 / shape[1]), 'Linear weight (in_features %d)' % shape[1]


def formula_weights(c):
    sd, checks = {}, {}
    for t, (k, shape) in enumerate(expected_keys(c)):
        base, amp, kind = weight_kind(k, shape)
        w = (base + amp * hash_uniform(c['seed'], t, int(np.prod(shape)))).astype(np.float32).reshape(shape)
        sd[k] = w
        checks[k] = {'index': t, 'shape': shape, 'kind': kind, 'base': base, 'amp': amp,
                     'first8': [float(x) for x in w.reshape(-1)[:8]],
                     'sha256_f32le': hashlib.sha256(w.astype('<f4').tobytes()).hexdigest()}
    return sd, checks


def token_ids(c, length, real, seed):
    k = int(mix32(np.uint64(seed)))
    h = mix32((np.arange(real - 2, dtype=np.uint64) + np.uint64(k)) & vitgeo.M32U)
    body = [3 + int(x) % (c['vocab'] - 3) for x in h]
    ids = [CLS] + body + [SEP] + [PAD] * (length - real)
    mask = [1] * real + [0] * (length - real)
    return ids, mask


# ------------------------------------------------------------------------------------------ official code

def transformers_stand_in():
    tr = types.ModuleType('transformers')
    tr.__path__ = []

    class Config:
        def __init__(self, **kw):
            self.output_attentions = False
            self.output_hidden_states = False
            self.return_dict = False
            self.torchscript = False
            self.is_decoder = False
            for k, v in kw.items():
                setattr(self, k, v)

        @property
        def use_return_dict(self):
            return self.return_dict and not self.torchscript

    class PreTrainedModel(nn.Module):
        def __init__(self, config, *a, **k):
            super().__init__()
            self.config = config

        def init_weights(self):
            pass  # every parameter is loaded afterwards (strict)

        @property
        def dtype(self):
            return next(self.parameters()).dtype

        def get_extended_attention_mask(self, attention_mask, input_shape, device):
            # transformers 3.5.1 modeling_utils.ModuleUtilsMixin, for a 2-D mask of an encoder
            ext = attention_mask[:, None, None, :]
            ext = ext.to(dtype=self.dtype)
            return (1.0 - ext) * -10000.0

        def get_head_mask(self, head_mask, num_hidden_layers, is_attention_chunked=False):
            assert head_mask is None
            return [None] * num_hidden_layers

    tr.BertConfig = Config
    tr.PreTrainedModel = PreTrainedModel
    tr.BertPreTrainedModel = PreTrainedModel
    outputs = types.ModuleType('transformers.modeling_outputs')
    outputs.BaseModelOutputWithPooling = outputs.BaseModelOutput = outputs.SequenceClassifierOutput = dict
    utils = types.ModuleType('transformers.utils')
    utils.__path__ = []
    logging = types.ModuleType('transformers.utils.logging')
    logging.get_logger = lambda *a, **k: None
    utils.logging = logging
    sys.modules.update({'transformers': tr, 'transformers.modeling_outputs': outputs, 'transformers.utils': utils,
                        'transformers.utils.logging': logging})
    gensim = types.ModuleType('gensim')
    gensim.__path__ = []
    gmodels = types.ModuleType('gensim.models')
    gmodels.KeyedVectors = object
    gensim.models = gmodels
    sys.modules.update({'gensim': gensim, 'gensim.models': gmodels})
    return Config


def import_official(te):
    tmp = Path(tempfile.mkdtemp(prefix='te-official-bert-'))
    for d in ('BERT_explainability', 'BERT_rationale_benchmark'):
        shutil.copytree(Path(te) / d, tmp / d)
    sys.path.insert(0, str(tmp))
    Config = transformers_stand_in()
    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU run: .cuda() is the identity
    from BERT_explainability.modules.BERT import BERT_cls_lrp, BertForSequenceClassification
    from BERT_explainability.modules.BERT.ExplanationGenerator import Generator
    return Config, BertForSequenceClassification.BertForSequenceClassification, \
        BERT_cls_lrp.BertForSequenceClassification, Generator


def build_models(c, sd, official):
    Config, Ours, OrigLrp, _ = official
    cfg = Config(**hf_config(c))
    state = {k: torch.from_numpy(v.copy()) for k, v in sd.items()}
    models = {}
    for name, cls in (('ours', Ours), ('orig_lrp', OrigLrp)):
        m = cls(cfg)
        missing = set(m.state_dict()) - set(state) - {'bert.embeddings.position_ids'}
        assert not missing and not (set(state) - set(m.state_dict())), (missing, set(state) - set(m.state_dict()))
        m.load_state_dict(state, strict=False)  # strict but for the position_ids buffer (checked above)
        m.eval()
        models[name] = m
    return models


def run_case(c, models, Generator, ids, mask, other):
    """Every output for one sequence in the models' dtype: {name: array}."""
    L = c['layers']
    inp = torch.tensor([ids], dtype=torch.int64)
    att = torch.tensor([mask], dtype=torch.int64)
    ours, orig = Generator(models['ours']), Generator(models['orig_lrp'])
    kw = dict(input_ids=inp, attention_mask=att)
    out = {}
    logits = models['ours'](**kw)[0].detach().numpy().copy()
    logits_orig = models['orig_lrp'](**kw)[0].detach().numpy().copy()
    out['logits'], out['logits.orig_lrp'] = logits, logits_orig
    for t, index in (('pred', None), ('other', other)):
        for s in (0, L - 1):
            out['ours.generate_LRP.start_layer%d.%s' % (s, t)] = ours.generate_LRP(**kw, index=index, start_layer=s)
        out['orig_lrp.generate_LRP_last_layer.%s' % t] = orig.generate_LRP_last_layer(**kw, index=index)
        out['orig_lrp.generate_full_lrp.%s' % t] = orig.generate_full_lrp(**kw, index=index)
        out['orig_lrp.generate_attn_gradcam.%s' % t] = orig.generate_attn_gradcam(**kw, index=index)
        orig.generate_LRP(**kw, index=index, start_layer=0)
        blocks = models['orig_lrp'].bert.encoder.layer
        probs = [b.attention.self.get_attn().detach().numpy().copy() for b in blocks]
        grads = [b.attention.self.get_attn_gradients().detach().numpy().copy() for b in blocks]
        dtype = torch.float64 if probs[0].dtype == np.float64 else torch.float32
        out['generic_attention.%s' % t] = generic.generic_relevance(probs, grads, dtype)
    out['orig_lrp.generate_attn_last_layer'] = orig.generate_attn_last_layer(**kw)
    out['orig_lrp.generate_rollout.start_layer0'] = orig.generate_rollout(**kw, start_layer=0)
    return {k: (v.detach().numpy().copy() if torch.is_tensor(v) else v) for k, v in out.items()}


CALLS = {
    'ours.generate_LRP.start_layer0': 'Generator(ours).generate_LRP(input_ids, attention_mask, index=INDEX, '
                                      'start_layer=0)',
    'ours.generate_LRP.start_layerLAST': 'Generator(ours).generate_LRP(input_ids, attention_mask, index=INDEX, '
                                         'start_layer=layers-1)',
    'orig_lrp.generate_LRP_last_layer': 'Generator(orig_lrp).generate_LRP_last_layer(input_ids, attention_mask, '
                                        'index=INDEX)',
    'orig_lrp.generate_full_lrp': 'Generator(orig_lrp).generate_full_lrp(input_ids, attention_mask, index=INDEX)',
    'orig_lrp.generate_attn_gradcam': 'Generator(orig_lrp).generate_attn_gradcam(input_ids, attention_mask, '
                                      'index=INDEX)',
    'generic_attention': 'generic_relevance(get_attn(), get_attn_gradients() of every orig_lrp layer right after '
                         'Generator(orig_lrp).generate_LRP(input_ids, attention_mask, index=INDEX, start_layer=0))',
    'orig_lrp.generate_attn_last_layer': 'Generator(orig_lrp).generate_attn_last_layer(input_ids, attention_mask)',
    'orig_lrp.generate_rollout.start_layer0': 'Generator(orig_lrp).generate_rollout(input_ids, attention_mask, '
                                              'start_layer=0)',
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--te', required=True, help='extracted official checkout (git archive of commit c3e578f)')
    ap.add_argument('--out', required=True, help='output folder (bert/ of a golden tree)')
    args = ap.parse_args()
    official = import_official(args.te)
    Generator = official[3]
    for c in CONFIGS:
        out = Path(args.out) / c['name']
        out.mkdir(parents=True, exist_ok=True)
        sd, checks = formula_weights(c)
        m32 = build_models(c, sd, official)
        m64 = {k: copy.deepcopy(m).double() for k, m in m32.items()}
        tensors, sequences, problems = {}, [], []
        for name, length, real, id_seed in c['sequences']:
            # The first of id_seed, id_seed + 1000, ... whose sequence passes the checks: every output finite and
            # not all zeros in both precisions (attn_gradcam is 0/0 when every head's mean gradient is negative, and
            # its CLS row, or partial LRP's, can be all zeros after the clamp: a weak case), top-2 margin of
            # the float32 logits >= 0.05 and the same argmax in float64.
            rejected = []
            for attempt in range(20):
                seed = id_seed + 1000 * attempt
                ids, mask = token_ids(c, length, real, seed)
                # The predicted class first (for `other`), from the float32 ours model, as index=None would.
                lg = m32['ours'](input_ids=torch.tensor([ids]), attention_mask=torch.tensor([mask]))[0]
                lg = lg.detach().numpy()
                pred = int(np.argmax(lg[0]))
                other = (pred + 1) % c['labels']
                r32 = run_case(c, m32, Generator, ids, mask, other)
                r64 = run_case(c, m64, Generator, ids, mask, other)
                why = [k for r in (r32, r64) for k, v in r.items() if not np.all(np.isfinite(v))]
                why += ['%s is all zeros' % k for r in (r32, r64) for k, v in r.items() if not np.any(v)]
                srt = np.sort(lg[0])[::-1]
                if srt[0] - srt[1] < 0.05:
                    why.append('top-2 margin %.4f < 0.05' % (srt[0] - srt[1]))
                why += ['float64 %s argmax differs' % k for k in ('logits', 'logits.orig_lrp')
                        if int(np.argmax(r64[k][0])) != pred]
                if not why:
                    break
                rejected.append({'id_seed': seed, 'why': sorted(set(why))})
                print('  %s/%s: id seed %d rejected: %s' % (c['name'], name, seed, sorted(set(why))), flush=True)
            tensors['%s.input_ids' % name] = np.array([ids], dtype=np.int64)
            tensors['%s.attention_mask' % name] = np.array([mask], dtype=np.int64)
            errors = {}
            for k in r32:
                a, b = r32[k], r64[k]
                assert a.dtype == np.float32 and b.dtype == np.float64, (k, a.dtype, b.dtype)
                tensors['%s.%s' % (name, k)] = a
                tensors['%s.%s_f64' % (name, k)] = b
                if not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)):
                    problems.append('%s.%s not finite' % (name, k))
                scale = float(np.abs(b).max())
                errors[k] = float(np.abs(a.astype(np.float64) - b).max() / scale) if scale > 0 else 0.0
            # The float32 noise scale of each output: the official float32 calls on models whose every weight is
            # moved by one ulp up or down (numpy default_rng(id seed), 4 draws), max|x - f64| / max|f64| over the
            # draws. What another float32 implementation of the same model may differ by, where the official float32
            # run itself shares the float64 twin's operation order.
            rng = np.random.default_rng(seed)
            noise = {}
            for _ in range(ULP_DRAWS):
                sdp = {k: np.nextafter(v, np.where(rng.random(v.shape) < 0.5, -np.inf, np.inf).astype(np.float32))
                       for k, v in sd.items()}
                rp = run_case(c, build_models(c, sdp, official), Generator, ids, mask, other)
                for k in rp:
                    scale = float(np.abs(r64[k]).max())
                    d = float(np.abs(rp[k].astype(np.float64) - r64[k]).max() / scale) if scale > 0 else 0.0
                    noise[k] = max(noise.get(k, 0.0), d)
            if rejected and len(rejected) == 20:
                problems.append('%s: no id seed passed the checks' % name)
            sequences.append({
                'name': name, 'input_ids': ids, 'attention_mask': mask, 'length': length, 'padding': length - real,
                'id_seed': seed, **({'id_seeds_rejected': rejected} if rejected else {}), 'logits': [float(x) for x in r32['logits'][0]],
                'logits_f64': [float(x) for x in r64['logits'][0]], 'predicted_class': pred, 'other_class': other,
                'top2_margin': float(srt[0] - srt[1]), 'f32_vs_f64_max_abs_diff_over_max_abs': errors,
                'ulp_noise_vs_f64_max_abs_diff_over_max_abs': noise})
            print('%s/%s: pred %d other %d; f32 vs f64 %s' % (
                c['name'], name, pred, other, {k: '%.1e' % v for k, v in errors.items()}), flush=True)
        last = c['layers'] - 1
        meta = {
            'name': c['name'], 'config': hf_config(c),
            'special_token_ids': {'[PAD]': PAD, '[CLS]': CLS, '[SEP]': SEP},
            'sequences': sequences, 'targets': {'pred': 'index=None (the generator\'s argmax)',
                                                'other': 'index=other_class = (predicted_class + 1) % num_labels'},
            'start_layer_last': last,
            'calls': {k.replace('LAST', str(last)): v.replace('layers-1', str(last)) for k, v in CALLS.items()},
            'ulp_noise': 'sequences[].ulp_noise_vs_f64_max_abs_diff_over_max_abs: per output, the largest max|x - '
                         'f64| / max|f64| of the same float32 calls on %d copies of the float32 models with every '
                         'weight moved one ulp up or down at random (numpy default_rng(id_seed), np.nextafter): the '
                         'spread a float32 implementation with other rounding may show' % ULP_DRAWS,
            'tensor_names': '<seq>.<call key>[.<target>] (float32, [1, L] as returned), <...>_f64 the same call on '
                            'the float64 models (copy.deepcopy(model).double(); input_ids / attention_mask int64, '
                            'the extended mask built in float64 from the model dtype); <seq>.logits = '
                            'ours(input_ids, attention_mask)[0], <seq>.logits.orig_lrp the same for orig_lrp',
            'weights': {
                'stored': False, 'dtype': 'F32', 'seed': c['seed'],
                'formula': {
                    'hash': 'mix32(x) = lowbias32: x ^= x>>16; x = x*0x7feb352d mod 2^32; x ^= x>>15; '
                            'x = x*0x846ca68b mod 2^32; x ^= x>>16',
                    'element': 'h = mix32((i + mix32((t + mix32(seed)) mod 2^32)) mod 2^32); u = (h - 2^31) / 2^31; '
                               'w = float32(base + amp * u) (float64 multiply and add, one rounding). i: element '
                               'index in C order, t: tensor index in the order of `tensors`',
                    'kinds': 'word_embeddings amp sqrt(3); position_embeddings 0.5*sqrt(3); token_type_embeddings '
                             '0.3*sqrt(3); LayerNorm weight base 1 amp 0.1*sqrt(3); every bias (LayerNorm too) '
                             '0.1*sqrt(3); Linear weights 1.2*sqrt(3/in_features)',
                    'implementations': ['scripts/golden/make-bert-geometries.py', 'test/helpers/formula-weights.ts']},
                'tensors': checks,
                'loaded_into': ['BERT_explainability/modules/BERT/BertForSequenceClassification.py (ours)',
                                'BERT_explainability/modules/BERT/BERT_cls_lrp.py (orig_lrp)']},
            'stand_ins': 'transformers 3.5.1 stand-in and gensim stub as described in the generator\'s docstring; '
                         '.cuda() the identity',
            'generator': 'scripts/golden/make-bert-geometries.py (bench repository)',
            'env': {'reference_commit': REF_COMMIT, 'torch': torch.__version__, 'numpy': np.__version__,
                    'python': sys.version.split()[0], 'torch_num_threads': torch.get_num_threads(),
                    'OPENBLAS_NUM_THREADS': os.environ.get('OPENBLAS_NUM_THREADS')},
            'tensors': {k: {'dtype': str(v.dtype), 'shape': list(v.shape)} for k, v in sorted(tensors.items())},
        }
        if problems:
            meta['problems'] = problems
            print('%s: PROBLEMS %s' % (c['name'], problems), flush=True)
        (out / 'config.json').write_text(json.dumps(hf_config(c), indent=2, sort_keys=True) + '\n')
        (out / 'meta.json').write_text(json.dumps(meta, indent=1) + '\n')
        write_safetensors(out / 'outputs.safetensors', tensors,
                          {'config': c['name'], 'generator': 'make-bert-geometries.py'})


if __name__ == '__main__':
    main()
