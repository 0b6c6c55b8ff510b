// One predicting position of the base model as the base-logits file keeps it, in 2 bytes per
// vocabulary entry: the log-probabilities quantized to 16 bits over at most the top 30 nats
// (a step of at most 4.6e-4; entries below that floor count as probability 0), plus the exact
// values KL, PPL and top-1 need most: sum p log p, log p(next token) and the argmax.
// On a 151,936-token vocabulary that is ~300 KB per token instead of ~600 KB, and the KL
// divergence computed from it stays within 1e-3 of the exact value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace reap {

struct BaseRow {
    std::vector<float> logprobs;      // dequantized; -inf for entries below the floor
    double             p_log_p = 0;   // sum_v p(v) log p(v), from the exact log-probabilities
    float              next_logprob = 0;
    int32_t            argmax = 0;    // first most likely token
};

// Bytes of one stored row for a vocabulary of n_vocab.
size_t compact_row_bytes(uint32_t n_vocab);

// Encodes exact log-probabilities (log_softmax output) and the next token into `out`.
void encode_row(const std::vector<float> & logprobs, int32_t next, std::vector<uint8_t> & out);

// Decodes a stored row; false when its values are impossible (NaN, a positive log-probability,
// an argmax outside the vocabulary): a corrupt file.
bool decode_row(const uint8_t * bytes, uint32_t n_vocab, BaseRow & row);

// The same fields computed from exact log-probabilities (files of the older float32 format).
void exact_row(const std::vector<float> & logprobs, int32_t next, BaseRow & row);

}  // namespace reap
