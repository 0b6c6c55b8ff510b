// The context size (-c) of profile and eval: llama.cpp's flag and meaning (0: the model's
// trained context), with a default that never runs a model past the context it was trained on.
#pragma once

#include <cstdint>
#include <string>

namespace reap {

// -c when the flag is not given: this, or the model's trained context when that is smaller.
inline constexpr int k_default_ctx_size = 512;
// What the option holds when -c is not given, and how --help shows that default.
inline constexpr int          k_ctx_size_not_given    = -1;
inline constexpr const char * k_ctx_size_default_text = "min(512, trained context)";

// The trained context of the GGUF model `model` (<arch>.context_length; 0 when the key is absent).
uint32_t trained_context(const std::string & model);

// -c resolved for `model`: not given (k_ctx_size_not_given) is min(512, trained context), 0 the
// trained context, any other value itself; one warning when it exceeds the trained context
// (positions past it are outside what the model learned: PPL rises, statistics drift).
// Other negative values are a usage error.
int resolve_ctx_size(int requested, const std::string & model);

}  // namespace reap
