# shellcheck shell=bash
# Terraform toolchain for the tests and CI, offline. Source it (from the repository root or anywhere):
#
#   source scripts/tf-env.sh          # exports TASKAPI_TF_PLUGIN_DIR, TASKAPI_CHECKOV_VENV, TF_* defaults
#   tf_env_ensure_checkov             # creates/reuses checkov's own venv (checkov clashes with python-hcl2)
#
# The provider mirror is not hard-coded: $TASKAPI_TF_PLUGIN_DIR if set, else the parent of the first
# directory named registry.terraform.io (with hashicorp/aws inside) at most 4 levels below /.

_tf_env_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ -z "${TASKAPI_TF_PLUGIN_DIR:-}" ]]; then
    while IFS= read -r _tf_reg; do
        if [[ -d "$_tf_reg/hashicorp/aws" ]]; then
            TASKAPI_TF_PLUGIN_DIR="$(dirname "$_tf_reg")"
            break
        fi
    done < <(find / -maxdepth 4 \( -path /proc -o -path /sys -o -path /dev -o -path /run \) -prune \
        -o -type d -name registry.terraform.io -print 2>/dev/null)
    unset _tf_reg
fi
if [[ -n "${TASKAPI_TF_PLUGIN_DIR:-}" ]]; then
    export TASKAPI_TF_PLUGIN_DIR
else
    printf 'warning: no Terraform provider mirror (registry.terraform.io/hashicorp/aws) found; set TASKAPI_TF_PLUGIN_DIR\n' >&2
fi

export TASKAPI_CHECKOV_VENV="${TASKAPI_CHECKOV_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/taskapi/venv-checkov}"
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1

# checkov in its own venv, pinned like tests/terraform/tftools.py (CHECKOV_REQUIREMENT).
tf_env_ensure_checkov() {
    "${PYTHON:-python3}" "$_tf_env_root/tests/terraform/tftools.py" checkov >/dev/null
    export TASKAPI_CHECKOV="$TASKAPI_CHECKOV_VENV/bin/checkov"
}
