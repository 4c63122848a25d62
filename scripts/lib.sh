# shellcheck shell=bash
# Shared helpers for scripts/test.sh and scripts/dev.sh. Source it; do not run it.
#
#   TASKAPI_ROOT     the repository root (set here)
#   PYTHON           the interpreter that creates .venv (default: python3); must be 3.10+
#   TASKAPI_VENV     where the virtual environment lives (default: $TASKAPI_ROOT/.venv)

TASKAPI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TASKAPI_VENV="${TASKAPI_VENV:-$TASKAPI_ROOT/.venv}"
export TASKAPI_ROOT TASKAPI_VENV

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The stamp that says which install the venv holds: the packaging files, the interpreter and the checkout.
_venv_stamp() {
    {
        cat "$TASKAPI_ROOT/setup.cfg" "$TASKAPI_ROOT/pyproject.toml" 2>/dev/null
        "$TASKAPI_VENV/bin/python" -c 'import sys; print(sys.version)'
        printf '%s\n' "$TASKAPI_ROOT"
    } | sha256sum | cut -d' ' -f1
}

# Create or reuse the venv and install the project (editable, with the test extras) when it changed.
ensure_venv() {
    local python="${PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 || die "$python not found: install Python 3.10 or newer (Debian: apt-get install python3 python3-venv)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "Python 3.10 or newer is needed; $python is $("$python" -V 2>&1)"

    if [[ -d "$TASKAPI_VENV" ]] && ! "$TASKAPI_VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
        log "the venv at $TASKAPI_VENV is broken (no working python or pip); recreating it"
        rm -rf "$TASKAPI_VENV"
    fi
    if [[ ! -d "$TASKAPI_VENV" ]]; then
        log "creating the venv at $TASKAPI_VENV with $("$python" -V 2>&1)"
        if ! "$python" -m venv "$TASKAPI_VENV"; then
            rm -rf "$TASKAPI_VENV"
            die "could not create a venv with $python (Debian: apt-get install python3-venv)"
        fi
    fi

    local stamp_file="$TASKAPI_VENV/.taskapi-install-stamp" stamp
    stamp="$(_venv_stamp)"
    if [[ ! -f "$stamp_file" || "$(cat "$stamp_file")" != "$stamp" ]] \
        || ! "$TASKAPI_VENV/bin/python" -c 'import gateway' >/dev/null 2>&1; then
        log "installing the project and its test tools into $TASKAPI_VENV (pip install -e '.[test]')"
        rm -f "$stamp_file"
        (cd "$TASKAPI_ROOT" && "$TASKAPI_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            --no-input -e '.[test]') || die "pip install -e '.[test]' failed"
        printf '%s\n' "$stamp" >"$stamp_file"
    fi

    # shellcheck disable=SC1091
    source "$TASKAPI_VENV/bin/activate"
}

# Podman options the runner and the tests read; CI sets them, here they only get defaults when unset
# (an empty value is kept as it is).
default_podman_env() {
    if [[ -z "${TASKAPI_PODMAN_ARGS+set}" ]]; then
        if command -v runc >/dev/null 2>&1; then
            TASKAPI_PODMAN_ARGS="--runtime runc"
        else
            TASKAPI_PODMAN_ARGS=""
        fi
    fi
    : "${TASKAPI_PODMAN_RUN_ARGS=--ulimit nofile=1024:1024 --ulimit nproc=1024:1024}"
    export TASKAPI_PODMAN_ARGS TASKAPI_PODMAN_RUN_ARGS
}

is_ci() {
    case "${CI:-}" in
        [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss]) return 0 ;;
        *) return 1 ;;
    esac
}
