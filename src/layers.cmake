# The floors of the library, bottom up: each src/ folder and the folders it may include (those
# and everything below them). The one table of the layering: the build refuses a backward include
# (cmake/check_layers.cmake, run before any floor compiles) and docs/ARCHITECTURE.md's graph is
# checked against it (ctest layers_graph_matches_docs).
set(REAP_LAYERS
  "core:"
  "moe:core"
  "stats:moe"
  "prune:stats"
  "gguf:prune"
  "hf:prune"
  "model:gguf,hf"
  "llama:gguf"
  "profile:llama,stats"
  "eval:profile"
  "report:prune"
  "synth:gguf,hf"
  "sweep:eval,model,report"
)
