# Sourced by the other scripts: create .venv if missing and install the pinned
# requirements plus segq itself in ONE pip call (installing in steps lets a later
# package pull numpy 2 and break the pinned cv2). Re-runs skip the install when
# requirements.txt has not changed since the last successful one.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.segq-requirements"
if ! cmp -s "$REPO/requirements.txt" "$STAMP"; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      -r "$REPO/requirements.txt" -e "$REPO"
  cp "$REPO/requirements.txt" "$STAMP"
fi
# `import paddle` pins OMP_NUM_THREADS=1 unless it is set: use both cores by default.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
# Point data/camvid at the shared copy when the user has not laid out their own.
if [ ! -e "$REPO/data/camvid" ] && [ -d "$REPO/../shared/data/camvid" ]; then
  mkdir -p "$REPO/data"
  ln -s "$(cd "$REPO/../shared/data/camvid" && pwd)" "$REPO/data/camvid"
fi
export PATH="$VENV/bin:$PATH"
cd "$REPO"
