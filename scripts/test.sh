#!/usr/bin/env bash
# Run every check: ruff, then pytest (extra arguments go to pytest).
#
#   ./scripts/test.sh                      # everything
#   ./scripts/test.sh tests/test_spec.py   # one file
#   ./scripts/test.sh -k retry -x          # any pytest options
#
# Creates or reuses .venv (pip install -e '.[test]' only when setup.cfg/pyproject.toml changed).
# Needs no root. With CI=true, podman must be installed (.ci/run installs it).
# Env: PYTHON (interpreter for the venv), TASKAPI_PODMAN_ARGS, TASKAPI_PODMAN_RUN_ARGS (defaults below),
#      TASKAPI_SKIP_LINT=1 to skip ruff.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$TASKAPI_ROOT"

default_podman_env
if is_ci; then
    command -v podman >/dev/null 2>&1 \
        || die "CI=true but podman is not installed: the container tests need it (.ci/run installs podman, runc, uidmap)"
    log "podman: $(podman --version) (TASKAPI_PODMAN_ARGS='$TASKAPI_PODMAN_ARGS' TASKAPI_PODMAN_RUN_ARGS='$TASKAPI_PODMAN_RUN_ARGS')"
fi

ensure_venv

status=0
if [[ "${TASKAPI_SKIP_LINT:-}" != "1" ]]; then
    log "ruff check ."
    ruff check . || { log "ruff found problems (see above)"; status=1; }
fi

log "python -m pytest $*"
set +e
python -m pytest "$@"
rc=$?
set -e
case "$rc" in
    0) ;;
    5) log "pytest collected no tests: that counts as a failure"; status=1 ;;
    *) log "pytest failed (exit code $rc)"; status=$rc ;;
esac

if [[ "$status" -eq 0 ]]; then
    log "all checks passed"
fi
exit "$status"
