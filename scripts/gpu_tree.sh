#!/usr/bin/env bash
# What the device tool sends to a lent GPU machine: the tracked and untracked-not-ignored files plus the carried
# paths, 64 MiB at most (library device/README.md). The committed run outputs under runs/<name>/ are ~190 MiB, so
# before the CUDA check they leave the index for the duration of the call (the files stay on disk, untouched):
#   bash scripts/gpu_tree.sh slim      # runs/*/ out of the index and ignored, except runs/paper_cmlp/
#   bash scripts/gpu_tree.sh size      # MiB that would travel (with .whl/), and the limit; exit status 1 when over
#   bash scripts/gpu_tree.sh files     # the files that would travel besides .whl/, NUL-separated (gpu_rehearsal.sh)
#   bash scripts/gpu_tree.sh restore   # the index as HEAD has it again; the ignore lines gone
# The check needs only the configs runs/*.yaml, data/, the package and runs/paper_cmlp/ (mixed_precision.py's model).
# Nothing is committed: slim refuses while runs/ has staged changes, so restore loses nothing, and until restore a
# pre-commit hook it installs refuses every commit (one would record runs/*/ as deleted).
set -euo pipefail
cd "$(dirname "$0")/.."
EXCLUDE=.git/info/exclude
BEGIN="# >>> gpu_tree.sh slim"
END="# <<< gpu_tree.sh slim"
KEEP=runs/paper_cmlp
HOOK=.git/hooks/pre-commit   # while slim: refuses every commit, which would record the 1,100 files as deleted
HOOK_MARK="# installed by scripts/gpu_tree.sh slim"

LIMIT_MIB=64

tree_files() {   # NUL-separated: what the device tool sends besides the carried .whl/
    git ls-files -z --cached --others --exclude-standard
}

travelling_mib() {
    { tree_files; if [ -d .whl ]; then find .whl -type f -print0; fi; } \
        | python3 -c "import os, sys; print(f'{sum(os.path.getsize(f) for f in sys.stdin.read().split(chr(0)) if os.path.isfile(f)) / 2**20:.1f}')"
}

case "${1:-}" in
  slim)
    grep -qxF "$BEGIN" "$EXCLUDE" 2>/dev/null && { echo "already slim (restore with: bash $0 restore)" >&2; exit 1; }
    git diff --cached --quiet -- runs || { echo "runs/ has staged changes: commit or unstage them first" >&2; exit 1; }
    mkdir -p "$(dirname "$EXCLUDE")"
    printf '%s\n/runs/*/\n!/%s/\n%s\n' "$BEGIN" "$KEEP" "$END" >> "$EXCLUDE"
    git ls-files -z -- 'runs/*/*' | grep -zv "^$KEEP/" | xargs -0 -r git rm -r -q --cached --
    if [ -e "$HOOK" ]; then
        echo "warning: $HOOK exists, so no commit guard was installed: do not commit before restore" >&2
    else
        mkdir -p "$(dirname "$HOOK")"
        printf '#!/bin/sh\n%s\necho "runs/ is out of the index for the GPU check: bash scripts/gpu_tree.sh restore first" >&2\nexit 1\n' \
            "$HOOK_MARK" > "$HOOK"
        chmod +x "$HOOK"
    fi
    echo "slim: $(travelling_mib) MiB would travel (limit $LIMIT_MIB)"
    ;;
  restore)
    git reset -q -- runs
    if [ -f "$HOOK" ] && grep -qxF "$HOOK_MARK" "$HOOK"; then rm -f "$HOOK"; fi
    if [ -f "$EXCLUDE" ]; then
        python3 - "$EXCLUDE" "$BEGIN" "$END" <<'EOF'
import sys
path, begin, end = sys.argv[1:]
lines, out, inside = open(path).read().splitlines(), [], False
for line in lines:
    inside = inside or line == begin
    if not inside:
        out.append(line)
    elif line == end:
        inside = False
open(path, "w").write("".join(f"{line}\n" for line in out))
EOF
    fi
    git diff --cached --quiet HEAD -- runs || { echo "the index still differs from HEAD under runs/" >&2; exit 1; }
    echo "restored: the index has runs/ as HEAD does ($(travelling_mib) MiB would travel)"
    ;;
  size)   # exit status 1 when over the limit
    mib=$(travelling_mib)
    echo "$mib MiB would travel (limit $LIMIT_MIB)"
    python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$mib" "$LIMIT_MIB"
    ;;
  files)
    tree_files
    ;;
  *)
    echo "usage: bash $0 slim|restore|size|files" >&2; exit 2
    ;;
esac
