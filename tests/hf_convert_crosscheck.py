#!/usr/bin/env python3
"""Optional cross-check of `reap synth --hf-out` against llama.cpp's own converter: converts the
HF folder with convert_hf_to_gguf's model class (vocabulary step skipped: synth folders carry no
tokenizer) to an F32 GGUF and compares every tensor with the synth GGUF it was exported from
(dequantized), within BF16 rounding. Same names, same shapes, same values: the HF names, the
layouts and the expert order are what the converter reads. Exit 77 (skip) without torch.

    tests/hf_convert_crosscheck.py LLAMA_SRC HF_DIR SYNTH.gguf WORK_DIR
"""
import sys
from pathlib import Path

try:
    import numpy as np
    import torch  # noqa: F401  (the converter needs it)
except ImportError:
    sys.exit(77)

src, hf, ref_path, work = sys.argv[1:5]
# Older torch builds lack the float8 dtypes the converter names in its tables; synth folders hold
# none, so placeholders that compare unequal to every real dtype are enough.
for _name in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float8_e4m3fnuz", "float8_e5m2fnuz"):
    if not hasattr(torch, _name):
        setattr(torch, _name, type(_name, (), {})())
sys.path.insert(0, src)
sys.path.insert(0, src + "/gguf-py")
try:
    import transformers  # noqa: F401
except ImportError:  # the converter imports AutoConfig at load time; a local config.json needs none
    import types

    stub = types.ModuleType("transformers")

    class AutoConfig:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            raise ImportError("transformers is not installed")

    stub.AutoConfig = AutoConfig
    sys.modules["transformers"] = stub
try:
    import tqdm  # noqa: F401
except ImportError:  # the GGUF writer's progress bar
    import types

    class _Bar:
        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    sys.modules["tqdm"] = types.ModuleType("tqdm")
    sys.modules["tqdm"].tqdm = _Bar
import gguf  # noqa: E402
from gguf.quants import dequantize  # noqa: E402
from conversion import ModelBase, ModelType, get_model_architecture, get_model_class  # noqa: E402
import logging  # noqa: E402

logging.disable(logging.WARNING)
hparams = ModelBase.load_hparams(Path(hf), False)
cls = get_model_class(get_model_architecture(hparams, ModelType.TEXT), mmproj=False)
cls.set_vocab = lambda self: None
out = Path(work) / "converted.gguf"
with torch.inference_mode():
    m = cls(Path(hf), gguf.LlamaFileType.ALL_F32, out, eager=True)
    m.write()

conv = {t.name: t for t in gguf.GGUFReader(out).tensors}
ref = gguf.GGUFReader(ref_path)
bad = 0
for t in ref.tensors:
    if t.name not in conv:
        print(f"{t.name}: missing from the converted GGUF")
        bad += 1
        continue
    a = dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float32)
    c = conv[t.name]
    b = np.asarray(c.data, dtype=np.float32).reshape(-1)
    if list(t.shape) != list(c.shape) or a.shape != b.shape:
        print(f"{t.name}: shape {list(t.shape)} vs {list(c.shape)}")
        bad += 1
        continue
    tol = np.abs(a) / 128 + 1e-30
    if t.name.endswith("ssm_a"):
        tol = np.abs(a) / 64 + 1e-6  # A = -exp(A_log): BF16 rounding of A_log, amplified by exp
    if not np.all(np.abs(a - b) <= tol):
        i = int(np.argmax(np.abs(a - b) - tol))
        print(f"{t.name}: value {i}: {a[i]} vs {b[i]}")
        bad += 1
print(f"{ref_path}: {len(ref.tensors)} tensors compared, {bad} differ")
sys.exit(1 if bad else 0)
