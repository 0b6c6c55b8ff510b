#!/usr/bin/python3
"""docs/ARCHITECTURE.md matches the code (issue 22):
- "Folders": every file of a library folder (src/<folder>/) is named in its folder's row;
- "Rules with one owner": every owner (`folder/file`) exists, the name right after it is declared
  or defined in that file, and every other name the cell gives exists in the code.
Prints one line per mismatch and exits 1 if there is any."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
doc = (root / "docs/ARCHITECTURE.md").read_text()
problems = []


def section(title):
    m = re.search(r"^## " + re.escape(title) + r".*?$(.*?)(?=^## |\Z)", doc, re.M | re.S)
    if not m:
        problems.append(f"docs/ARCHITECTURE.md: no section '{title}'")
        return []
    return [line for line in m.group(1).splitlines() if line.startswith("| ") and not line.startswith("|---")]


def cells(row):
    return [c.strip() for c in row.strip().strip("|").split(" | ")]


# ---- Folders: every file of src/<folder>/ is in its row --------------------------------------
rows = {}
for row in section("Folders"):
    first, *rest = cells(row)
    m = re.fullmatch(r"`([a-z_]+)/`", first)
    if m:
        rows[m.group(1)] = " ".join(rest)
for folder in sorted(p for p in (root / "src").iterdir() if p.is_dir()):
    text = rows.get(folder.name)
    if text is None:
        problems.append(f"docs/ARCHITECTURE.md: no row for src/{folder.name}/ in 'Folders'")
        continue
    named = set(re.findall(r"`([A-Za-z0-9_.]+)`", text))
    for stem in sorted({p.stem for p in folder.iterdir() if p.suffix in (".h", ".cpp")}):
        if stem not in named and stem + ".h" not in named:
            problems.append(f"docs/ARCHITECTURE.md: src/{folder.name}/{stem} is not named in the row of {folder.name}/")

# ---- Rules with one owner --------------------------------------------------------------------
code = {p: p.read_text() for p in list((root / "src").rglob("*.[ch]*")) + list((root / "tools/reap").glob("*.[ch]*"))}


def owner_files(path):
    base = root / "src" / path if (root / "src" / path).parent.is_dir() else root / path
    return [f for f in (base.with_suffix(".h"), base.with_suffix(".cpp")) if f.exists()]


def mentions(files, name):
    word = re.compile(r"\b" + re.escape(name) + r"\b")
    return any(word.search(code.get(f, "")) for f in files)


for row in section("Rules with one owner")[1:]:  # the first row is the header
    rule, owner = cells(row)
    current = None  # files of the last owner named, until its first name is checked
    for token in re.findall(r"`([^`]+)`", owner):
        if re.fullmatch(r"[a-z_]+(/[a-z_]+)+", token):
            current = owner_files(token)
            if not current:
                problems.append(f"docs/ARCHITECTURE.md: '{rule}': owner {token} has no .h or .cpp")
        elif re.fullmatch(r"[a-z][a-z0-9_]*", token):
            if current:
                if not mentions(current, token):
                    problems.append(f"docs/ARCHITECTURE.md: '{rule}': {token} is not in {current[0].with_suffix('')}")
            elif not mentions(code.keys(), token):
                problems.append(f"docs/ARCHITECTURE.md: '{rule}': {token} is nowhere in src/ or tools/reap/")
            current = None

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
