#!/usr/bin/env bash
# Local Apache Kafka (KRaft, every node broker+controller) for tracefeed: one node by
# default, or a replicated cluster of N nodes on loopback. No Docker: the official broker
# jars come from Maven Central (infra/kafka/pom.xml).
#
# usage: infra/kafka.sh install                    resolve the jars once (re-runs are instant)
#        infra/kafka.sh start [--brokers N]        start and wait until ready (reuses running
#                                                  nodes; starts the ones of the cluster that are down)
#        infra/kafka.sh stop [--kill]              SIGTERM (30 s grace, then SIGKILL); --kill: SIGKILL now
#        infra/kafka.sh status                     exit 0 running, 3 stopped, 1 running but not
#                                                  answering (or some nodes of the cluster down)
#        infra/kafka.sh logs [-f] [N] [--broker I] last N (100) lines of the broker log(s); -f follows
#
# N brokers (1..9): node i listens on TRACEFEED_KAFKA_PORT + 2(i-1) (clients) and
# TRACEFEED_KAFKA_CONTROLLER_PORT + 2(i-1) (KRaft), so 9092/9093, 9094/9095, 9096/9097 for
# three. Node 1 keeps the one-node layout (kafka/data, kafka/server.properties, kafka/logs);
# node i > 1 has kafka/data-<i>, kafka/server-<i>.properties, kafka/logs/broker-<i>. Topic
# defaults follow the size: replication factor min(3, N), min.insync.replicas 2 from 3
# nodes. A data dir formatted for another number of nodes is never reformatted: start
# refuses and says how to move it aside.
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
#        TRACEFEED_KAFKA_HEAP_OPTS          JVM heap flags per node (default -Xmx512m; -Xmx384m
#                                           each for several nodes)
#        TRACEFEED_KAFKA_BROKER_COUNT       number of nodes for start (default 1; --brokers wins)
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
COUNT=${TRACEFEED_KAFKA_BROKER_COUNT:-1}
MAX_BROKERS=9

KDIR="$TF_HOME/kafka"
VDIR="$KDIR/$KAFKA_VERSION"
LIB="$VDIR/lib"
MARKER="$VDIR/.installed" # copy of the pom the jars were resolved from
CLUSTER_ID_FILE="$KDIR/cluster.id"
LOGS="$KDIR/logs" # node 1's logs, and the script's own (install, format, acls)
COUNTFILE="$KDIR/kafka.brokers" # number of nodes of the cluster last started
LOCK="$KDIR/.lock"

# SASL users, one per client role (src/common/kafka.ts KafkaRole); admin is the super user
# the broker and controller also use between themselves.
ROLES=(admin node features controller agent)
# Bump when the users or their setup change: data dirs formatted before are replaced.
AUTH_VERSION=1

# check_count VALUE WHAT: die unless VALUE is a number of nodes we can run.
check_count() {
  if ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > MAX_BROKERS)); then
    tf_die "$2 must be a number of brokers from 1 to $MAX_BROKERS, got '$1'"
  fi
}

# node_vars I: the paths and ports of node I (node 1 keeps the one-node layout).
node_vars() {
  NID=$1
  NPORT=$((PORT + 2 * (NID - 1)))
  NCPORT=$((CONTROLLER_PORT + 2 * (NID - 1)))
  if ((NID == 1)); then
    DATA="$KDIR/data"
    CONF="$KDIR/server.properties"
    NLOGS="$LOGS"
    PIDFILE="$KDIR/kafka.pid"
    PORTSFILE="$KDIR/kafka.ports" # "PORT CONTROLLER_PORT" of the running broker
  else
    DATA="$KDIR/data-$NID"
    CONF="$KDIR/server-$NID.properties"
    NLOGS="$LOGS/broker-$NID"
    PIDFILE="$KDIR/kafka-$NID.pid"
    PORTSFILE="$KDIR/kafka-$NID.ports"
  fi
  SERVER_LOG="$NLOGS/server.log"
  OUT="$NLOGS/kafka.out" # JVM stdout/stderr (crashes before log4j starts land here)
  AUTH_MARKER="$DATA/.tracefeed-auth"
  SHAPE_MARKER="$DATA/.tracefeed-brokers" # the cluster this data dir was formatted for
}

# recorded_count: the number of nodes of the cluster last started here (1 if none).
recorded_count() {
  local n=""
  [[ -r $COUNTFILE ]] && read -r n <"$COUNTFILE"
  [[ $n =~ ^[1-9]$ ]] || n=1
  printf '%s\n' "$n"
}

# known_nodes: ids of every node that may be running: the last started cluster's, the
# requested ones, and any with a pid file.
known_nodes() {
  local max f i
  max=$(recorded_count)
  ((COUNT > max)) && max=$COUNT
  for f in "$KDIR"/kafka-[0-9].pid; do
    [[ -e $f ]] || continue
    i=${f##*/kafka-}
    i=${i%.pid}
    ((i > max)) && max=$i
  done
  seq 1 "$max"
}

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

# --- process helpers (of node NID: call node_vars first) ------------------------------

# is_ours PID: PID is a live broker started by this script for this TRACEFEED_HOME and node.
is_ours() {
  tf_pid_alive "$1" || return 1
  local cmd
  cmd=$(tf_pid_cmdline "$1")
  [[ $cmd == *kafka.Kafka* && $cmd == *"$CONF"* ]]
}

# our_pid: print the pid of the node's running broker (from the pid file, or adopted from
# a listener on its ports if the pid file was lost). Cleans up a stale pid file.
our_pid() {
  local pid p name lpid
  pid=$(tf_read_pidfile "$PIDFILE")
  if [[ -n $pid ]] && is_ours "$pid"; then
    printf '%s\n' "$pid"
    return 0
  fi
  [[ -n $pid ]] && rm -f "$PIDFILE"
  for p in $(running_ports) "$NPORT"; do
    if read -r name lpid < <(tf_port_listener "$p") && [[ $lpid != "?" ]] && is_ours "$lpid"; then
      printf '%s\n' "$lpid" >"$PIDFILE"
      printf '%s\n' "$lpid"
      return 0
    fi
  done
  return 1
}

# running_ports: "PORT CONTROLLER_PORT" the node's running broker was started with.
running_ports() {
  local line=""
  [[ -r $PORTSFILE ]] && read -r line <"$PORTSFILE"
  printf '%s\n' "${line:-$NPORT $NCPORT}"
}

# ready PORT: the node serves Metadata requests on PORT and is registered (falls back to
# "port accepts and the log says started" when node is unavailable).
ready() {
  local port=$1
  tf_port_open "$port" || return 1
  if command -v node >/dev/null 2>&1; then
    TRACEFEED_KAFKA_PROBE_USER=admin TRACEFEED_KAFKA_PROBE_PASSWORD_FILE="$TF_SECRETS/kafka-admin.password" \
      node "$PROBE" 127.0.0.1 "$port" "$NID" 3000 >/dev/null 2>&1
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

# wait_ready PID PORT LOG_OFFSET [DEADLINE]: wait until the broker is ready or fail with the log.
wait_ready() {
  local pid=$1 port=$2 offset=$3 deadline=${4:-$((SECONDS + START_TIMEOUT))} logged=0
  local what="the broker"
  ((COUNT > 1)) && what="broker $NID"
  while :; do
    if ! tf_pid_alive "$pid"; then
      rm -f "$PIDFILE" "$PORTSFILE"
      show_logs_and_die "$what process (pid $pid) exited during startup"
    fi
    if ((!logged)) && [[ -f $SERVER_LOG ]] &&
      grep -q "Kafka Server started" < <(tail -c "+$((offset + 1))" "$SERVER_LOG"); then
      logged=1
    fi
    # Require the log line from *this* run as well as a live probe; a log that rolled over
    # (smaller than the offset) cannot be checked, so rely on the probe then.
    if { ((logged)) || (($(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0) < offset)); } &&
      ready "$port"; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      show_logs_and_die "$what did not become ready on 127.0.0.1:$port within ${START_TIMEOUT} s (pid $pid is still running; see $SERVER_LOG, stop it with infra/kafka.sh stop)"
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

# node_addresses BASE [ids]: 127.0.0.1:port of each of the COUNT nodes (node i on
# BASE + 2(i-1)), comma-separated; with `ids`, each as <i>@127.0.0.1:port.
node_addresses() {
  local base=$1 ids=${2:-} i out=""
  for ((i = 1; i <= COUNT; i++)); do
    out+="${out:+,}${ids:+$i@}127.0.0.1:$((base + 2 * (i - 1)))"
  done
  printf '%s\n' "$out"
}

# voters: controller.quorum.voters of the cluster of COUNT nodes.
voters() { node_addresses "$CONTROLLER_PORT" ids; }

# render_config FILE: write node NID's server.properties to FILE (mode 0600: it holds the
# admin password).
render_config() {
  local admin_pw role pw plain_users="" rf=$((COUNT < 3 ? COUNT : 3)) isr=$((COUNT >= 3 ? 2 : 1))
  local about internal
  admin_pw=$(tf_secret_value kafka-admin) || exit 1
  for role in "${ROLES[@]}"; do
    pw=$(tf_secret_value "kafka-$role") || exit 1
    plain_users+=" user_$role=\"$pw\""
  done
  if ((COUNT == 1)); then
    about="# Single-node KRaft cluster for local development and tests."
    internal="# One node: 1 partition for the internal topics (default 50) keeps startup and first
# consumer-group join fast.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1"
  else
    about="# Node $NID of a $COUNT-node KRaft cluster (each node broker and controller) for local
# development and tests: infra/kafka.sh start --brokers $COUNT.
# Replication factor min(3, nodes) for new and internal topics; from 3 nodes a write
# needs 2 in-sync replicas (acks=all), so one node may fail without losing or refusing it."
    internal="# $COUNT partitions for the internal topics (default 50): their leaders spread over the
# nodes, and startup and the first consumer-group join stay fast.
offsets.topic.num.partitions=$COUNT
transaction.state.log.num.partitions=$COUNT"
  fi
  mkdir -p "$DATA" "$NLOGS"
  rm -f "$1"
  (umask 077 && : >"$1")
  cat >"$1" <<EOC
# Generated by infra/kafka.sh on every start; edits are overwritten.
$about
process.roles=broker,controller
node.id=$NID
controller.quorum.voters=$(voters)
listeners=CLIENT://127.0.0.1:$NPORT,CONTROLLER://127.0.0.1:$NCPORT
advertised.listeners=CLIENT://127.0.0.1:$NPORT
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
default.replication.factor=$rf
min.insync.replicas=$isr
auto.create.topics.enable=true
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
$internal
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
EOC
}

write_config() {
  render_config "$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
}

# config_current: the node's running broker was started from the configuration we would
# write now.
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

# apply_acls BROKERS: the ACLs of every role, as the admin user (idempotent), checked by
# reading them back.
apply_acls() {
  local log="$LOGS/acls.log"
  tf_need_cmd node "install Node.js 20+ (it sets the ACLs of the tracefeed users)"
  [[ -f $TF_REPO/node_modules/kafkajs/package.json ]] ||
    tf_die "kafkajs is not installed in $TF_REPO/node_modules (it sets the ACLs of the tracefeed users); run npm ci (or scripts/bootstrap.sh)"
  if ! TRACEFEED_HOME="$TF_HOME" node "$ACLS" "$1" >>"$log" 2>&1; then
    tf_show_log_tail "$log" 20
    tf_die "could not set the ACLs of the tracefeed users (log: $log)"
  fi
}

# data_shape: how many nodes the cluster node NID's data dir was formatted for ("" if
# not formatted). Data dirs from before several nodes were possible have no marker: one.
data_shape() {
  local n=""
  [[ -f $DATA/meta.properties ]] || return 0
  [[ -r $SHAPE_MARKER ]] && read -r n <"$SHAPE_MARKER"
  printf '%s\n' "${n:-1}"
}

# check_shapes: die, naming the way out, when a data dir of this home was formatted for
# a cluster of another size. KRaft keeps the voters in the metadata log: a one-node data
# dir cannot join a three-node quorum (nor the other way), and reformatting would drop
# its topics.
check_shapes() {
  local i shape bad=() max d was=""
  max=$(known_nodes | tail -n1)
  for ((i = 1; i <= (max > MAX_BROKERS ? MAX_BROKERS : max); i++)); do
    node_vars "$i"
    shape=$(data_shape)
    [[ -n $shape ]] || continue
    if [[ $shape != "$COUNT" ]] || ((i > COUNT)); then
      bad+=("$DATA ($shape-broker cluster)")
      was=${was:-$shape}
    fi
  done
  # Data dirs of nodes beyond the known ones (e.g. data-3 left from a 3-node cluster).
  for d in "$KDIR"/data-[0-9]; do
    [[ -f $d/meta.properties ]] || continue
    i=${d##*/data-}
    ((i > max)) || continue
    node_vars "$i"
    bad+=("$DATA ($(data_shape)-broker cluster)")
    was=${was:-$(data_shape)}
  done
  ((${#bad[@]} == 0)) && return 0
  local dirs=""
  for d in "${bad[@]}"; do dirs+="${dirs:+, }$d"; done
  tf_die "cannot start $COUNT broker(s): the data dirs $dirs were formatted for a cluster of another size, and this script does not reformat a data dir with topics in it. Either start the size they were made for (infra/kafka.sh start --brokers $was, or TRACEFEED_KAFKA_BROKER_COUNT=$was), or keep their topics aside and start afresh: infra/kafka.sh stop && for d in $KDIR/data $KDIR/data-[0-9]; do [ -d \$d ] && mv \$d \$d.replaced-\$(date -u +%Y%m%dT%H%M%SZ); done"
}

# format_node FP CID: format node NID's storage unless it already is, with our users.
format_node() {
  local fp=$1 cid=$2 aside
  if [[ -f $DATA/meta.properties ]]; then
    [[ -f $AUTH_MARKER && $(<"$AUTH_MARKER") == "$fp" ]] && return 0
    # Formatted before authentication, or with other users or passwords: its metadata
    # has no (or other) SCRAM users, which only a format can add. Keep it aside.
    aside="$DATA.replaced-$(date -u +%Y%m%dT%H%M%SZ)"
    ((NID == 1)) && aside="$KDIR/data.replaced-$(date -u +%Y%m%dT%H%M%SZ)"
    if [[ -f $AUTH_MARKER ]]; then
      tf_log "kafka: $DATA was formatted with other users or passwords (the secrets in $TF_SECRETS changed)"
    else
      tf_log "kafka: $DATA was formatted without authentication (no $AUTH_MARKER)"
    fi
    tf_log "kafka: moving it to $aside and formatting a new one with the SCRAM users; its topics and offsets stay there (remove it when no longer needed)"
    mv "$DATA" "$aside"
    mkdir -p "$DATA"
  fi
  local log="$LOGS/format.log" role pw
  local -a scram=()
  for role in "${ROLES[@]}"; do
    pw=$(tf_secret_value "kafka-$role") || exit 1
    scram+=(--add-scram "SCRAM-SHA-512=[name=$role,password=$pw]")
  done
  if ((COUNT == 1)); then
    tf_log "kafka: formatting storage in $DATA (cluster id $cid)"
  else
    tf_log "kafka: formatting storage of broker $NID in $DATA (cluster id $cid)"
  fi
  if ! java -cp "$LIB/*" kafka.tools.StorageTool format --ignore-formatted \
    -t "$cid" -c "$CONF" "${scram[@]}" >>"$log" 2>&1; then
    tf_show_log_tail "$log"
    tf_die "formatting Kafka storage failed (log: $log)"
  fi
  (umask 077 && printf '%s\n' "$fp" >"$AUTH_MARKER")
  ((COUNT == 1)) || printf '%s\n' "$COUNT" >"$SHAPE_MARKER"
}

# format_storage NODE...: format the storage of these (stopped) nodes where needed.
format_storage() {
  local fp cid="" log="$LOGS/format.log" i
  fp=$(auth_fingerprint) || exit 1
  mkdir -p "$LOGS"
  [[ -s $CLUSTER_ID_FILE ]] && read -r cid <"$CLUSTER_ID_FILE"
  if [[ -z $cid ]]; then
    cid=$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>"$log" | tail -n1) || true
    [[ $cid =~ ^[A-Za-z0-9_-]{22}$ ]] || {
      tf_show_log_tail "$log"
      tf_die "kafka-storage random-uuid failed (got '$cid'; log: $log)"
    }
    printf '%s\n' "$cid" >"$CLUSTER_ID_FILE"
  fi
  for i in "$@"; do
    node_vars "$i"
    format_node "$fp" "$cid"
  done
}

# launch: start node NID's JVM in the background; prints its pid.
launch() {
  local pid i
  rm -f "$PIDFILE"
  printf '%s %s\n' "$NPORT" "$NCPORT" >"$PORTSFILE"
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
      -Dkafka.logs.dir="$NLOGS" -Dlog4j2.configurationFile="$LOG4J_CONF" \
      -cp "$LIB/*" kafka.Kafka "$CONF"
  ) </dev/null >>"$OUT" 2>&1 &

  for ((i = 0; i < 50; i++)); do
    pid=$(tf_read_pidfile "$PIDFILE")
    [[ -n $pid ]] && break
    sleep 0.1
  done
  [[ -n $pid ]] || show_logs_and_die "the broker process did not start (see $OUT)"
  printf '%s\n' "$pid"
}

# bootstrap_list: host:port of every node of the cluster, comma-separated.
bootstrap_list() { node_addresses "$PORT"; }

# write_bootstrap: every node's client address, for clients given no brokers
# (src/common/kafka.ts brokersFrom).
write_bootstrap() {
  bootstrap_list >"$KDIR/bootstrap.tmp"
  mv "$KDIR/bootstrap.tmp" "$KDIR/bootstrap"
}

# --- commands --------------------------------------------------------------------------

# cmd_start_one: the one-node cluster (the default), as it always was.
cmd_start_one() {
  node_vars 1
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
      apply_acls "127.0.0.1:$PORT"
      write_bootstrap
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
  check_shapes
  write_config
  format_storage 1

  offset=$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0)
  LOG_OFFSET=$offset
  OUT_OFFSET=$(stat -c %s "$OUT" 2>/dev/null || echo 0)
  pid=$(launch)
  printf '1\n' >"$COUNTFILE"
  tf_log "kafka: starting broker (pid $pid) on 127.0.0.1:$PORT, waiting up to ${START_TIMEOUT} s"
  wait_ready "$pid" "$PORT" "$offset"
  apply_acls "127.0.0.1:$PORT"
  write_bootstrap
  echo "kafka: started (pid $pid) on 127.0.0.1:$PORT in $((SECONDS - t0)) s"
}

# cmd_start_many: COUNT nodes; running ones are kept, stopped ones started (a node
# killed by a fault test comes back with `start` again).
cmd_start_many() {
  local i pid rport rcport t0=$SECONDS running recorded deadline
  local -a pids=() launched=() offsets=() down=()
  recorded=$(recorded_count)
  running=""
  for i in $(known_nodes); do
    node_vars "$i"
    if pid=$(our_pid); then
      if ((i > COUNT)) || [[ $recorded != "$COUNT" ]]; then
        tf_die "a $recorded-broker cluster is running here (broker $i: pid $pid), but $COUNT brokers were requested; run infra/kafka.sh stop first"
      fi
      read -r rport rcport < <(running_ports)
      if [[ $rport != "$NPORT" || $rcport != "$NCPORT" ]]; then
        tf_die "broker $i is already running (pid $pid) on ports $rport/$rcport, but $NPORT/$NCPORT were requested; run infra/kafka.sh stop first"
      fi
      if ! config_current; then
        tf_log "kafka: broker $i (pid $pid) runs an older configuration than $CONF would be now; restarting it"
        tf_terminate "$pid" "$STOP_TIMEOUT" || tf_die "pid $pid is still alive after SIGKILL"
        rm -f "$PIDFILE" "$PORTSFILE"
        down+=("$i")
        continue
      fi
      pids[i]=$pid
      running+=" $i"
    elif ((i <= COUNT)); then
      down+=("$i")
    fi
  done

  if ((${#down[@]} > 0)); then
    for i in "${down[@]}"; do
      node_vars "$i"
      check_port "$NPORT" TRACEFEED_KAFKA_PORT
      check_port "$NCPORT" TRACEFEED_KAFKA_CONTROLLER_PORT
    done
    cmd_install
    check_java
    # A partly running cluster's data dirs are in use: only a stopped one is checked.
    [[ -n $running ]] || check_shapes
    for i in "${down[@]}"; do
      node_vars "$i"
      write_config
    done
    format_storage "${down[@]}"
    printf '%s\n' "$COUNT" >"$COUNTFILE"
    # All at once: a node becomes ready only once a majority of the controllers is up.
    for i in "${down[@]}"; do
      node_vars "$i"
      offsets[i]=$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0)
      pids[i]=$(launch)
      launched+=("$i")
      tf_log "kafka: starting broker $i (pid ${pids[i]}) on 127.0.0.1:$NPORT"
    done
    tf_log "kafka: waiting up to ${START_TIMEOUT} s for ${#launched[@]} broker(s)"
  fi
  deadline=$((SECONDS + START_TIMEOUT))
  for ((i = 1; i <= COUNT; i++)); do
    node_vars "$i"
    LOG_OFFSET=${offsets[i]:-0}
    OUT_OFFSET=0
    if ! ready "$NPORT"; then
      wait_ready "${pids[i]}" "$NPORT" "${offsets[i]:-0}" "$deadline"
    fi
  done
  apply_acls "$(bootstrap_list)"
  write_bootstrap
  local list="" p
  for ((i = 1; i <= COUNT; i++)); do list+="${list:+ }${pids[i]}"; done
  if ((${#launched[@]} == 0)); then
    echo "kafka: already running ($COUNT brokers, pids $list)"
  else
    p=""
    for i in "${launched[@]}"; do p+="${p:+,}$i"; done
    echo "kafka: started $COUNT brokers (pids $list; started now: $p) on $(bootstrap_list) in $((SECONDS - t0)) s"
  fi
}

cmd_start() {
  local explicit=0
  [[ -n ${TRACEFEED_KAFKA_BROKER_COUNT:-} ]] && explicit=1
  while (($#)); do
    case $1 in
    --brokers)
      (($# >= 2)) || tf_die "--brokers needs a number"
      COUNT=$2
      explicit=1
      shift
      ;;
    --brokers=*)
      COUNT=${1#--brokers=}
      explicit=1
      ;;
    *) tf_die "unknown option for start: $1 (expected --brokers N)" ;;
    esac
    shift
  done
  if [[ -n ${TRACEFEED_KAFKA_BROKER_COUNT:-} ]]; then
    check_count "$TRACEFEED_KAFKA_BROKER_COUNT" TRACEFEED_KAFKA_BROKER_COUNT
  fi
  check_count "$COUNT" "--brokers"
  # Unless told otherwise, `start` means the cluster last started here (one node if none).
  ((explicit)) || COUNT=$(recorded_count)
  tf_check_port_var TRACEFEED_KAFKA_PORT "$PORT"
  tf_check_port_var TRACEFEED_KAFKA_CONTROLLER_PORT "$CONTROLLER_PORT"
  [[ $PORT != "$CONTROLLER_PORT" ]] ||
    tf_die "TRACEFEED_KAFKA_PORT and TRACEFEED_KAFKA_CONTROLLER_PORT must differ (both $PORT)"
  if ((COUNT > 1)); then
    local a b i j
    for ((i = 0; i < COUNT; i++)); do
      a=$((PORT + 2 * i))
      b=$((CONTROLLER_PORT + 2 * i))
      ((a <= 65535 && b <= 65535)) ||
        tf_die "$COUNT brokers need ports up to $a/$b (TRACEFEED_KAFKA_PORT + 2*(N-1)); choose lower TRACEFEED_KAFKA_PORT/TRACEFEED_KAFKA_CONTROLLER_PORT"
      for ((j = 0; j < COUNT; j++)); do
        ((a != CONTROLLER_PORT + 2 * j)) ||
          tf_die "with $COUNT brokers the client port $a of broker $((i + 1)) is the controller port of broker $((j + 1)); give TRACEFEED_KAFKA_PORT and TRACEFEED_KAFKA_CONTROLLER_PORT an odd difference (e.g. 9092 and 9093)"
      done
    done
  fi
  if [[ -z ${TRACEFEED_KAFKA_HEAP_OPTS:-} ]] && ((COUNT > 1)); then
    HEAP_OPTS=(-Xmx384m)
  else
    read -r -a HEAP_OPTS <<<"${TRACEFEED_KAFKA_HEAP_OPTS:--Xmx512m}"
  fi
  tf_lock "$LOCK"
  if ((COUNT == 1)); then
    # Nodes of an earlier, bigger cluster must not be left running beside a new one.
    local i pid
    for i in $(known_nodes); do
      ((i > 1)) || continue
      node_vars "$i"
      if pid=$(our_pid); then
        tf_die "a $(recorded_count)-broker cluster is running here (broker $i: pid $pid), but 1 broker was requested; run infra/kafka.sh stop first (or start --brokers $(recorded_count))"
      fi
    done
    cmd_start_one
  else
    cmd_start_many
  fi
}

cmd_stop() {
  local how=term pid i
  local -a ids=() pids=()
  case ${1:-} in
  "") ;;
  --kill) how="kill" ;;
  *) tf_die "unknown option for stop: $1 (expected --kill)" ;;
  esac
  tf_lock "$LOCK"
  for i in $(known_nodes); do
    node_vars "$i"
    if pid=$(our_pid); then
      ids+=("$i")
      pids+=("$pid")
    else
      rm -f "$PIDFILE" "$PORTSFILE"
    fi
  done
  if ((${#pids[@]} == 0)); then
    echo "kafka: stopped"
    return 0
  fi
  if ((${#pids[@]} == 1 && ids[0] == 1)); then
    node_vars 1
    pid=${pids[0]}
    [[ $how == kill ]] && tf_log "kafka: sending SIGKILL to pid $pid"
    tf_terminate "$pid" "$STOP_TIMEOUT" "$how" || tf_die "pid $pid is still alive after SIGKILL"
    rm -f "$PIDFILE" "$PORTSFILE"
    echo "kafka: stopped (pid $pid)"
    return 0
  fi
  # Several nodes: all at once, so that the controllers keep their majority while the
  # brokers shut down (one at a time, the last would wait for a quorum that is gone).
  [[ $how == kill ]] && tf_log "kafka: sending SIGKILL to pids ${pids[*]}"
  local k rc=0
  local -a waiters=()
  for k in "${!pids[@]}"; do
    tf_terminate "${pids[k]}" "$STOP_TIMEOUT" "$how" &
    waiters+=("$!")
  done
  for k in "${!waiters[@]}"; do
    wait "${waiters[k]}" || {
      tf_log "kafka: pid ${pids[k]} is still alive after SIGKILL"
      rc=1
    }
  done
  for i in "${ids[@]}"; do
    node_vars "$i"
    rm -f "$PIDFILE" "$PORTSFILE"
  done
  ((rc == 0)) || tf_die "some brokers did not stop"
  echo "kafka: stopped ${#pids[@]} brokers (pids ${pids[*]})"
}

cmd_status() {
  local pid rport rcport n i
  n=$(recorded_count)
  if ((n == 1)); then
    node_vars 1
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
  fi
  local up=() down=() deaf=() addrs=""
  for ((i = 1; i <= n; i++)); do
    node_vars "$i"
    if ! pid=$(our_pid); then
      down+=("$i")
      continue
    fi
    read -r rport rcport < <(running_ports)
    addrs+="${addrs:+,}127.0.0.1:$rport"
    if tf_port_open "$rport"; then
      up+=("$i:$pid")
    else
      deaf+=("$i:$pid")
    fi
  done
  if ((${#up[@]} == 0 && ${#deaf[@]} == 0)); then
    echo "kafka: stopped"
    return 3
  fi
  if ((${#down[@]} == 0 && ${#deaf[@]} == 0)); then
    echo "kafka: running $n brokers (pids $(printf '%s ' "${up[@]#*:}" | sed 's/ $//')) on $addrs"
    return 0
  fi
  echo "kafka: degraded: $n-broker cluster, running: ${up[*]:-none} (broker:pid), stopped: ${down[*]:-none}, not responding: ${deaf[*]:-none}; \`infra/kafka.sh start --brokers $n\` starts the stopped ones"
  return 1
}

cmd_logs() {
  local follow=0 n=100 only="" i
  local -a files=()
  while (($#)); do
    case $1 in
    -f | --follow) follow=1 ;;
    --broker)
      (($# >= 2)) || tf_die "--broker needs a broker number"
      only=$2
      shift
      ;;
    [0-9]*) n=$1 ;;
    *) tf_die "usage: infra/kafka.sh logs [-f] [N] [--broker I]" ;;
    esac
    shift
  done
  if [[ -n $only ]]; then
    check_count "$only" "--broker"
    node_vars "$only"
    files=("$SERVER_LOG")
  else
    for ((i = 1; i <= $(recorded_count); i++)); do
      node_vars "$i"
      files+=("$SERVER_LOG")
    done
  fi
  for i in "${files[@]}"; do
    [[ -f $i ]] || tf_die "no broker log yet ($i); run infra/kafka.sh start"
  done
  if ((follow)); then
    exec tail -n "$n" -F "${files[@]}"
  fi
  tail -n "$n" "${files[@]}"
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
start) cmd_start "${@:2}" ;;
stop) cmd_stop "${@:2}" ;;
status) cmd_status ;;
logs) cmd_logs "${@:2}" ;;
-h | --help | help) usage ;;
*)
  tf_log "kafka: unknown command '${1:-}'"
  usage
  ;;
esac
