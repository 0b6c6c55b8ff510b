#include "llama/engine_abort_note.h"

#include "core/error.h"
#include "llama/llama_flags.h"

#include "ggml.h"

#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

namespace reap {

namespace {

std::mutex               g_mutex;
std::vector<std::string> g_endpoints;
std::string              g_hint;

extern "C" void on_engine_abort(const char * message) {
    // ggml aborts right after this returns: the note first, then ggml's own line.
    std::fflush(stdout);
    std::fprintf(stderr, "\n%s\n", engine_abort_note(message).c_str());
    std::fprintf(stderr, "%s\n", message);
    std::fflush(stderr);
}

}  // namespace

void install_engine_abort_note() { ggml_set_abort_callback(on_engine_abort); }

void note_rpc_endpoint(const std::string & endpoint) {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto & e : g_endpoints)
        if (e == endpoint) return;
    g_endpoints.push_back(endpoint);
}

void set_engine_abort_hint(const std::string & hint) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_hint = hint;
}

std::string engine_abort_note(const std::string & message) {
    std::vector<std::string> endpoints;
    std::string              hint;
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        endpoints = g_endpoints;
        hint      = g_hint;
    }
    // A server killed mid-run can close the connection before its listening socket: a probe in
    // that instant still connects. A few probes spread over half a second see it gone.
    std::string lost;
    for (int attempt = 0; attempt < 5 && lost.empty(); ++attempt) {
        if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        for (const auto & e : endpoints) {
            const std::string why = rpc_endpoint_problem(e, 1000);
            if (!why.empty()) lost += (lost.empty() ? "" : ", ") + e + " (" + why + ")";
        }
    }
    std::string note = "reap: fatal: ";
    if (!lost.empty()) {
        note += "lost the --rpc server " + lost + "; llama.cpp aborts the run";
    } else {
        std::string  what  = message;
        const size_t colon = what.find(": ");  // "file:line: what"
        if (colon != std::string::npos) what = what.substr(colon + 2);
        while (!what.empty() && (what.back() == '\n' || what.back() == ' '))
            what.pop_back();
        note += "llama.cpp aborts the run (" + what + ")";
    }
    if (!hint.empty()) note += "; " + hint;
    return note;
}

}  // namespace reap
