#!/usr/bin/env bash
# Rewrites the README's config reference from `cohort list --markdown` (the validator's schema).
set -euo pipefail
cd "$(dirname "$0")/.."
COHORT=${COHORT:-build/cohort}
/usr/bin/python3 - "$COHORT" <<'PY'
import subprocess, sys
ref = subprocess.run([sys.argv[1], "list", "--markdown"], check=True, capture_output=True, text=True).stdout
text = open("README.md").read()
begin, end = "<!-- BEGIN CONFIG REFERENCE -->\n", "<!-- END CONFIG REFERENCE -->"
i, j = text.index(begin) + len(begin), text.index(end)
open("README.md", "w").write(text[:i] + ref + text[j:])
PY
echo "README.md config reference updated"
