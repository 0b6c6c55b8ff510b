// --rpc: llama.cpp's RPC backend, found through ggml-backend's public registry as llama.cpp's own
// tools do (ggml_backend_reg_by_name("RPC") and its "ggml_backend_rpc_add_server" entry point).
#include "core/error.h"
#include "llama/engine_abort_note.h"
#include "llama/llama_flags.h"

#include "ggml-backend.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

namespace reap {

std::string rpc_endpoint_problem(const std::string & endpoint, int timeout_ms) {
    const size_t colon = endpoint.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size()) return "expected HOST:PORT";
    std::string host = endpoint.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo * res    = nullptr;
    const int  rc     = getaddrinfo(host.c_str(), endpoint.c_str() + colon + 1, &hints, &res);
    if (rc != 0) return gai_strerror(rc);
    std::string why = "no address";
    bool        ok  = false;
    for (addrinfo * a = res; a != nullptr && !ok; a = a->ai_next) {
        const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            ok = true;
        } else if (errno == EINPROGRESS) {
            pollfd    p{fd, POLLOUT, 0};
            int       err = 0;
            socklen_t len = sizeof(err);
            if (poll(&p, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
                ok = true;
            } else {
                why = err != 0 ? std::strerror(err) : "timed out";
            }
        } else {
            why = std::strerror(errno);
        }
        close(fd);
    }
    freeaddrinfo(res);
    return ok ? "" : "cannot connect: " + why;
}

void add_rpc_servers(const std::vector<std::string> & endpoints) {
    if (endpoints.empty()) return;
    ggml_backend_reg_t rpc = ggml_backend_reg_by_name("RPC");
    if (rpc == nullptr) {  // a build with dynamically loaded backends
        ggml_backend_load_all();
        rpc = ggml_backend_reg_by_name("RPC");
    }
    if (rpc == nullptr) {
        fail(
            "--rpc: this llama.cpp build has no RPC backend (build llama.cpp with -DGGML_RPC=ON; scripts/setup.sh "
            "does)");
    }
    using add_server_fn = ggml_backend_reg_t (*)(const char * endpoint);
    auto add = reinterpret_cast<add_server_fn>(ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server"));
    if (add == nullptr) fail("--rpc: llama.cpp's RPC backend has no ggml_backend_rpc_add_server");

    static std::mutex            mutex;
    static std::set<std::string> registered;
    std::lock_guard<std::mutex>  lock(mutex);
    for (const std::string & e : endpoints) {
        // The RPC backend aborts the process when a server cannot be reached: tried here first.
        const std::string why = rpc_endpoint_problem(e, 5000);
        if (!why.empty()) {
            fail("--rpc %s: %s%s", e.c_str(), why.c_str(),
                 why.rfind("cannot connect", 0) == 0 ? "; is rpc-server running there?" : "");
        }
        note_rpc_endpoint(e);
        if (registered.count(e) != 0) continue;
        ggml_backend_reg_t reg = add(e.c_str());
        if (reg == nullptr) fail("--rpc %s: the server offers no device", e.c_str());
        ggml_backend_register(reg);
        registered.insert(e);
    }
}

}  // namespace reap
