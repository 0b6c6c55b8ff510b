#!/usr/bin/python3
"""Task files in llama-perplexity's formats, cut from the committed held-out text
(data/text/<domain>-heldout.txt), so that the trained model of data/models/ has a downstream-like
score that `reap eval` and `llama-perplexity` both compute. Deterministic (seeded).

  /usr/bin/python3 tools/make-tasks/make_tasks.py [--out data/tasks] [--seed 1]

Writes (data/tasks/README.md says why they are built this way):
  code-continuation.bin, prose-continuation.bin   multiple-choice binary (--multiple-choice):
      a context of whole lines (about 400 / 500 characters) ending inside a line at a space; the
      right answer is the rest of that line and the next one, the three others the same cut made
      at other places of the same held-out text (at least 100 lines away).
  prose-hellaswag.txt   hellaswag format (--hellaswag): the same on prose with line breaks and
      runs of blanks made single spaces (a hellaswag task is one line of context, one per ending).
  prose-winogrande.csv  winogrande format (--winogrande): a prose passage with one word blanked;
      the word against a word of the same length class from elsewhere.
"""
import argparse
import os
import random
import re
import struct

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FAR = 100  # lines between a task's place and the places its wrong answers come from


def heldout_lines(domain):
    with open(os.path.join(ROOT, "data", "text", f"{domain}-heldout.txt"), encoding="utf-8") as f:
        return f.read().split("\n")


def content(s):
    return len(re.sub(r"\W", "", s))


def cut_points(lines, i):
    """Spaces of line i where it can be cut: after some text, with a real rest (>= 12 word chars)."""
    line = lines[i]
    start = len(line) - len(line.lstrip())
    return [k for k in range(start + 4, len(line) - 1) if line[k] == " " and line[k - 1] != " "
            and content(line[:k]) >= 4 and content(line[k + 1:]) >= 12]


def continuation(lines, i, k):
    """The rest of line i after the space at k, and the next line when it has content."""
    rest = lines[i][k + 1:]
    if i + 1 < len(lines) and content(lines[i + 1]) >= 8:
        rest += "\n" + lines[i + 1]
    return rest


def continuation_tasks(domain, ctx_chars, n_tasks, rng):
    lines = heldout_lines(domain)
    places = [(i, k) for i in range(8, len(lines) - 1) for k in cut_points(lines, i)[:1]]
    # one place every few lines, so that contexts barely overlap
    step = max(1, len(places) // n_tasks)
    chosen = places[::step][:n_tasks]
    tasks = []
    for i, k in chosen:
        first = i
        while first > 0 and sum(len(l) + 1 for l in lines[first - 1:i]) <= ctx_chars:
            first -= 1
        context = "\n".join(lines[first:i] + [lines[i][:k]])
        right = continuation(lines, i, k)
        far = [p for p in places if abs(p[0] - i) >= FAR]
        wrong = []
        while len(wrong) < 3:
            j, m = rng.choice(far)
            c = continuation(lines, j, m)
            if c != right and c not in wrong:
                wrong.append(c)
        answers = [right] + wrong
        rng.shuffle(answers)
        tasks.append((context, answers, answers.index(right)))
    return tasks


def write_multiple_choice(path, tasks):
    def s(text):
        b = text.encode("utf-8")
        return struct.pack("<I", len(b)) + b

    blobs = []
    for context, answers, right in tasks:
        labels = [1 if a == right else 0 for a in range(len(answers))]
        blob = s(context) + struct.pack("<I", len(answers)) + b"".join(s(a) for a in answers)
        blob += struct.pack(f"<{len(answers)}i", *labels) + struct.pack("<I", 0)  # mc2: no answers
        blobs.append(blob)
    offset = 4 + 4 * len(blobs)
    table = []
    for b in blobs:
        table.append(offset)
        offset += len(b)
    with open(path, "wb") as f:
        f.write(struct.pack("<I", len(blobs)) + struct.pack(f"<{len(table)}I", *table) + b"".join(blobs))


def flat_prose():
    return re.sub(r"\s+", " ", "\n".join(heldout_lines("prose"))).strip()


def word_cuts(text, start, end):
    return [m.start() for m in re.finditer(" ", text[start:end])]


def hellaswag_tasks(n_tasks, ctx_chars, ending_chars, rng):
    text = flat_prose()
    # places at word boundaries, one every len/n characters
    stride = (len(text) - ctx_chars - ending_chars) // n_tasks
    places = []
    for t in range(n_tasks):
        at = ctx_chars + t * stride
        at = text.rfind(" ", 0, at)
        places.append(at)

    def ending(at):
        end = text.rfind(" ", at + 1, at + 1 + ending_chars)
        return text[at + 1:end if end > at + ending_chars // 2 else at + 1 + ending_chars]

    tasks = []
    for at in places:
        start = text.find(" ", at - ctx_chars) + 1
        right = ending(at)
        wrong = []
        while len(wrong) < 3:
            other = rng.choice(places)
            if abs(other - at) >= 4 * ctx_chars and ending(other) not in wrong:
                wrong.append(ending(other))
        endings = [right] + wrong
        rng.shuffle(endings)
        tasks.append((text[start:at], endings, endings.index(right)))
    return tasks


def write_hellaswag(path, tasks):
    with open(path, "w", encoding="utf-8") as f:
        for context, endings, right in tasks:
            f.write("\n".join([context, str(right)] + endings) + "\n")


def winogrande_tasks(n_tasks, before, after, rng):
    text = flat_prose().replace('"', "'")
    words = [(m.start(), m.group()) for m in re.finditer(r"(?<= )[A-Za-z]{4,}(?= )", text)]
    by_len = {}
    for _, w in words:
        by_len.setdefault(min(len(w), 9), set()).add(w)
    stride = len(words) // (2 * n_tasks)  # twice the places needed: some are skipped
    tasks = []
    for t in range(2 * n_tasks):
        at, word = words[t * stride + stride // 2]
        if at < before or len(tasks) == n_tasks:
            continue
        start = text.find(" ", at - before) + 1
        end = text.rfind(" ", at, at + len(word) + after)
        if "_" in text[start:end]:  # llama-perplexity fills the first _ of the sentence
            continue
        other = rng.choice(sorted(by_len[min(len(word), 9)] - {word, word.lower(), word.capitalize()}))
        choices = [word, other]
        rng.shuffle(choices)
        sentence = text[start:at] + "_" + text[at + len(word):end]
        tasks.append((sentence, choices, choices.index(word) + 1))
    return tasks


def write_winogrande(path, tasks):
    with open(path, "w", encoding="utf-8") as f:
        f.write("index,sentence,option1,option2,answer\n")
        for n, (sentence, choices, answer) in enumerate(tasks):
            f.write(f'{n},"{sentence}",{choices[0]},{choices[1]},{answer}\n')
        f.write("\n")  # llama-perplexity never reads the last line: make it an empty one


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "data", "tasks"), help="output folder (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    ap.add_argument("--tasks", type=int, default=150, help="tasks per file (default: %(default)s)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    for domain, ctx in (("code", 400), ("prose", 500)):
        write_multiple_choice(os.path.join(a.out, f"{domain}-continuation.bin"),
                              continuation_tasks(domain, ctx, a.tasks, rng))
    write_hellaswag(os.path.join(a.out, "prose-hellaswag.txt"), hellaswag_tasks(a.tasks, 500, 80, rng))
    write_winogrande(os.path.join(a.out, "prose-winogrande.csv"), winogrande_tasks(a.tasks, 300, 60, rng))


if __name__ == "__main__":
    main()
