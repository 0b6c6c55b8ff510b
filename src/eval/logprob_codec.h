// One position's log-probabilities over the whole vocabulary in 16 bits per entry, the form the
// base-logits file stores (after llama-perplexity's --kl-divergence-base): a row keeps the
// range [floor, top] of its log-probabilities in 65,535 even steps (codes 1..65535), where top
// is the largest log-probability and floor = max(smallest, top - k_logprob_range). Code 0 is an
// entry below the floor, read back as probability 0: with a range of 32 nats such an entry
// weighs at most e^-32 of the top one, so the KL divergence moves by far less than 1e-3 even
// over 151,936 entries, while one step is 32/65534 = 4.9e-4 nats. (An entry the model masks
// with -inf is code 0 too, so KL stays finite when the other model masks it as well.) Two
// things are kept exact: the top entry is the only one with the largest code (top-1 agreement
// is the same as on float32 rows), and the row carries the exact log-probability of the token
// that came next (the base's perplexity is unchanged).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace reap {

constexpr double   k_logprob_range = 32.0;
constexpr uint16_t k_top_code      = 65535;

struct QuantizedRow {
    // Stored as these three float32, then n_vocab uint16 codes: 2 * n_vocab + 12 bytes.
    float                 scale        = 0;  // nats per code step
    float                 floor        = 0;  // log-probability of code 1
    float                 next_logprob = 0;  // exact log-probability of the next token
    std::vector<uint16_t> codes;
};
constexpr size_t k_quantized_row_header = 3 * sizeof(float);

// `logprobs` (n values, from log_softmax) -> `out`; `next` is the token that came next.
void encode_logprob_row(const float * logprobs, size_t n, int32_t next, QuantizedRow & out);

// The log-probabilities back (n = row.codes.size() values), each within one step of the
// original and never above 0; -inf for an entry below the floor (code 0).
void decode_logprob_row(const QuantizedRow & row, std::vector<float> & out);

// Why a row read from an untrusted file cannot be a row encode_logprob_row wrote (non-finite or
// positive values, a range beyond k_logprob_range, no top code, a next-token log-probability
// its code contradicts); nullptr when it can. `next` is the token that came next.
const char * invalid_quantized_row(const QuantizedRow & row, int32_t next);

}  // namespace reap
