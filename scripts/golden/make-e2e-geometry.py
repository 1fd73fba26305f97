#!/usr/bin/env python3
"""End-to-end goldens for a held-out ViT geometry (default G2 of make-vit-geometries.py): the official
segmentation script (imagenet_seg_eval.py) and the official explanation export + perturbation test
(generate_visualizations.py, pertubation_eval_from_hdf5.py) of hila-chefer/Transformer-Explainability (commit
c3e578f), run unchanged as __main__ on the inputs of e2e/seg_S1 and e2e/perturb_S1, with the geometry's model in
place of ViT-B, once in float32 and once in float64.

Each script invocation runs in its own process (this file with --child), from a fresh copy of the official
checkout (the scripts write next to themselves). Redirected, as for seg_S1 / perturb_S1:
- `vit_base_patch16_224(pretrained=True)` of ViT_new, ViT_LRP and ViT_orig_LRP returns the geometry's model of that
  file (ViT_new with final LayerNorm eps 1e-6, as its vit_base_patch16_224 builds it), state dict loaded with
  strict=True from the formula weights of make-vit-geometries.py;
- `.cuda()` is the identity; einops.rearrange, cv2, skimage and matplotlib are shims (einops: the four patterns
  of the model files; the others are imported but not used on the paths that run);
- torchvision.datasets.ImageNet accepts and ignores download=False (torchvision 0.8 behaviour);
- float64 only: torch.set_default_dtype(torch.float64) before the script runs (forked workers inherit it), the
  three models .double() (exact), a forward pre-hook on each checks every floating input is float64, and
  generate_visualizations.py's HDF5 'vis' and 'image' datasets are created float64 instead of np.float32.

Usage:
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/golden/make-e2e-geometry.py --te /tmp/te \\
      --mat <seg_S1>/gtsegs_ijcv_e2e_S1.mat --imagenet-val <perturb_S1>/imagenet_val --out <golden>/e2e
writes <out>/seg_G2/{results.json,results_f64.json} and <out>/perturb_G2/{results.json,results_f64.json}.
"""

import argparse
import importlib.util
import json
import os
import platform
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve()
REF_COMMIT = 'c3e578f76b954e8528afeaaee26de3f07e3fe559'
SEG_METHODS = ['rollout', 'transformer_attribution', 'full_lrp', 'lrp_last_layer', 'attn_last_layer', 'attn_gradcam']
# generate_visualizations.py's 'lrp' is transformer_attribution bit for bit (perturb_S1 README), so it is left out.
PERT_METHODS = SEG_METHODS
STEPS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def geometries():
    spec = importlib.util.spec_from_file_location('make_vit_geometries', HERE.parent / 'make-vit-geometries.py')
    mod = importlib.util.module_from_spec(spec)
    argv, sys.argv = sys.argv, [sys.argv[0]]
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.argv = argv
    return mod


# ------------------------------------------------------------------------------------------ child process

def noop_attr(attr):
    if attr.startswith('__'):
        raise AttributeError(attr)
    return lambda *a, **k: None


def install_shims(f64):
    import numpy as np
    import torch
    torch.set_num_threads(1)
    if f64:
        torch.set_default_dtype(torch.float64)
    for name in ('cv2', 'skimage', 'skimage.io', 'skimage.feature', 'skimage.filters', 'matplotlib',
                 'matplotlib.cm', 'matplotlib.pyplot'):
        try:
            __import__(name)
        except ImportError:
            m = types.ModuleType(name)
            m.__getattr__ = noop_attr  # any function: a no-op
            sys.modules[name] = m
    sys.modules['matplotlib'].cm = sys.modules['matplotlib.cm']
    sys.modules['matplotlib'].pyplot = sys.modules['matplotlib.pyplot']
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    import torchvision.datasets

    class ImageNet(torchvision.datasets.ImageNet):
        def __init__(self, root, split='train', download=None, **kwargs):
            if download is not None:
                import warnings
                warnings.warn('download ignored (torchvision 0.8 behaviour)')
            super().__init__(root, split=split, **kwargs)

    torchvision.datasets.ImageNet = ImageNet
    if f64:
        import h5py
        orig = h5py.Group.create_dataset

        def create_dataset(self, name, *a, dtype=None, **k):
            if dtype is np.float32:
                dtype = np.float64
            return orig(self, name, *a, dtype=dtype, **k)

        h5py.Group.create_dataset = create_dataset


def patch_models(cfg, weights, f64):
    from functools import partial

    import torch
    import torch.nn as nn
    import ViT_LRP
    import ViT_new
    import ViT_orig_LRP
    geo = geometries()
    c = next(x for x in geo.CONFIGS if x['name'] == cfg['name'])
    sd, _ = geo.formula_weights(c)
    state = {k: torch.from_numpy(v.copy()) for k, v in sd.items()}
    kw = dict(img_size=224, patch_size=16, in_chans=3, num_classes=cfg['classes'], embed_dim=cfg['dim'],
              depth=cfg['depth'], num_heads=cfg['heads'], mlp_ratio=4, qkv_bias=cfg['qkv_bias'])

    def check64(module, inputs):
        for t in inputs:
            if torch.is_tensor(t) and t.is_floating_point():
                assert t.dtype == torch.float64, t.dtype

    def factory(mod, extra):
        def vit_base_patch16_224(pretrained=False, **kwargs):
            assert pretrained
            with torch.no_grad():
                m = mod.VisionTransformer(**kw, **extra)
            m.load_state_dict(state, strict=True)
            if f64:
                m.double()
                m.register_forward_pre_hook(check64)
            return m
        return vit_base_patch16_224

    ViT_new.vit_base_patch16_224 = factory(ViT_new, dict(norm_layer=partial(nn.LayerNorm, eps=1e-6)))
    ViT_LRP.vit_base_patch16_224 = factory(ViT_LRP, {})
    ViT_orig_LRP.vit_base_patch16_224 = factory(ViT_orig_LRP, {})


def finite(d):
    """NaN (a constant GradCAM map is 0/0) as null: JSON has no NaN."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}


def child(a):
    f64 = a.prec == 'f64'
    work = Path(a.work)
    script_dir = work / 'baselines' / 'ViT'
    sys.path[:0] = [str(script_dir), str(work), str(HERE.parent)]
    install_shims(f64)
    cfg = json.loads(a.cfg)
    patch_models(cfg, a.weights, f64)
    argv = json.loads(a.argv)
    sys.argv = [str(script_dir / a.script)] + argv
    t0 = time.time()
    os.chdir(work)
    out = {'argv': [os.path.basename(x) if os.path.isabs(x) else x for x in argv]}
    try:
        g = runpy.run_path(str(script_dir / a.script), run_name='__main__')
    except UnboundLocalError as e:  # recorded: --method lrp of the seg script has no branch
        out['error'] = '%s: %s' % (type(e).__name__, e)
        Path(a.result).write_text(json.dumps(out))
        return
    import numpy as np
    if a.script == 'imagenet_seg_eval.py':
        out.update(pixAcc=float(g['pixAcc']), mIoU=float(g['mIoU']), mAP=float(g['mAp']), mF1_rowwise=float(g['mF1']),
                   IoU_bg_fg=[float(x) for x in g['IoU']], total_correct=int(g['total_correct']),
                   total_label=int(g['total_label']), total_inter_bg_fg=[int(x) for x in g['total_inter']],
                   total_union_bg_fg=[int(x) for x in g['total_union']],
                   per_image_ap=[float(x) for x in g['total_ap']],
                   experiment_dir=os.path.relpath(g['saver'].experiment_dir, work))
    elif a.script == 'pertubation_eval_from_hdf5.py':
        d = g['args'].experiment_dir
        mh = np.load(os.path.join(d, 'model_hits.npy'))
        ph = np.load(os.path.join(d, 'perturbations_hits.npy'))
        out.update(experiment_dir=os.path.relpath(d, script_dir), model_hits=[int(x) for x in mh],
                   perturbations_hits=[[int(x) for x in r] for r in ph])
    elif a.script == 'generate_visualizations.py':
        import h5py
        f = h5py.File(os.path.join(g['args'].method_dir, 'results.hdf5'), 'r')
        vis = f['vis'][:]
        out.update(vis_dtype=str(vis.dtype), target=[int(x) for x in f['target'][:]],
                   per_image=[finite(dict(vis_nan=int(np.isnan(v).sum()), vis_min=float(v.min()), vis_max=float(v.max()),
                                          vis_mean=float(v.astype(np.float64).mean()),
                                          vis_argmax_flat=int(v.reshape(-1).argmax()))) for v in vis])
    out['wall_s'] = round(time.time() - t0, 1)
    Path(a.result).write_text(json.dumps(out))


# ------------------------------------------------------------------------------------------ driver

def run_child(work, prec, script, argv, cfg, weights, result):
    env = dict(os.environ, OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    cmd = [sys.executable, str(HERE), '--child', '--work', str(work), '--prec', prec, '--script', script,
           '--argv', json.dumps(argv), '--cfg', json.dumps(cfg), '--weights', str(weights), '--result', str(result)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit('%s %s %s failed:\n%s' % (prec, script, argv, r.stderr[-4000:]))
    return json.loads(Path(result).read_text())


def auc_from_counts(c, n):
    return 100 * 0.1 * (c[0] / 2 + sum(c[1:9]) + c[9] / 2) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--child', action='store_true')
    for k in ('work', 'prec', 'script', 'argv', 'cfg', 'weights', 'result'):
        ap.add_argument('--' + k)
    ap.add_argument('--te', help='extracted official checkout (commit c3e578f)')
    ap.add_argument('--mat', help='gtsegs_ijcv_e2e_S1.mat of e2e/seg_S1')
    ap.add_argument('--imagenet-val', help='imagenet_val folder of e2e/perturb_S1')
    ap.add_argument('--config', default='G2')
    ap.add_argument('--out', help='output folder (e2e/ of a golden tree)')
    ap.add_argument('--keep', help='keep the work folders here')
    a = ap.parse_args()
    if a.child:
        return child(a)
    geo = geometries()
    c = next(x for x in geo.CONFIGS if x['name'] == a.config)
    cfg = {k: c[k] for k in ('name', 'depth', 'heads', 'dim', 'qkv_bias', 'classes')}
    root = Path(a.keep or tempfile.mkdtemp(prefix='e2e-geometry-'))
    root.mkdir(parents=True, exist_ok=True)
    sd, _ = geo.formula_weights(c)
    weights = root / 'weights.safetensors'
    geo.write_safetensors(weights, sd, {'format': 'pt', 'generator': 'make-vit-geometries.py'})
    mat = Path(a.mat).resolve()
    # The perturbation script gathers the probability of the folder label (torch.gather(probs, 1, target)), so a
    # label the model has no logit for (>= classes) crashes it. The folder of the geometry's run is the S1 folder's
    # first `classes` wnids in sorted order (ImageFolder's label = position in that order, so every label is kept),
    # with the same meta.bin; the other wnids' images are left out.
    src = Path(a.imagenet_val).resolve()
    val = root / 'imagenet_val'
    if val.exists():
        shutil.rmtree(val)
    (val / 'val').mkdir(parents=True)
    shutil.copy(src / 'meta.bin', val / 'meta.bin')
    wnids = sorted(p.name for p in (src / 'val').iterdir() if p.is_dir())[:c['classes']]
    for w in wnids:
        shutil.copytree(src / 'val' / w, val / 'val' / w)
    import numpy as np
    import torch
    env = dict(python=platform.python_version(), torch=torch.__version__, numpy=np.__version__,
               platform=platform.platform(), threads=1)
    seg, pert = {}, {}
    for prec in ('f32', 'f64'):
        work = root / prec
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(a.te, work, ignore=shutil.ignore_patterns('*.ipynb', '*.PNG', '*.jpg', 'BERT*', '.git'))
        (work / 'einops.py').write_text(geo.EINOPS_SOURCE)  # also for the spawned DataLoader workers
        res = {}
        for m in ['lrp'] + SEG_METHODS:
            t0 = time.time()
            res[m] = run_child(work, prec, 'imagenet_seg_eval.py', ['--method', m, '--imagenet-seg-path', str(mat)],
                               cfg, weights, root / ('seg-%s-%s.json' % (prec, m)))
            res[m]['status'] = 'error' if 'error' in res[m] else 'ok'
            print(prec, 'seg', m, res[m].get('error') or (res[m]['pixAcc'], res[m]['mIoU'], res[m]['mAP']),
                  '%.0f s' % (time.time() - t0), flush=True)
        seg[prec] = res
        vis, runs = {}, {}
        for m in PERT_METHODS:
            t0 = time.time()
            vis[m + '/top'] = run_child(work, prec, 'generate_visualizations.py',
                                        ['--method', m, '--vis-class', 'top', '--imagenet-validation-path', str(val)],
                                        cfg, weights, root / ('vis-%s-%s.json' % (prec, m)))
            for short, extra in (('neg', []), ('pos', ['--neg', ''])):
                r = run_child(work, prec, 'pertubation_eval_from_hdf5.py', ['--method', m, '--vis-class', 'top'] + extra,
                              cfg, weights, root / ('pert-%s-%s-%s.json' % (prec, m, short)))
                n = len(r['model_hits'])
                counts = [sum(r['model_hits'])] + [sum(h) for h in r['perturbations_hits']]
                y = [sum(r['model_hits']) / n] + [np.mean(h) for h in r['perturbations_hits']]
                r.update(method=m, vis_class='top', perturbation='negative' if short == 'neg' else 'positive',
                         n_images=n, steps=STEPS, accuracy_unperturbed=counts[0] / n,
                         accuracy_per_step=[x / n for x in counts[1:]], correct_counts=counts,
                         auc=float(100 * np.trapz(y, [0.0] + STEPS)),
                         auc_from_counts='%.12f' % auc_from_counts(counts, n))
                runs['%s.top.%s' % (m, short)] = r
            print(prec, 'perturb', m, runs[m + '.top.neg']['correct_counts'], runs[m + '.top.pos']['correct_counts'],
                  '%.0f s' % (time.time() - t0), flush=True)
        pert[prec] = dict(visualizations=vis, perturbation=runs)

    common = dict(config=a.config, model_config=c, reference=dict(repo='hila-chefer/Transformer-Explainability',
                                                                   commit=REF_COMMIT), env=env)
    note64 = ('float64 twin of results.json, made as e2e/seg_S1 and e2e/perturb_S1 made theirs: '
              'torch.set_default_dtype(torch.float64) in every process before the script ran (the export\'s forked '
              'DataLoader workers inherit it; the perturbation script\'s spawned workers only read the HDF5 arrays, '
              'which keep their float64 dtype), the three model files loaded strictly from the same float32 weights and converted with '
              '.double() (exact), a forward pre-hook on each checking every floating input is float64, and '
              "generate_visualizations.py's 'vis' and 'image' HDF5 datasets created float64 instead of np.float32.")
    for prec in ('f32', 'f64'):
        name = 'results.json' if prec == 'f32' else 'results_f64.json'
        extra = {} if prec == 'f32' else dict(precision='float64', precision_note=note64)
        out = Path(a.out) / ('seg_' + a.config)
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(dict(common, **extra, command='imagenet_seg_eval.py --method <M> '
                                                '--imagenet-seg-path gtsegs_ijcv_e2e_S1.mat',
                                                data_file='e2e/seg_S1/gtsegs_ijcv_e2e_S1.mat',
                                                results=seg[prec]), indent=1) + '\n')
        out = Path(a.out) / ('perturb_' + a.config)
        out.mkdir(parents=True, exist_ok=True)
        p = pert[prec]
        auc_table = {m: {'top': {'negative': p['perturbation'][m + '.top.neg']['auc'],
                                 'positive': p['perturbation'][m + '.top.pos']['auc']}} for m in PERT_METHODS}
        (out / name).write_text(json.dumps(dict(
            common, **extra, commands=['generate_visualizations.py --method <M> --vis-class top '
                                       '--imagenet-validation-path imagenet_val',
                                       'pertubation_eval_from_hdf5.py --method <M> --vis-class top',
                                       "pertubation_eval_from_hdf5.py --method <M> --vis-class top --neg ''"],
            dataset='e2e/perturb_S1/imagenet_val, only val/<wnid> of its first %d wnids in sorted order (labels 0..%d): %s'
            % (c['classes'], c['classes'] - 1, ', '.join(wnids)), auc_table=auc_table, **p), indent=1) + '\n')
    print('wrote', a.out)


if __name__ == '__main__':
    main()
