#include "eval/task_files.h"

#include "core/error.h"
#include "core/log.h"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace reap {

namespace {

std::string read_whole(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("%s: cannot open the task file", path.c_str());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// llama-perplexity reads a text task file with -f, which drops one final line break.
std::string as_prompt(std::string bytes) {
    if (!bytes.empty() && bytes.back() == '\n') bytes.pop_back();
    return bytes;
}

// std::getline over the text: a last line without a line break counts, an empty tail does not.
std::vector<std::string> text_lines(const std::string & text) {
    std::vector<std::string> lines;
    std::istringstream       in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

// An integer as std::stoi / operator>> read one: leading blanks, digits, anything after.
bool leading_int(const std::string & s, long & out) {
    const char * p = s.c_str();
    char *       end;
    out = std::strtol(p, &end, 10);
    return end != p;
}

bool blank(const std::string & s) {
    for (char c : s)
        if (!std::isspace(static_cast<unsigned char>(c))) return false;
    return true;
}

// The draw llama-perplexity makes for winogrande and multiple-choice subsets: a float in [0, 1)
// times the number of tasks left, in float arithmetic.
size_t float_draw(std::mt19937 & rng, size_t left) {
    const float scale = 1.f / (1.f + float(std::mt19937::max()));
    return size_t(int(scale * float(rng()) * float(left)));
}

// ---- hellaswag ----

bool hellaswag_label(const std::string & line, long & label) {
    return leading_int(line, label) && label >= 0 && label <= 3;
}

TaskSet read_hellaswag(const std::string & path, const std::string & bytes, size_t limit) {
    std::vector<std::string> lines = text_lines(as_prompt(bytes));
    if (lines.empty()) fail("%s: no hellaswag tasks", path.c_str());
    std::vector<ChoiceTask> all;
    for (size_t t = 0; t * 6 < lines.size(); t++) {
        const size_t first = t * 6;
        if (first + 6 > lines.size()) {
            fail(
                "%s:%zu: incomplete task: a hellaswag task is 6 lines (context, right ending 0..3, 4 endings), "
                "the file has %zu lines",
                path.c_str(), first + 1, lines.size());
        }
        long label = 0;
        if (!hellaswag_label(lines[first + 1], label)) {
            fail("%s:%zu: the right ending's index must be 0..3, not \"%s\" (a hellaswag task is 6 lines)",
                 path.c_str(), first + 2, lines[first + 1].c_str());
        }
        ChoiceTask task;
        task.context = lines[first];
        task.endings.assign(lines.begin() + long(first) + 2, lines.begin() + long(first) + 6);
        task.right.assign(4, false);
        task.right[size_t(label)] = true;
        task.where                = strfmt("%s:%zu", path.c_str(), first + 1);
        all.push_back(std::move(task));
    }
    // llama-perplexity draws every task it scores, the whole file included, one at a time
    // among those left (so the order, and which share a batch, follow the draws).
    const size_t            n = limit == 0 || limit > all.size() ? all.size() : limit;
    std::mt19937            rng(1);
    std::vector<ChoiceTask> picked;
    for (size_t i = 0; i < n; i++) {
        std::uniform_int_distribution<size_t> dist(0, all.size() - 1);
        const size_t                          idx = dist(rng);
        picked.push_back(std::move(all[idx]));
        all.erase(all.begin() + long(idx));
    }
    TaskSet set;
    set.format = TaskFormat::hellaswag;
    set.path   = path;
    set.choice = std::move(picked);
    return set;
}

// ---- winogrande ----

// One CSV line split as llama-perplexity splits it (the first 4 commas outside quotes; the
// sentence loses its quotes, the choices keep theirs). False when the line is not a task.
bool parse_winogrande(const std::string & line, WinograndeTask & task, std::string & why) {
    size_t comma[4];
    int    n     = 0;
    bool   quote = false;
    for (size_t i = 0; i < line.size() && n < 4; i++) {
        if (line[i] == '"') {
            quote = !quote;
        } else if (line[i] == ',' && !quote) {
            comma[n++] = i;
        }
    }
    if (n != 4) {
        why = "not 5 comma-separated fields (index,sentence,choice 1,choice 2,answer)";
        return false;
    }
    const std::string sentence = line[comma[0] + 1] == '"' ? line.substr(comma[0] + 2, comma[1] - comma[0] - 3)
                                                           : line.substr(comma[0] + 1, comma[1] - comma[0] - 1);
    const size_t      blank_at = sentence.find('_');
    if (blank_at == std::string::npos) {
        why = "the sentence has no _ for the choices to fill";
        return false;
    }
    long answer = 0;
    if (!leading_int(line.substr(comma[3] + 1), answer) || answer < 1 || answer > 2) {
        why = "the answer (last field) must be 1 or 2";
        return false;
    }
    task.first      = sentence.substr(0, blank_at);
    task.second     = sentence.substr(blank_at + 1);
    task.choices[0] = line.substr(comma[1] + 1, comma[2] - comma[1] - 1);
    task.choices[1] = line.substr(comma[2] + 1, comma[3] - comma[2] - 1);
    task.answer     = int(answer);
    return true;
}

TaskSet read_winogrande(const std::string & path, const std::string & bytes, size_t limit) {
    // The text after the last line break (once -f dropped one) is never read by llama-perplexity.
    const std::string        text = as_prompt(bytes);
    const size_t             cut  = text.rfind('\n');
    std::vector<std::string> lines =
        cut == std::string::npos ? std::vector<std::string>{} : text_lines(text.substr(0, cut + 1));
    const std::string           unread = cut == std::string::npos ? text : text.substr(cut + 1);
    std::vector<WinograndeTask> all;
    for (size_t i = 0; i < lines.size(); i++) {
        if (blank(lines[i])) continue;
        WinograndeTask task;
        std::string    why;
        if (!parse_winogrande(lines[i], task, why)) {
            if (i == 0) continue;  // a header line ("index,sentence,option1,option2,answer")
            fail("%s:%zu: %s", path.c_str(), i + 1, why.c_str());
        }
        task.where = strfmt("%s:%zu", path.c_str(), i + 1);
        all.push_back(std::move(task));
    }
    WinograndeTask probe;
    std::string    why;
    if (!blank(unread) && parse_winogrande(unread, probe, why)) {
        log_warn(
            "note: %s:%zu: llama-perplexity never reads a winogrande file's last line, so reap skips it too "
            "(end the file with an empty line to have it scored)",
            path.c_str(), lines.size() + 1);
    }
    if (all.empty()) fail("%s: no winogrande tasks", path.c_str());
    TaskSet set;
    set.format = TaskFormat::winogrande;
    set.path   = path;
    if (limit == 0 || limit >= all.size()) {
        set.winogrande = std::move(all);
        return set;
    }
    std::mt19937        rng(1);
    std::vector<size_t> left(all.size());
    for (size_t i = 0; i < left.size(); i++)
        left[i] = i;
    for (size_t i = 0; i < limit; i++) {
        const size_t j = float_draw(rng, left.size());
        set.winogrande.push_back(std::move(all[left[j]]));
        left[j] = left.back();
        left.pop_back();
    }
    return set;
}

// ---- multiple-choice (binary) ----

class BinaryReader {
public:
    explicit BinaryReader(const std::string & bytes) : bytes_(bytes) {}
    void   seek(size_t at) { at_ = at; }
    size_t at() const { return at_; }
    bool   u32(uint32_t & v) { return take(&v, 4); }
    bool   i32(int32_t & v) { return take(&v, 4); }
    bool   str(std::string & s) {
          uint32_t n = 0;
          if (!u32(n) || n > bytes_.size() - at_) return false;
        s.assign(bytes_, at_, n);
          at_ += n;
          return true;
    }

private:
    bool take(void * out, size_t n) {
        if (at_ > bytes_.size() || bytes_.size() - at_ < n) return false;
        std::memcpy(out, bytes_.data() + at_, n);
        at_ += n;
        return true;
    }
    const std::string & bytes_;
    size_t              at_ = 0;
};

// One answer set; the labels of mc1 say which answers are right. Returns what is wrong, or "".
std::string read_answers(BinaryReader & in, std::vector<std::string> & answers, std::vector<int32_t> & labels) {
    uint32_t n = 0;
    if (!in.u32(n)) return "truncated";
    if (n > 100) return strfmt("%u answers (at most 100)", n);
    answers.resize(n);
    labels.resize(n);
    for (auto & a : answers)
        if (!in.str(a)) return "truncated answer";
    for (auto & l : labels)
        if (!in.i32(l)) return "truncated labels";
    return "";
}

ChoiceTask read_choice_task(BinaryReader & in, const std::string & path, size_t index) {
    const size_t start = in.at();
    ChoiceTask   task;
    task.where = strfmt("%s: task %zu (byte %zu)", path.c_str(), index + 1, start);
    std::string              why;
    std::vector<std::string> unused;
    std::vector<int32_t>     labels, unused_labels;
    if (!in.str(task.context)) why = "truncated question";
    if (why.empty()) why = read_answers(in, task.endings, labels);
    if (why.empty()) why = read_answers(in, unused, unused_labels);
    if (why.empty() && task.context.empty()) why = "empty question";
    if (why.empty() && task.endings.empty()) why = "no answers";
    for (const auto & e : task.endings)
        if (why.empty() && e.empty()) why = "an empty answer";
    if (!why.empty()) fail("%s: %s (multiple-choice binary format)", task.where.c_str(), why.c_str());
    for (int32_t l : labels)
        task.right.push_back(l == 1);
    return task;
}

TaskSet read_multiple_choice(const std::string & path, const std::string & bytes, size_t limit) {
    BinaryReader in(bytes);
    uint32_t     n_task = 0;
    if (!in.u32(n_task) || n_task == 0) fail("%s: no multiple-choice tasks", path.c_str());
    if (uint64_t(n_task) * 4 > bytes.size() - 4) {  // checked before the table is allocated
        fail("%s: %u tasks, but the file is too short for their table of offsets (multiple-choice binary format)",
             path.c_str(), n_task);
    }
    std::vector<uint32_t> offsets(n_task);
    for (auto & o : offsets)
        if (!in.u32(o))
            fail("%s: truncated table of %u task offsets (multiple-choice binary format)", path.c_str(), n_task);
    TaskSet set;
    set.format = TaskFormat::multiple_choice;
    set.path   = path;
    if (limit == 0 || limit >= n_task) {  // llama-perplexity reads them one after the other
        for (uint32_t i = 0; i < n_task; i++)
            set.choice.push_back(read_choice_task(in, path, i));
        return set;
    }
    std::mt19937        rng(1);
    std::vector<size_t> left(n_task);
    for (size_t i = 0; i < left.size(); i++)
        left[i] = i;
    for (size_t i = 0; i < limit; i++) {  // each at its offset
        const size_t j   = float_draw(rng, left.size());
        const size_t idx = left[j];
        left[j]          = left.back();
        left.pop_back();
        in.seek(offsets[idx]);
        set.choice.push_back(read_choice_task(in, path, idx));
    }
    return set;
}

bool looks_like_multiple_choice(const std::string & bytes) {
    uint32_t n = 0, first = 0;
    if (bytes.size() < 8) return false;
    std::memcpy(&n, bytes.data(), 4);
    std::memcpy(&first, bytes.data() + 4, 4);
    return n > 0 && uint64_t(n) * 4 + 4 <= bytes.size() && first == uint64_t(n) * 4 + 4;
}

}  // namespace

const char * task_format_name(TaskFormat f) {
    switch (f) {
        case TaskFormat::hellaswag: return "hellaswag";
        case TaskFormat::winogrande: return "winogrande";
        case TaskFormat::multiple_choice: return "multiple_choice";
    }
    return "?";
}

const char * task_format_flag(TaskFormat f) {
    switch (f) {
        case TaskFormat::hellaswag: return "--hellaswag";
        case TaskFormat::winogrande: return "--winogrande";
        case TaskFormat::multiple_choice: return "--multiple-choice";
    }
    return "?";
}

bool sniff_task_format(const std::string & bytes, TaskFormat & out) {
    if (looks_like_multiple_choice(bytes)) {
        out = TaskFormat::multiple_choice;
        return true;
    }
    const auto lines     = text_lines(as_prompt(bytes));
    bool       hellaswag = lines.size() >= 6 && lines.size() % 6 == 0;
    for (size_t i = 1; hellaswag && i < lines.size(); i += 6) {
        long label = 0;
        hellaswag  = hellaswag_label(lines[i], label);
    }
    if (hellaswag) {
        out = TaskFormat::hellaswag;
        return true;
    }
    // winogrande: a task line with a numeric index among the first two (the first may be a header)
    for (size_t i = 0; i < lines.size() && i < 2; i++) {
        WinograndeTask t;
        std::string    why;
        long           index = 0;
        if (parse_winogrande(lines[i], t, why) && leading_int(lines[i], index)) {
            out = TaskFormat::winogrande;
            return true;
        }
    }
    return false;
}

TaskSet read_task_file(TaskFormat format, const std::string & path, size_t limit) {
    const std::string bytes = read_whole(path);
    TaskFormat        seen;
    if (sniff_task_format(bytes, seen) && seen != format) {
        fail("%s: given as %s, but it looks like a %s file: give it with %s", path.c_str(), task_format_flag(format),
             task_format_name(seen), task_format_flag(seen));
    }
    switch (format) {
        case TaskFormat::hellaswag: return read_hellaswag(path, bytes, limit);
        case TaskFormat::winogrande: return read_winogrande(path, bytes, limit);
        case TaskFormat::multiple_choice: return read_multiple_choice(path, bytes, limit);
    }
    fail("unknown task format");
}

std::vector<TaskSet> read_task_files(const TaskFiles & files) {
    std::vector<TaskSet> out;
    if (!files.hellaswag.empty()) out.push_back(read_task_file(TaskFormat::hellaswag, files.hellaswag, files.limit));
    if (!files.winogrande.empty()) out.push_back(read_task_file(TaskFormat::winogrande, files.winogrande, files.limit));
    if (!files.multiple_choice.empty()) {
        out.push_back(read_task_file(TaskFormat::multiple_choice, files.multiple_choice, files.limit));
    }
    return out;
}

}  // namespace reap
