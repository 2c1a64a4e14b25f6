#!/usr/bin/env bash
# Idempotent machine + repo bootstrap; `npm start` and `npm test` run it first.
# Cold (fresh Debian 12, as root): Debian packages, npm dependencies, builds, the Python
# environment (scripts/python-env.sh), Kafka jars.
# Warm: prints nothing and takes well under 3 s. Each step prints one line (to stderr) only
# when it does work; a failing step prints the tail of its log and exits 1.
#
# usage: scripts/bootstrap.sh [--force]   --force: rerun the build steps even if unchanged
# env:   TRACEFEED_HOME                   state dir (default <repo>/.tracefeed); logs/ holds
#                                         step logs, stamps/ the build-step fingerprints
#        TRACEFEED_BOOTSTRAP_FORCE=1      same as --force
# Starting Kafka/Redis is separate: infra/up.sh.
set -euo pipefail

TF_NAME=bootstrap
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../infra/lib.sh"
cd "$TF_REPO"

FORCE=${TRACEFEED_BOOTSTRAP_FORCE:-0}
case ${1:-} in
"") ;;
--force) FORCE=1 ;;
-h | --help)
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 0
  ;;
*) tf_die "unknown argument '$1' (usage: scripts/bootstrap.sh [--force])" ;;
esac

# chromium: the console's browser tests (driven by puppeteer-core, which downloads no browser).
DEBIAN_PACKAGES=(clang llvm libbpf-dev librdkafka-dev bpftool make gcc g++ redis-server nftables iproute2 python3 python3-venv libcap2-bin chromium dnsmasq-base dnsutils)
LOGDIR="$TF_HOME/logs"
STAMPS="$TF_HOME/stamps"
START=$SECONDS
WORKED=0

step() {
  WORKED=1
  tf_log "bootstrap: $*"
}

# run_logged NAME CMD...: run CMD with output to $LOGDIR/NAME.log; on failure show the
# tail of the log and exit 1. fd 9 (our lock) is not passed on.
run_logged() {
  local name=$1 log="$LOGDIR/$1.log"
  shift
  mkdir -p "$LOGDIR"
  printf '==== %s: %s\n' "$(date -Is)" "$*" >"$log"
  if ! "$@" >>"$log" 2>&1 9>&-; then
    tf_show_log_tail "$log" 40
    tf_die "'$*' failed (full log: $log)"
  fi
}

# fingerprint PATH...: hash of the names and contents of all files under PATHs (missing
# paths are recorded as missing), excluding node_modules. Computed after a successful
# build so that build outputs are covered too: deleting them triggers a rebuild.
fingerprint() {
  local p
  local -a present=()
  for p; do
    if [[ -e $p ]]; then present+=("$p"); else printf 'missing %s\n' "$p"; fi
  done
  if ((${#present[@]})); then
    find "${present[@]}" -name node_modules -prune -o -type f -print0 |
      LC_ALL=C sort -z | xargs -0 -r sha256sum
  fi
}

# build_step NAME DESCRIPTION INPUTS -- CMD...: run CMD unless the fingerprint of the
# space-separated INPUTS (plus the command and $EXTRA_FINGERPRINT) matches the last success.
build_step() {
  local name=$1 desc=$2 inputs=$3 stamp="$STAMPS/$1" old="" now
  shift 4
  local -a paths
  read -r -a paths <<<"$inputs"
  now=$({ printf '%s\n' "$*" "${EXTRA_FINGERPRINT:-}"; fingerprint "${paths[@]}"; } | sha256sum)
  [[ -r $stamp ]] && read -r old <"$stamp"
  if ((!FORCE)) && [[ $old == "$now" ]]; then
    return 0
  fi
  step "$desc"
  run_logged "$name" "$@"
  mkdir -p "$STAMPS"
  { printf '%s\n' "$*" "${EXTRA_FINGERPRINT:-}"; fingerprint "${paths[@]}"; } | sha256sum >"$stamp"
}

java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local v
  v=$(java -version 2>&1) || return 1
  v=${v%%$'\n'*}
  [[ $v =~ \"([0-9]+) ]] && ((BASH_REMATCH[1] >= 17))
}

# --- 1. platform -------------------------------------------------------------------------
((EUID == 0)) || tf_die "tracefeed needs root to install packages and load eBPF; run as root or with sudo"
[[ $OSTYPE == linux* ]] || tf_die "tracefeed needs Linux (it loads eBPF programs); this is $OSTYPE"
[[ -r /sys/kernel/btf/vmlinux ]] ||
  tf_die "/sys/kernel/btf/vmlinux is missing: kernel $(uname -r) was built without BTF type information; tracefeed's CO-RE eBPF programs need a kernel with CONFIG_DEBUG_INFO_BTF=y (Debian 12's stock kernels have it)"

tf_lock "$TF_HOME/bootstrap.lock" 1800

# --- 2. Debian packages, Java 17 + Maven -------------------------------------------------
command -v dpkg-query >/dev/null 2>&1 ||
  tf_die "dpkg-query not found: bootstrap supports Debian/Ubuntu; install manually: ${DEBIAN_PACKAGES[*]} Java 17+ Maven"
declare -A installed_pkgs=()
while read -r pkg status; do
  [[ $status == ii* ]] && installed_pkgs[$pkg]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${DEBIAN_PACKAGES[@]}" 2>/dev/null || true)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  [[ -n ${installed_pkgs[$pkg]:-} ]] || missing+=("$pkg")
done
java_ok || missing+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if ((${#missing[@]})); then
  step "installing Debian packages: ${missing[*]} (log: $LOGDIR/apt.log)"
  tf_apt_install --update-first "${missing[@]}"
  java_ok || tf_die "Java 17+ is still not the default 'java' after installing default-jdk-headless; fix with: update-alternatives --config java"
fi

# --- 3. npm dependencies -------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  tf_die "node and npm are required (Node.js 20+); install Node.js 20 first"
fi
node_version=$(node --version)
if ! [[ $node_version =~ ^v([0-9]+) ]] || ((BASH_REMATCH[1] < 20)); then
  tf_die "Node.js 20+ is required, found $node_version"
fi
[[ -f package-lock.json ]] || tf_die "package-lock.json is missing in $TF_REPO"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  step "installing npm dependencies (npm ci)"
  run_logged npm-ci npm ci --no-audit --no-fund
  touch node_modules/.package-lock.json
fi

# --- 4. builds (each only if its build file exists yet) --------------------------------
# The native addon includes headers from bpf/, so it is fingerprinted with bpf/ too.
if [[ -f bpf/Makefile ]]; then
  EXTRA_FINGERPRINT="kernel $(uname -r)" \
    build_step bpf "building eBPF programs (make -C bpf)" "bpf" -- make -C bpf
fi
if [[ -f native/build.mjs ]]; then
  EXTRA_FINGERPRINT="node $node_version" \
    build_step native "building native addon (node native/build.mjs)" "native bpf package-lock.json" -- node native/build.mjs
fi
if [[ -f tsconfig.build.json ]]; then
  # The console page (src/console/web) is bundled into dist/console/web in the same step.
  build_step tsc "compiling TypeScript (tsc -p tsconfig.build.json) and bundling the console page" \
    "src tsconfig.json tsconfig.build.json scripts/build-console.mjs package-lock.json dist" -- \
    bash -c 'npx --no-install tsc -p tsconfig.build.json && node scripts/build-console.mjs'
fi

# --- 4b. Python environment: the example notebooks and the scenario timeline (matplotlib) ---
bash scripts/python-env.sh >/dev/null 9>&- || tf_die "scripts/python-env.sh failed"

# --- 5. Kafka jars (starting is separate: infra/up.sh) ------------------------------------
bash infra/kafka.sh install 9>&- || tf_die "infra/kafka.sh install failed"

((WORKED)) && tf_log "bootstrap: done in $((SECONDS - START)) s"
exit 0
