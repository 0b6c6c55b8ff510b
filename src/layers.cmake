# The floors of the library, bottom up: each src/ folder and the folders it may include (those
# and everything below them). The one table of the layering: the build refuses a backward include
# (cmake/check_layers.cmake, run before any floor compiles) and docs/ARCHITECTURE.md's graph is
# checked against it (ctest layers_graph_matches_docs).
set(REAP_LAYERS
  "core:"
  "moe:core"
  "stats:moe"
  "plan:stats"
  "gguf:plan"
  "hf:plan"
  "prune:plan"
  "model:gguf,hf,prune"
  "llama:gguf"
  "profile:llama,stats"
  "eval:profile"
  "report:prune"
  "synth:gguf,hf"
  "sweep:eval,model,report"
)

# Splits one REAP_LAYERS entry "floor:below1,below2" into the floor's name and its list of the
# floors directly below it (the one reading of the table, for the build and for the check).
function(reap_layer_entry entry out_name out_below)
  string(REPLACE ":" ";" parts "${entry}")
  list(GET parts 0 name)
  list(LENGTH parts n)
  set(below "")
  if(n GREATER 1)
    list(GET parts 1 below)
    string(REPLACE "," ";" below "${below}")
  endif()
  set(${out_name} ${name} PARENT_SCOPE)
  set(${out_below} "${below}" PARENT_SCOPE)
endfunction()
