// How `reap` ends when a command throws: one line on stderr and an exit status that tells a bad
// input from a bug (README, "Exit status"). Its own library so that the tests check this code.
#pragma once

#include <cstdio>
#include <exception>
#include <string>

namespace reap::cli {

// sysexits.h's EX_SOFTWARE: reap itself went wrong, not the input or the machine.
inline constexpr int k_internal_error_exit_code = 70;

// Prints the line for `e`, thrown while running `command` ("" when none had been chosen), to
// `err` and returns the exit status:
//   reap::Error (a bad file, a refused output), what the machine refused (std::system_error:
//   a file system or thread error; std::bad_alloc)    "reap: error: ..."                      1
//   reap::Interrupted                                  "reap: interrupted by ..."              130
//   anything else (std::out_of_range from map::at, nlohmann::json's type_error, ...): a bug
//                                                      "reap: internal error in 'CMD': ..."    70
// Usage errors (exit 2) are the caller's: they need the parser to name the command's --help.
int report_failure(const std::exception_ptr & e, const std::string & command, std::FILE * err);

}  // namespace reap::cli
