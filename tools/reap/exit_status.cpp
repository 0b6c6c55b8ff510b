#include "exit_status.h"

#include "core/error.h"
#include "core/stop_signal.h"

#include <new>
#include <system_error>

namespace reap::cli {

// One line whatever the exception says.
static std::string one_line(std::string s) {
    for (auto & c : s) {
        if (c == '\n' || c == '\r') c = ' ';
    }
    return s;
}

static int internal_error(const std::string & command, const std::string & what, std::FILE * err) {
    const std::string in = command.empty() ? "" : " in '" + command + "'";
    std::fprintf(err, "reap: internal error%s: %s (please report this)\n", in.c_str(), one_line(what).c_str());
    return k_internal_error_exit_code;
}

int report_failure(const std::exception_ptr & e, const std::string & command, std::FILE * err) {
    try {
        std::rethrow_exception(e);
    } catch (const Interrupted & x) {
        std::fprintf(err, "reap: %s\n", x.what());
        return k_interrupted_exit_code;
    } catch (const Error & x) {
        std::fprintf(err, "reap: error: %s\n", x.what());
        return 1;
    } catch (const std::bad_alloc &) {
        std::fputs("reap: error: out of memory\n", err);  // no allocation here
        return 1;
    } catch (const std::system_error & x) {
        std::fprintf(err, "reap: error: %s\n", one_line(x.what()).c_str());
        return 1;
    } catch (const std::exception & x) {
        return internal_error(command, x.what(), err);
    } catch (...) {
        return internal_error(command, "an exception of unknown type", err);
    }
}

}  // namespace reap::cli
