#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft broker+controller) for tracefeed. No Docker: the
# official broker jars come from Maven Central (infra/kafka/pom.xml).
#
# usage: infra/kafka.sh install              resolve the jars once (re-runs are instant)
#        infra/kafka.sh start                start and wait until ready (reuses a running one)
#        infra/kafka.sh stop [--kill]        SIGTERM (30 s grace, then SIGKILL); --kill: SIGKILL now
#        infra/kafka.sh status               exit 0 running, 3 stopped, 1 running but not answering
#        infra/kafka.sh logs [-f] [N]        last N (100) lines of the broker log; -f follows
#
# Clients authenticate with SASL/SCRAM-SHA-512, one user per role (admin, node, features,
# controller, agent), passwords in $TRACEFEED_HOME/secrets/kafka-<role>.password (created
# on first start, mode 0600); the StandardAuthorizer applies the ACLs of
# infra/kafka/acls.mjs, set on every start. A data dir formatted without these users
# (before authentication, or with other passwords) is moved aside and a new one formatted.
#
# env:   TRACEFEED_HOME                     state dir (default <repo>/.tracefeed)
#        TRACEFEED_KAFKA_PORT               client listener on 127.0.0.1 (default 9092)
#        TRACEFEED_KAFKA_CONTROLLER_PORT    KRaft controller listener (default 9093)
#        TRACEFEED_KAFKA_START_TIMEOUT      seconds to wait for readiness (default 60)
#        TRACEFEED_KAFKA_STOP_TIMEOUT       seconds of SIGTERM grace (default 30)
#        TRACEFEED_KAFKA_HEAP_OPTS          JVM heap flags (default -Xmx512m)
set -euo pipefail

TF_NAME=kafka
# shellcheck source=infra/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POM="$TF_REPO/infra/kafka/pom.xml"
LOG4J_CONF="$TF_REPO/infra/kafka/log4j2.properties"
PROBE="$TF_REPO/infra/kafka/probe.mjs"
ACLS="$TF_REPO/infra/kafka/acls.mjs"

[[ -r $POM ]] || tf_die "missing $POM"
pom_text=$(<"$POM")
[[ $pom_text =~ \<kafka.version\>([^<]+)\</kafka.version\> ]] ||
  tf_die "cannot read <kafka.version> from $POM"
KAFKA_VERSION=${BASH_REMATCH[1]}

PORT=${TRACEFEED_KAFKA_PORT:-9092}
CONTROLLER_PORT=${TRACEFEED_KAFKA_CONTROLLER_PORT:-9093}
START_TIMEOUT=${TRACEFEED_KAFKA_START_TIMEOUT:-60}
STOP_TIMEOUT=${TRACEFEED_KAFKA_STOP_TIMEOUT:-30}
read -r -a HEAP_OPTS <<<"${TRACEFEED_KAFKA_HEAP_OPTS:--Xmx512m}"
NODE_ID=1

KDIR="$TF_HOME/kafka"
VDIR="$KDIR/$KAFKA_VERSION"
LIB="$VDIR/lib"
MARKER="$VDIR/.installed" # copy of the pom the jars were resolved from
DATA="$KDIR/data"
CONF="$KDIR/server.properties"
CLUSTER_ID_FILE="$KDIR/cluster.id"
LOGS="$KDIR/logs"
SERVER_LOG="$LOGS/server.log"
OUT="$LOGS/kafka.out" # JVM stdout/stderr (crashes before log4j starts land here)
PIDFILE="$KDIR/kafka.pid"
PORTSFILE="$KDIR/kafka.ports" # "PORT CONTROLLER_PORT" of the running broker
LOCK="$KDIR/.lock"

# SASL users, one per client role (src/common/kafka.ts KafkaRole); admin is the super user
# the broker and controller also use between themselves.
ROLES=(admin node features controller agent)
# Bump when the users or their setup change: data dirs formatted before are replaced.
AUTH_VERSION=1
AUTH_MARKER="$DATA/.tracefeed-auth"

# --- install ---------------------------------------------------------------------------

installed() {
  [[ -f $MARKER ]] && cmp -s "$MARKER" "$POM"
}

check_java() {
  tf_need_cmd java "install Java 17+ (Debian: apt-get install default-jdk-headless, or run scripts/bootstrap.sh)"
  local v
  v=$(java -version 2>&1 | head -n1)
  if [[ $v =~ \"([0-9]+)(\.[0-9]+)* ]] && ((BASH_REMATCH[1] < 17)); then
    tf_die "Kafka $KAFKA_VERSION needs Java 17+, found: $v"
  fi
}

cmd_install() {
  installed && return 0
  check_java
  tf_need_cmd mvn "install Maven (Debian: apt-get install maven, or run scripts/bootstrap.sh)"
  mkdir -p "$VDIR" "$LOGS"
  local tmp="$VDIR/lib.tmp.$$" log="$LOGS/install.log" t0=$SECONDS
  tf_log "kafka: resolving Apache Kafka $KAFKA_VERSION jars from Maven Central (first run only; log: $log)"
  rm -rf "$tmp"
  if ! mvn -q -B -f "$POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime >"$log" 2>&1; then
    rm -rf "$tmp"
    tf_show_log_tail "$log"
    tf_die "Maven could not resolve the Kafka jars (log: $log); is Maven Central reachable?"
  fi
  [[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || {
    rm -rf "$tmp"
    tf_die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing from its output (log: $log)"
  }
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  cp "$POM" "$MARKER"
  tf_log "kafka: installed $(find "$LIB" -name '*.jar' | wc -l) jars into $LIB in $((SECONDS - t0)) s"
}

# --- process helpers -------------------------------------------------------------------

# is_ours PID: PID is a live broker started by this script for this TRACEFEED_HOME.
is_ours() {
  tf_pid_alive "$1" || return 1
  local cmd
  cmd=$(tf_pid_cmdline "$1")
  [[ $cmd == *kafka.Kafka* && $cmd == *"$CONF"* ]]
}

# our_pid: print the pid of our running broker (from the pid file, or adopted from a
# listener on our ports if the pid file was lost). Cleans up a stale pid file.
our_pid() {
  local pid p name lpid
  pid=$(tf_read_pidfile "$PIDFILE")
  if [[ -n $pid ]] && is_ours "$pid"; then
    printf '%s\n' "$pid"
    return 0
  fi
  [[ -n $pid ]] && rm -f "$PIDFILE"
  for p in $(running_ports) "$PORT"; do
    if read -r name lpid < <(tf_port_listener "$p") && [[ $lpid != "?" ]] && is_ours "$lpid"; then
      printf '%s\n' "$lpid" >"$PIDFILE"
      printf '%s\n' "$lpid"
      return 0
    fi
  done
  return 1
}

# running_ports: "PORT CONTROLLER_PORT" the running broker was started with.
running_ports() {
  local line=""
  [[ -r $PORTSFILE ]] && read -r line <"$PORTSFILE"
  printf '%s\n' "${line:-$PORT $CONTROLLER_PORT}"
}

# ready: the broker serves Metadata requests on PORT (falls back to "port accepts and the
# log says started" when node is unavailable).
ready() {
  local port=$1
  tf_port_open "$port" || return 1
  if command -v node >/dev/null 2>&1; then
    TRACEFEED_KAFKA_PROBE_USER=admin TRACEFEED_KAFKA_PROBE_PASSWORD_FILE="$TF_SECRETS/kafka-admin.password" \
      node "$PROBE" 127.0.0.1 "$port" "$NODE_ID" 3000 >/dev/null 2>&1
  else
    grep -q "Kafka Server started" "$SERVER_LOG" 2>/dev/null
  fi
}

# Byte offsets of the logs when this start began: failures show only this run's lines.
LOG_OFFSET=0
OUT_OFFSET=0

show_logs_and_die() {
  tf_show_log_tail "$SERVER_LOG" 30 "$LOG_OFFSET"
  tf_show_log_tail "$OUT" 30 "$OUT_OFFSET"
  tf_die "$*"
}

# wait_ready PID PORT LOG_OFFSET: wait until the broker is ready or fail with the log.
wait_ready() {
  local pid=$1 port=$2 offset=$3 deadline=$((SECONDS + START_TIMEOUT)) logged=0
  while :; do
    if ! tf_pid_alive "$pid"; then
      rm -f "$PIDFILE" "$PORTSFILE"
      show_logs_and_die "the broker process (pid $pid) exited during startup"
    fi
    if ((!logged)) && [[ -f $SERVER_LOG ]] &&
      tail -c "+$((offset + 1))" "$SERVER_LOG" | grep -q "Kafka Server started"; then
      logged=1
    fi
    # Require the log line from *this* run as well as a live probe; a log that rolled over
    # (smaller than the offset) cannot be checked, so rely on the probe then.
    if { ((logged)) || (($(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0) < offset)); } &&
      ready "$port"; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      show_logs_and_die "the broker did not become ready on 127.0.0.1:$port within ${START_TIMEOUT} s (pid $pid is still running; see $SERVER_LOG, stop it with infra/kafka.sh stop)"
    fi
    sleep 0.5
  done
}

# check_port PORT VAR: die if PORT is held by anything other than our broker.
check_port() {
  local port=$1 var=$2 name lpid
  if read -r name lpid < <(tf_port_listener "$port"); then
    tf_die "port $port on 127.0.0.1 is in use by $(tf_describe_listener "$name" "$lpid") which is not tracefeed's Kafka; stop it or set $var"
  fi
}

# render_config FILE: write server.properties to FILE (mode 0600: it holds the admin password).
render_config() {
  local admin_pw role pw plain_users=""
  admin_pw=$(tf_secret_value kafka-admin) || exit 1
  for role in "${ROLES[@]}"; do
    pw=$(tf_secret_value "kafka-$role") || exit 1
    plain_users+=" user_$role=\"$pw\""
  done
  mkdir -p "$DATA" "$LOGS"
  rm -f "$1"
  (umask 077 && : >"$1")
  cat >"$1" <<EOF
# Generated by infra/kafka.sh on every start; edits are overwritten.
# Single-node KRaft cluster for local development and tests.
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$NODE_ID@127.0.0.1:$CONTROLLER_PORT
listeners=CLIENT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=CLIENT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT
# Clients and the broker itself: SCRAM-SHA-512, users in the metadata log (created when
# the storage is formatted). The same users and passwords over PLAIN, from this file, for
# librdkafka before 2.6.1 (Debian's 2.0.2 in the node agent), whose SCRAM Kafka 4
# rejects. The controller listener cannot use SCRAM (its users live in the log it
# serves): PLAIN with the admin user only.
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_pw";
listener.name.client.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_pw" user_admin="$admin_pw";
sasl.mechanism.controller.protocol=PLAIN
# What each user may do: ACLs (infra/kafka/acls.mjs); nothing without one.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
log.dirs=$DATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# One node: 1 partition for the internal topics (default 50) keeps startup and first
# consumer-group join fast.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
# After a crash (stop --kill) the restarted broker cannot register until its previous
# session expires; shorter than the 9 s default so fault tests restart quickly.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
# A local broker must not grow without bound, and after an unclean stop it rescans only
# the segments past its recovery point: 64 MiB segments keep that scan (and so a restart)
# short; 1 GiB or 24 h per partition is plenty of history for one host.
log.segment.bytes=67108864
log.retention.bytes=1073741824
log.retention.hours=24
log.retention.check.interval.ms=60000
EOF
}

write_config() {
  render_config "$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
}

# config_current: the running broker was started from the configuration we would write now.
config_current() {
  render_config "$CONF.want"
  local rc=0
  cmp -s "$CONF.want" "$CONF" || rc=1
  rm -f "$CONF.want"
  return "$rc"
}

# auth_fingerprint: what the data dir's users were made from (version and passwords),
# hashed; stored in AUTH_MARKER when the storage is formatted.
auth_fingerprint() {
  local role pw text
  text="tracefeed-kafka-auth v$AUTH_VERSION"$'\n'
  for role in "${ROLES[@]}"; do
    pw=$(tf_secret_value "kafka-$role") || exit 1
    text+="$role $pw"$'\n'
  done
  printf '%s' "$text" | sha256sum | cut -d' ' -f1
}

# apply_acls: the ACLs of every role, as the admin user (idempotent), checked by reading
# them back.
apply_acls() {
  local log="$LOGS/acls.log"
  tf_need_cmd node "install Node.js 20+ (it sets the ACLs of the tracefeed users)"
  [[ -f $TF_REPO/node_modules/kafkajs/package.json ]] ||
    tf_die "kafkajs is not installed in $TF_REPO/node_modules (it sets the ACLs of the tracefeed users); run npm ci (or scripts/bootstrap.sh)"
  if ! TRACEFEED_HOME="$TF_HOME" node "$ACLS" "127.0.0.1:$PORT" >>"$log" 2>&1; then
    tf_show_log_tail "$log" 20
    tf_die "could not set the ACLs of the tracefeed users (log: $log)"
  fi
}

format_storage() {
  local fp aside
  fp=$(auth_fingerprint) || exit 1
  if [[ -f $DATA/meta.properties ]]; then
    [[ -f $AUTH_MARKER && $(<"$AUTH_MARKER") == "$fp" ]] && return 0
    # Formatted before authentication, or with other users or passwords: its metadata
    # has no (or other) SCRAM users, which only a format can add. Keep it aside.
    aside="$KDIR/data.replaced-$(date -u +%Y%m%dT%H%M%SZ)"
    if [[ -f $AUTH_MARKER ]]; then
      tf_log "kafka: $DATA was formatted with other users or passwords (the secrets in $TF_SECRETS changed)"
    else
      tf_log "kafka: $DATA was formatted without authentication (no $AUTH_MARKER)"
    fi
    tf_log "kafka: moving it to $aside and formatting a new one with the SCRAM users; its topics and offsets stay there (remove it when no longer needed)"
    mv "$DATA" "$aside"
    mkdir -p "$DATA"
  fi
  local cid="" log="$LOGS/format.log" role pw
  local -a scram=()
  for role in "${ROLES[@]}"; do
    pw=$(tf_secret_value "kafka-$role") || exit 1
    scram+=(--add-scram "SCRAM-SHA-512=[name=$role,password=$pw]")
  done
  [[ -s $CLUSTER_ID_FILE ]] && read -r cid <"$CLUSTER_ID_FILE"
  if [[ -z $cid ]]; then
    cid=$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>"$log" | tail -n1) || true
    [[ $cid =~ ^[A-Za-z0-9_-]{22}$ ]] || {
      tf_show_log_tail "$log"
      tf_die "kafka-storage random-uuid failed (got '$cid'; log: $log)"
    }
    printf '%s\n' "$cid" >"$CLUSTER_ID_FILE"
  fi
  tf_log "kafka: formatting storage in $DATA (cluster id $cid)"
  if ! java -cp "$LIB/*" kafka.tools.StorageTool format --ignore-formatted \
    -t "$cid" -c "$CONF" "${scram[@]}" >>"$log" 2>&1; then
    tf_show_log_tail "$log"
    tf_die "formatting Kafka storage failed (log: $log)"
  fi
  (umask 077 && printf '%s\n' "$fp" >"$AUTH_MARKER")
}

# --- commands --------------------------------------------------------------------------

cmd_start() {
  tf_check_port_var TRACEFEED_KAFKA_PORT "$PORT"
  tf_check_port_var TRACEFEED_KAFKA_CONTROLLER_PORT "$CONTROLLER_PORT"
  [[ $PORT != "$CONTROLLER_PORT" ]] ||
    tf_die "TRACEFEED_KAFKA_PORT and TRACEFEED_KAFKA_CONTROLLER_PORT must differ (both $PORT)"
  tf_lock "$LOCK"

  local pid rport rcport t0=$SECONDS offset
  if pid=$(our_pid); then
    read -r rport rcport < <(running_ports)
    if [[ $rport != "$PORT" || $rcport != "$CONTROLLER_PORT" ]]; then
      tf_die "already running (pid $pid) on ports $rport/$rcport, but $PORT/$CONTROLLER_PORT were requested; run infra/kafka.sh stop first"
    fi
    if config_current; then
      if ! ready "$PORT"; then
        tf_log "kafka: pid $pid is running but not answering yet on 127.0.0.1:$PORT; waiting"
        wait_ready "$pid" "$PORT" 0
      fi
      apply_acls
      echo "kafka: already running (pid $pid)"
      return 0
    fi
    # Started from an older configuration (before authentication, or another version of
    # this script): restart it with the current one.
    tf_log "kafka: pid $pid runs an older configuration than $CONF would be now (e.g. no authentication); restarting it"
    tf_terminate "$pid" "$STOP_TIMEOUT" || tf_die "pid $pid is still alive after SIGKILL"
    rm -f "$PIDFILE" "$PORTSFILE"
  fi

  check_port "$PORT" TRACEFEED_KAFKA_PORT
  check_port "$CONTROLLER_PORT" TRACEFEED_KAFKA_CONTROLLER_PORT
  cmd_install
  check_java
  write_config
  format_storage

  offset=$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0)
  LOG_OFFSET=$offset
  OUT_OFFSET=$(stat -c %s "$OUT" 2>/dev/null || echo 0)
  rm -f "$PIDFILE"
  printf '%s %s\n' "$PORT" "$CONTROLLER_PORT" >"$PORTSFILE"
  printf '\n==== %s: starting Kafka %s\n' "$(date -Is)" "$KAFKA_VERSION" >>"$OUT"
  # New session (setsid) + SIGHUP ignored (nohup): survives the calling shell/test runner.
  # All fds point away from the caller's pipes so `$(infra/kafka.sh start)` returns.
  # The inner bash writes its own pid, then execs java under that same pid.
  # shellcheck disable=SC2016 # $$, $0 and $@ expand in the inner bash
  (
    exec 9>&- # do not hand our lock fd to the broker
    cd "$KDIR"
    exec nohup setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$PIDFILE" \
      java "${HEAP_OPTS[@]}" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$LOG4J_CONF" \
      -cp "$LIB/*" kafka.Kafka "$CONF"
  ) </dev/null >>"$OUT" 2>&1 &

  local i
  for ((i = 0; i < 50; i++)); do
    pid=$(tf_read_pidfile "$PIDFILE")
    [[ -n $pid ]] && break
    sleep 0.1
  done
  [[ -n $pid ]] || show_logs_and_die "the broker process did not start (see $OUT)"
  tf_log "kafka: starting broker (pid $pid) on 127.0.0.1:$PORT, waiting up to ${START_TIMEOUT} s"
  wait_ready "$pid" "$PORT" "$offset"
  apply_acls
  echo "kafka: started (pid $pid) on 127.0.0.1:$PORT in $((SECONDS - t0)) s"
}

cmd_stop() {
  local how=term pid
  case ${1:-} in
  "") ;;
  --kill) how="kill" ;;
  *) tf_die "unknown option for stop: $1 (expected --kill)" ;;
  esac
  tf_lock "$LOCK"
  if ! pid=$(our_pid); then
    rm -f "$PIDFILE" "$PORTSFILE"
    echo "kafka: stopped"
    return 0
  fi
  [[ $how == kill ]] && tf_log "kafka: sending SIGKILL to pid $pid"
  tf_terminate "$pid" "$STOP_TIMEOUT" "$how" || tf_die "pid $pid is still alive after SIGKILL"
  rm -f "$PIDFILE" "$PORTSFILE"
  echo "kafka: stopped (pid $pid)"
}

cmd_status() {
  local pid rport rcport
  if ! pid=$(our_pid); then
    echo "kafka: stopped"
    return 3
  fi
  read -r rport rcport < <(running_ports)
  if tf_port_open "$rport"; then
    echo "kafka: running (pid $pid) on 127.0.0.1:$rport"
    return 0
  fi
  echo "kafka: not responding (pid $pid; 127.0.0.1:$rport does not accept connections)"
  return 1
}

cmd_logs() {
  local follow=0 n=100
  while (($#)); do
    case $1 in
    -f | --follow) follow=1 ;;
    [0-9]*) n=$1 ;;
    *) tf_die "usage: infra/kafka.sh logs [-f] [N]" ;;
    esac
    shift
  done
  [[ -f $SERVER_LOG ]] || tf_die "no broker log yet ($SERVER_LOG); run infra/kafka.sh start"
  if ((follow)); then
    exec tail -n "$n" -F "$SERVER_LOG"
  fi
  tail -n "$n" "$SERVER_LOG"
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

case ${1:-} in
install)
  if ! installed; then
    tf_lock "$LOCK"
    cmd_install
  fi
  ;;
start) cmd_start ;;
stop) cmd_stop "${@:2}" ;;
status) cmd_status ;;
logs) cmd_logs "${@:2}" ;;
-h | --help | help) usage ;;
*)
  tf_log "kafka: unknown command '${1:-}'"
  usage
  ;;
esac
