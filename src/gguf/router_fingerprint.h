// What tells two models of the same shape apart: a hash of the router weights of the first MoE
// layer. Quantization leaves routers in F32 (llama-quantize never quantizes ffn_gate_inp, and
// the converters write it as F32), so statistics profiled on a Q8_0 file match the F16 file of
// the same model, while another model of the same shape (other weights) does not.
#pragma once

#include "gguf/gguf_file.h"
#include "gguf/moe_layout.h"

#include <string>

namespace reap {

// 16 hex digits of FNV-1a over the first regular MoE layer's ffn_gate_inp.weight, or "" when
// that tensor is missing or not F32 (then nothing is compared).
std::string router_fingerprint(const GgufFile & f, const MoeLayout & layout);

// Per regular MoE layer, the L2 norm of each router row (ffn_gate_inp.weight, dequantized through
// ggml's type traits when it is not F32). Unlike the hash it survives a change of format (GGUF
// F32 vs Hugging Face BF16) and still tells another model or another expert order apart.
RouterNorms router_row_norms(const GgufFile & f, const MoeLayout & layout);

// layout.shape() with router_fingerprint and router_norms filled in: the model as the same-model checks see it.
MoeShape model_shape(const GgufFile & f, const MoeLayout & layout);

}  // namespace reap
