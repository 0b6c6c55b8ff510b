// Task files in llama-perplexity's three formats (--hellaswag, --winogrande, --multiple-choice),
// read as llama-perplexity reads them, and the subset it picks for a task limit, so that
// `reap eval` scores exactly the tasks llama-perplexity scores:
// - hellaswag: text, 6 lines a task (context, index 0..3 of the right ending, 4 endings). It always
//   draws its tasks at random (std::mt19937 seeded 1, one uniform draw among the tasks left each).
// - winogrande: CSV lines "index,sentence with _,choice 1,choice 2,answer 1|2". A first line that
//   is not a task is a header. llama-perplexity never reads the file's last line (its reading loop
//   stops at end of file before using the line it read): reap skips it too, with a note.
// - multiple-choice: binary (little-endian): u32 task count, u32 byte offset of each task, then
//   per task the question and two answer sets (mc1: one right answer, scored; mc2: read, unused),
//   a string being u32 length + bytes, an answer set u32 count (<= 100), its strings, its
//   int32 labels (1: right).
// Winogrande and multiple-choice use every task, in file order, unless a limit is given; then the
// same std::mt19937 (seed 1) picks them, one float-scaled draw each.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace reap {

enum class TaskFormat { hellaswag, winogrande, multiple_choice };
const char * task_format_name(TaskFormat f);  // "hellaswag", "winogrande", "multiple_choice" (JSON keys)
const char * task_format_flag(TaskFormat f);  // "--hellaswag", "--winogrande", "--multiple-choice"

// Hellaswag and multiple-choice: which ending continues the context best ("context ending").
struct ChoiceTask {
    std::string              context;
    std::vector<std::string> endings;
    std::vector<bool>        right;  // per ending
    std::string              where;  // "FILE:LINE" or "FILE: task N" for errors
};

// Winogrande: which choice fits the blank of "first _ second" best.
struct WinograndeTask {
    std::string                first, second;
    std::array<std::string, 2> choices;
    int                        answer = 1;  // 1 or 2
    std::string                where;
};

// One task file, its tasks in the order llama-perplexity scores them.
struct TaskSet {
    TaskFormat                  format = TaskFormat::hellaswag;
    std::string                 path;
    std::vector<ChoiceTask>     choice;      // hellaswag, multiple_choice
    std::vector<WinograndeTask> winogrande;  // winogrande
    size_t size() const { return format == TaskFormat::winogrande ? winogrande.size() : choice.size(); }
};

// The task files `reap eval` was given; limit 0: every task of each file.
struct TaskFiles {
    std::string hellaswag, winogrande, multiple_choice;
    size_t      limit = 0;
    bool        any() const { return !hellaswag.empty() || !winogrande.empty() || !multiple_choice.empty(); }
};

// Reads `path` as `format` and picks `limit` tasks (0 or more than the file has: all) as
// llama-perplexity does. A malformed file fails naming the file and line (the task and byte
// offset for the binary format); a file of another of the formats says which.
TaskSet read_task_file(TaskFormat format, const std::string & path, size_t limit);

// Every file of `files`, in the order hellaswag, winogrande, multiple-choice.
std::vector<TaskSet> read_task_files(const TaskFiles & files);

// The format that `bytes` (a whole file) looks like; false when none.
bool sniff_task_format(const std::string & bytes, TaskFormat & out);

// A model's score on one task file. stderr: sqrt(p (1 - p) / (n - 1)), as llama-perplexity
// prints it for winogrande and multiple-choice (for hellaswag it prints a 95 % Wilson interval).
struct TaskScore {
    TaskFormat format  = TaskFormat::hellaswag;
    uint64_t   n       = 0;
    uint64_t   correct = 0;
    double     accuracy() const { return n ? double(correct) / double(n) : 0.0; }
    double     std_error() const {
            const double p = accuracy();
            return n > 1 ? std::sqrt(p * (1 - p) / double(n - 1)) : 0.0;
    }
};

}  // namespace reap
