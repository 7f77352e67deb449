#!/usr/bin/env bash
# Offline checks of infra/: the Pulumi program (typecheck + unit tests under mocks) and the
# cluster files (yamllint, kubernetes-validate --strict, CRD schemas, semantic checks),
# plus shellcheck of the infra and packaging scripts.
#
# Runnable from any directory; installs what it needs (npm ci in infra/azure, a Python
# venv in infra/.venv) and skips an install whose lockfile has not changed since the last
# successful one (INFRA_FORCE_INSTALL=1 forces it). Needs: node >= 20 with npm, python3
# >= 3.10 with venv. Talks to nothing but the package registries.
#
# Ends with a plain line `infra: N passed, M failed`; exits non-zero if anything failed.
set -euo pipefail

INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$INFRA/.." && pwd)"
AZURE="$INFRA/azure"
VENV="$INFRA/.venv"
LOGDIR="$INFRA/.cache/check"
K8S_VERSION="1.33.0"
mkdir -p "$LOGDIR"

passed=0
failed=0
failures=()

note() { printf '%s\n' "$*"; }

# record NAME PASSED FAILED LOG: adds counts; prints the log tail when something failed.
record() {
    local name=$1 p=$2 f=$3 log=$4
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -gt 0 ]; then
        failures+=("$name")
        note "FAIL  $name ($p passed, $f failed); last lines of $log:"
        tail -n 40 "$log" | sed 's/^/      /'
    else
        note "ok    $name ($p passed)"
    fi
}

# step NAME CMD...: a check that counts as one.
step() {
    local name=$1
    shift
    local log
    log="$LOGDIR/$(printf '%s' "$name" | tr -c 'A-Za-z0-9' '_').log"
    if "$@" >"$log" 2>&1; then record "$name" 1 0 "$log"; else record "$name" 0 1 "$log"; fi
}

stamp_ok() { [ -f "$2" ] && [ "$(cat "$2")" = "$(sha256sum "$1" | cut -d' ' -f1)" ] && [ "${INFRA_FORCE_INSTALL:-0}" != 1 ]; }
stamp_write() { sha256sum "$1" | cut -d' ' -f1 >"$2"; }

# --- installs ---------------------------------------------------------------------------
command -v node >/dev/null || { note "infra/check.sh: node is required"; exit 2; }
command -v python3 >/dev/null || { note "infra/check.sh: python3 is required"; exit 2; }

install_node() {
    cd "$AZURE"
    local stamp="$AZURE/node_modules/.hybrid-burst-installed"
    if stamp_ok package-lock.json "$stamp"; then return 0; fi
    npm ci --no-audit --no-fund --loglevel=error
    stamp_write package-lock.json "$stamp"
}

install_python() {
    local stamp="$VENV/.hybrid-burst-installed"
    if [ -x "$VENV/bin/python" ] && stamp_ok "$INFRA/requirements-check.txt" "$stamp"; then return 0; fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$INFRA/requirements-check.txt"
    stamp_write "$INFRA/requirements-check.txt" "$stamp"
}

start=$(date +%s)
install_log="$LOGDIR/install.log"
if ! { install_node && install_python; } >"$install_log" 2>&1; then
    note "infra/check.sh: installing the check tools failed:"
    tail -n 40 "$install_log"
    note "infra: 0 passed, 1 failed"
    exit 1
fi
note "tools ready in $(($(date +%s) - start))s"

# --- infra/azure: the Pulumi program -----------------------------------------------------
step "azure: tsc --noEmit (strict)" bash -c "cd '$AZURE' && node_modules/.bin/tsc -p tsconfig.json --noEmit"

azure_tests() {
    cd "$AZURE"
    rm -rf build
    node_modules/.bin/tsc -p tsconfig.json
    node --test build/test/
}
log="$LOGDIR/azure_tests.log"
set +e
azure_tests >"$log" 2>&1
rc=$?
set -e
p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -n1)
f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -n1)
p=${p:-0}
f=${f:-0}
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # e.g. a compile error: no test ran
if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # no test at all is a failure
record "azure: node --test (Pulumi program under mocks)" "$p" "$f" "$log"

# The rendered cloud-init bootstrap is a shell script: lint it like the others.
render_bootstrap() {
    cd "$AZURE"
    node -e '
        const { renderCloudInit, BOOTSTRAP_PATH } = require("./build/src/cloudInit.js");
        const yaml = require("js-yaml");
        const doc = yaml.load(renderCloudInit({ siteId: "home", tailscaleAuthKey: "x", tailscaleTags: "tag:burst", joinScript: "true" }));
        process.stdout.write(doc.write_files.find((f) => f.path === BOOTSTRAP_PATH).content);
    ' >"$LOGDIR/bootstrap.sh"
}
step "azure: render the node bootstrap script" render_bootstrap

# --- infra/cluster ----------------------------------------------------------------------
step "yamllint --strict (infra)" "$VENV/bin/yamllint" -c "$INFRA/.yamllint.yaml" --strict "$INFRA/cluster" "$AZURE/Pulumi.yaml" "$INFRA/.yamllint.yaml"

mapfile -t manifests < <("$VENV/bin/python" "$INFRA/cluster/validate.py" --list-manifests)
for m in "${manifests[@]}"; do
    step "kubernetes-validate --strict ${m#"$INFRA/"}" "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$m"
done

log="$LOGDIR/cluster_validate.log"
set +e
"$VENV/bin/python" "$INFRA/cluster/validate.py" >"$log" 2>&1
rc=$?
set -e
summary=$(grep -E '^cluster: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1 || true)
p=$(printf '%s' "$summary" | sed -n 's/^cluster: \([0-9]*\) passed.*/\1/p')
f=$(printf '%s' "$summary" | sed -n 's/.*passed, \([0-9]*\) failed$/\1/p')
p=${p:-0}
f=${f:-0}
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
record "cluster: CRD schemas and semantic checks (validate.py)" "$p" "$f" "$log"

# --- shell scripts ----------------------------------------------------------------------
for s in "$INFRA/check.sh" "$REPO/scripts/package-azure" "$REPO/scripts/test-package-azure" "$LOGDIR/bootstrap.sh"; do
    if [ -f "$s" ]; then
        step "shellcheck ${s#"$REPO/"}" "$VENV/bin/shellcheck" -S style "$s"
    else
        record "shellcheck ${s#"$REPO/"}" 0 1 /dev/null
    fi
done

note "infra checks took $(($(date +%s) - start))s"
if [ "$failed" -gt 0 ]; then
    note "failed: ${failures[*]}"
fi
echo "infra: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
