#!/usr/bin/env bash
# Start the gateway locally with the embedded runner: `taskapi serve` on 127.0.0.1:8080.
# Arguments go to `taskapi serve` (e.g. ./scripts/dev.sh --port 9090).
# Creates or reuses .venv the same way scripts/test.sh does.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$TASKAPI_ROOT"

default_podman_env
ensure_venv

cat >&2 <<'HINT'
==> starting the gateway (taskapi serve). In another shell, with the venv active (. .venv/bin/activate):
      taskapi deploy examples/hello.yaml
      curl -X POST localhost:8080/hello -H 'Content-Type: application/json' -d '{"config":{}}'
      curl 'localhost:8080/hello?jobID=<job_id from the answer>'
    More examples in examples/README.md.
HINT

exec taskapi serve "$@"
