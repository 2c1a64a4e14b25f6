# shellcheck shell=bash
# Shared helpers for infra/*.sh and scripts/bootstrap.sh. Source it; don't run it.
#
# Callers set TF_NAME (prefix for messages) before sourcing. Defines:
#   TF_REPO  repository root (resolved from this file's location)
#   TF_HOME  state directory: ${TRACEFEED_HOME:-$TF_REPO/.tracefeed}
# Progress and errors go to stderr; result lines (status, "started") to stdout.

TF_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TF_HOME="${TRACEFEED_HOME:-$TF_REPO/.tracefeed}"
# Absolute and symlink-free: process ownership checks compare paths literally.
TF_HOME="$(mkdir -p "$TF_HOME" && cd "$TF_HOME" && pwd -P)"
TF_NAME="${TF_NAME:-tracefeed}"

tf_log() { printf '%s\n' "$*" >&2; }

tf_die() {
  printf '%s: error: %s\n' "$TF_NAME" "$*" >&2
  exit 1
}

# tf_need_cmd CMD HINT: die unless CMD is on PATH.
tf_need_cmd() {
  command -v "$1" >/dev/null 2>&1 || tf_die "'$1' not found on PATH; $2"
}

# tf_check_port_var NAME VALUE: die unless VALUE is a TCP port number.
tf_check_port_var() {
  if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then
    tf_die "$1 must be a TCP port number (1-65535), got '$2'"
  fi
}

# tf_lock FILE [SECONDS]: hold an exclusive lock on FILE (fd 9) until the script exits, so
# concurrent start/stop calls (parallel test suites) do not race each other.
tf_lock() {
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  if ! flock -w "${2:-180}" 9; then
    tf_die "timed out waiting for lock $1 (another $TF_NAME start/stop is running?)"
  fi
}

# tf_pid_alive PID: true if PID exists and is not a zombie (a reaped-later zombie has
# already released its ports; containers without an init process keep zombies around).
tf_pid_alive() {
  local pid=${1:-} stat
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  # (not $(<file): a failed redirection inside $() aborts the script under set -e)
  { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# tf_read_pidfile FILE: print the pid stored in FILE (empty if none).
tf_read_pidfile() {
  local pid=""
  [[ -r $1 ]] && { read -r pid <"$1" || true; } 2>/dev/null
  [[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
  return 0
}

# tf_pid_cmdline PID: the process's argv joined by spaces.
tf_pid_cmdline() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

# tf_pid_cwd PID: the process's working directory.
tf_pid_cwd() {
  readlink "/proc/$1/cwd" 2>/dev/null || true
}

# tf_port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
tf_port_open() {
  # shellcheck disable=SC2016 # $0 expands in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# tf_port_listener PORT: print "NAME PID" of a process listening on TCP PORT on any local
# address (from `ss -ltnp`). Returns 1 if nothing listens. NAME/PID are "?" if unknown.
tf_port_listener() {
  local port=$1 out
  if command -v ss >/dev/null 2>&1; then
    out=$(ss -Hltnp "sport = :$port" 2>/dev/null) || out=""
    [[ -n $out ]] || return 1
    if [[ $out =~ users:\(\(\"([^\"]+)\",pid=([0-9]+) ]]; then
      printf '%s %s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    else
      printf '? ?\n'
    fi
    return 0
  fi
  tf_port_open "$port" || return 1
  printf '? ?\n'
}

# tf_describe_listener NAME PID: human text for the port-conflict message.
tf_describe_listener() {
  if [[ $2 == "?" ]]; then
    printf 'an unknown process'
  else
    printf '%s (pid %s)' "$1" "$2"
  fi
}

# tf_terminate PID SECONDS [kill]: SIGTERM PID, wait up to SECONDS for it to exit, then
# SIGKILL. With "kill", SIGKILL immediately. Returns 1 if it is still alive at the end.
tf_terminate() {
  local pid=$1 secs=$2 how=${3:-term} i
  if [[ $how == kill ]]; then
    kill -KILL "$pid" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 5; i++)); do
      tf_pid_alive "$pid" || return 0
      sleep 0.2
    done
    tf_log "$TF_NAME: pid $pid did not exit within ${secs} s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for ((i = 0; i < 50; i++)); do
    tf_pid_alive "$pid" || return 0
    sleep 0.2
  done
  return 1
}

# tf_show_log_tail FILE [N] [OFFSET]: print the last N (30) lines of FILE to stderr,
# labelled; with OFFSET, only from that byte on (this run's part of an appended log).
tf_show_log_tail() {
  local file=$1 n=${2:-30} offset=${3:-0} size
  [[ -s $file ]] || return 0
  size=$(stat -c %s "$file")
  ((size >= offset)) || offset=0 # rotated since
  ((size > offset)) || return 0
  tf_log "---- last $n lines of $file ----"
  tail -c "+$((offset + 1))" "$file" | tail -n "$n" >&2
  tf_log "---- end of $file ----"
}

# tf_apt_install [--update-first] PKG...: install Debian packages non-interactively.
# Without --update-first, `apt-get update` runs only if the first install attempt fails
# (stale or empty package lists). Output goes to $TF_HOME/logs/apt.log.
tf_apt_install() {
  local update_first=0 log pkg
  if [[ ${1:-} == --update-first ]]; then
    update_first=1
    shift
  fi
  (($# > 0)) || return 0
  command -v apt-get >/dev/null 2>&1 ||
    tf_die "apt-get not found (tracefeed's installer supports Debian/Ubuntu); install manually: $*"
  ((EUID == 0)) || tf_die "installing $* needs root; run as root or with sudo"
  mkdir -p "$TF_HOME/logs"
  log="$TF_HOME/logs/apt.log"
  export DEBIAN_FRONTEND=noninteractive
  local -a opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  printf '\n==== %s: apt-get install %s\n' "$(date -Is)" "$*" >>"$log"
  if ((update_first)); then
    if ! apt-get update >>"$log" 2>&1; then
      tf_show_log_tail "$log"
      tf_die "apt-get update failed (log: $log)"
    fi
  fi
  if ! apt-get install "${opts[@]}" "$@" >>"$log" 2>&1; then
    if ((update_first)); then
      tf_show_log_tail "$log"
      tf_die "apt-get install $* failed (log: $log)"
    fi
    tf_log "$TF_NAME: install failed with the current package lists; running apt-get update and retrying"
    if ! apt-get update >>"$log" 2>&1 || ! apt-get install "${opts[@]}" "$@" >>"$log" 2>&1; then
      tf_show_log_tail "$log"
      tf_die "apt-get install $* failed (log: $log)"
    fi
  fi
  for pkg in "$@"; do
    [[ $pkg == redis-server ]] && tf_quiesce_distro_redis
  done
  return 0
}

# Debian's redis-server package starts its own service on 6379. tracefeed runs its own
# redis (infra/redis.sh), so right after *we* install the package, stop and disable the
# distro service so it does not hold the port or come back at boot.
tf_quiesce_distro_redis() {
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    if systemctl disable --now redis-server.service >/dev/null 2>&1; then
      tf_log "$TF_NAME: disabled Debian's redis-server.service (tracefeed runs its own redis via infra/redis.sh)"
    fi
  elif [[ -x /etc/init.d/redis-server ]]; then
    /etc/init.d/redis-server stop >/dev/null 2>&1 || true
    update-rc.d redis-server disable >/dev/null 2>&1 || true
  fi
  return 0
}

# --- secrets ---------------------------------------------------------------------------
# Passwords of the local services live in $TF_SECRETS (mode 0700), one file per user,
# mode 0600, 48 hex digits (192 random bits) each. They are created once and never
# rewritten; remove a file to rotate it (infra/README.md, "Credentials").
TF_SECRETS="$TF_HOME/secrets"

# tf_secret NAME: print the path of $TF_SECRETS/NAME.password, creating it if missing.
# Dies when the file or its directory can be read by other users.
tf_secret() {
  local file="$TF_SECRETS/$1.password" tmp mode
  if [[ ! -d $TF_SECRETS ]]; then
    (umask 077 && mkdir -p "$TF_SECRETS")
  fi
  mode=$(stat -c %a "$TF_SECRETS")
  if ((8#$mode & 8#077)); then
    tf_die "$TF_SECRETS is accessible to other users (mode $mode); fix it with: chmod 700 $TF_SECRETS"
  fi
  if [[ ! -s $file ]]; then
    tmp="$file.$$.tmp"
    (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$tmp")
    # First creator wins (concurrent starts): link fails if the file appeared meanwhile.
    ln "$tmp" "$file" 2>/dev/null || true
    rm -f "$tmp"
    [[ -s $file ]] || tf_die "could not create $file"
  fi
  mode=$(stat -c %a "$file")
  if ((8#$mode & 8#077)); then
    tf_die "$file is readable by other users (mode $mode); fix it with: chmod 600 $file (and rotate it: rm $file)"
  fi
  printf '%s\n' "$file"
}

# tf_secret_value NAME: print the password NAME (created if missing).
tf_secret_value() {
  local file value
  file=$(tf_secret "$1") || exit 1
  read -r value <"$file" || true
  [[ $value =~ ^[0-9a-f]{48}$ ]] ||
    tf_die "$file does not hold a tracefeed password (48 hex digits); remove it so that a new one is created"
  printf '%s\n' "$value"
}
