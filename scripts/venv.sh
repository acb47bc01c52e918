# Sourced by scripts/demo and scripts/test: a virtual environment in .venv with the project in it.
# TELECONSULT_VENV chooses another place; CI=true always starts from a fresh one. Versions come
# from constraints.txt (reproducible installs); TELECONSULT_UNCONSTRAINED=1 takes the newest allowed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TELECONSULT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {  # ensure_venv EXTRAS   e.g. ensure_venv "test,postgres,redis"
    local extras="$1"
    if [ "${CI:-}" = "true" ] && [ -z "${TELECONSULT_VENV:-}" ]; then
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Creating the virtual environment in $VENV" >&2
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
    fi
    local spec="$ROOT"
    [ -n "$extras" ] && spec="$ROOT[$extras]"
    local constraints=()
    if [ -f "$ROOT/constraints.txt" ] && [ -z "${TELECONSULT_UNCONSTRAINED:-}" ]; then
        constraints=(--constraint "$ROOT/constraints.txt")
    fi
    "$VENV/bin/python" -m pip install --quiet "${constraints[@]}" --editable "$spec"
}
