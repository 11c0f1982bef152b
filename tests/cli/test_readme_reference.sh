#!/usr/bin/env bash
# The README's config reference is exactly what the validator's schema generates.
set -euo pipefail
: "${COHORT:?} ${PYTHON:?} ${SRC:?}"
"$PYTHON" - "$COHORT" "$SRC/README.md" <<'PY'
import subprocess, sys
ref = subprocess.run([sys.argv[1], "list", "--markdown"], check=True, capture_output=True, text=True).stdout
text = open(sys.argv[2]).read()
begin, end = "<!-- BEGIN CONFIG REFERENCE -->\n", "<!-- END CONFIG REFERENCE -->"
current = text[text.index(begin) + len(begin):text.index(end)]
if current != ref:
    print("README config reference is stale: run scripts/update_readme.sh", file=sys.stderr)
    sys.exit(1)
assert "`algorithm.local_lr`" in ref and "`server_optimizer.form`" in ref
print("README config reference matches `cohort list --markdown`")
PY
