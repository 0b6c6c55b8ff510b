"""A small byte-level BPE vocabulary (GPT-2 style) and tokenization by llama.cpp itself.

The merges are learned here, but every token id the trainer sees comes from llama.cpp's own
tokenizer (llama_tokenize through ctypes on libllama.so, loading the vocabulary from a
vocabulary-only GGUF written with gguf-py). So the exported model and llama.cpp agree on the
tokens by construction; verify() additionally checks round trips.
"""
import collections
import ctypes
import os
import re

import numpy as np

LLAMA_PREFIX = os.environ.get(
    "LLAMA_PREFIX", "/root/.cache/reap.cpp/llama.cpp/node-llama-cpp-3.22.1-36a9e7f1/install")

EOT = "<|endoftext|>"
# An approximation of llama.cpp's GPT-2 pre-tokenizer, used only to learn the merges.
_PRE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def learn_merges(texts, n_merges, max_words=40000):
    """Classic BPE over pre-tokenized words (the most frequent `max_words`), incremental pair
    counts. Returns a list of (a, b) pairs of token strings in the byte-to-unicode alphabet."""
    b2u = bytes_to_unicode()
    freq = collections.Counter()
    for t in texts:
        freq.update(_PRE.findall(t))
    words = [([b2u[b] for b in w.encode("utf-8")], c) for w, c in freq.most_common(max_words)]
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, (w, c) in enumerate(words):
        for a, b in zip(w, w[1:]):
            pairs[(a, b)] += c
            where[(a, b)].add(i)
    merges = []
    for _ in range(n_merges):
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        for i in list(where[best]):
            w, c = words[i]
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] -= c
                if pairs[(a, b)] <= 0:
                    del pairs[(a, b)]
                where[(a, b)].discard(i)
            nw, k = [], 0
            while k < len(w):
                if k + 1 < len(w) and (w[k], w[k + 1]) == best:
                    nw.append(w[k] + w[k + 1])
                    k += 2
                else:
                    nw.append(w[k])
                    k += 1
            words[i] = (nw, c)
            for a, b in zip(nw, nw[1:]):
                pairs[(a, b)] += c
                where[(a, b)].add(i)
        where.pop(best, None)
    return merges


def vocab_tokens(merges):
    """The token strings: 256 bytes, one per merge, then the end-of-text token."""
    b2u = bytes_to_unicode()
    toks = [b2u[b] for b in range(256)] + [a + b for a, b in merges] + [EOT]
    assert len(set(toks)) == len(toks), "duplicate tokens"
    return toks


def add_vocab(writer, merges):
    """Writes the tokenizer keys of the vocabulary into a gguf.GGUFWriter."""
    import gguf
    toks = vocab_tokens(merges)
    eot = len(toks) - 1
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(toks)
    writer.add_token_types([gguf.TokenType.NORMAL] * eot + [gguf.TokenType.CONTROL])
    writer.add_token_merges([a + " " + b for a, b in merges])
    writer.add_bos_token_id(eot)
    writer.add_eos_token_id(eot)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)


def write_vocab_gguf(path, merges):
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny-moe-vocab")
    w.add_vocab_size(len(vocab_tokens(merges)))
    # A vocab-only load still reads the architecture's hyperparameters.
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(64)
    w.add_head_count(1)
    w.add_layer_norm_rms_eps(1e-6)
    add_vocab(w, merges)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


class _ModelParams(ctypes.Structure):  # struct llama_model_params (include/llama.h, pinned llama.cpp)
    _fields_ = [("devices", ctypes.c_void_p), ("tensor_buft_overrides", ctypes.c_void_p),
                ("n_gpu_layers", ctypes.c_int32), ("split_mode", ctypes.c_int), ("load_mode", ctypes.c_int),
                ("lazy_mode", ctypes.c_int), ("main_gpu", ctypes.c_int32), ("tensor_split", ctypes.c_void_p),
                ("progress_callback", ctypes.c_void_p), ("progress_callback_user_data", ctypes.c_void_p),
                ("kv_overrides", ctypes.c_void_p), ("vocab_only", ctypes.c_bool), ("check_tensors", ctypes.c_bool),
                ("use_extra_bufts", ctypes.c_bool), ("no_host", ctypes.c_bool), ("no_alloc", ctypes.c_bool),
                ("load_mtp", ctypes.c_bool)]


class LlamaTokenizer:
    """llama.cpp's tokenizer for the vocabulary of a GGUF file (loaded vocabulary-only)."""

    def __init__(self, gguf_path):
        libdir = os.path.join(LLAMA_PREFIX, "lib")
        for dep in ("libggml-base.so", "libggml-cpu.so", "libggml.so"):  # no rpath in the install
            ctypes.CDLL(os.path.join(libdir, dep), mode=ctypes.RTLD_GLOBAL)
        lib = ctypes.CDLL(os.path.join(libdir, "libllama.so"))
        lib.llama_model_default_params.restype = _ModelParams
        lib.llama_model_load_from_file.restype = ctypes.c_void_p
        lib.llama_model_load_from_file.argtypes = [ctypes.c_char_p, _ModelParams]
        lib.llama_model_get_vocab.restype = ctypes.c_void_p
        lib.llama_model_get_vocab.argtypes = [ctypes.c_void_p]
        lib.llama_tokenize.restype = ctypes.c_int32
        lib.llama_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                       ctypes.POINTER(ctypes.c_int32), ctypes.c_int32, ctypes.c_bool, ctypes.c_bool]
        lib.llama_token_to_piece.restype = ctypes.c_int32
        lib.llama_token_to_piece.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_char_p, ctypes.c_int32,
                                             ctypes.c_int32, ctypes.c_bool]
        lib.llama_model_free.argtypes = [ctypes.c_void_p]
        lib.llama_backend_init()
        p = lib.llama_model_default_params()
        p.vocab_only = True
        self.lib = lib
        self.model = lib.llama_model_load_from_file(gguf_path.encode(), p)
        if not self.model:
            raise RuntimeError(f"{gguf_path}: llama.cpp could not load the vocabulary")
        self.vocab = lib.llama_model_get_vocab(self.model)

    def encode(self, text, add_special=True):
        b = text.encode("utf-8")
        n_max = len(b) + 16
        buf = (ctypes.c_int32 * n_max)()
        n = self.lib.llama_tokenize(self.vocab, b, len(b), buf, n_max, add_special, False)
        if n < 0:
            raise RuntimeError("llama_tokenize failed")
        return np.frombuffer(buf, dtype=np.int32, count=n).copy()

    def decode(self, ids):
        out = bytearray()
        buf = ctypes.create_string_buffer(256)
        for t in ids:
            n = self.lib.llama_token_to_piece(self.vocab, int(t), buf, 256, 0, False)
            out += buf.raw[:n]
        return out.decode("utf-8", "replace")

    def close(self):
        if self.model:
            self.lib.llama_model_free(self.model)
            self.model = None
