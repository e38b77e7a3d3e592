#!/usr/bin/env bash
# Runs one caas bench against a throwaway PostgreSQL on loopback with PostgreSQL's DEFAULT durability (fsync,
# synchronous_commit and full_page_writes on; unlike ./scripts/test.sh, which turns them off for speed), then stops it.
# The server comes from ./scripts/test.sh --services (its start, stop and orphan clean-up) with
# CAAS_TEST_PG_DURABILITY=default. The bench is given CAAS_POSTGRES (a superuser: the benches create a scratch database
# and drop it after) and, with --kafka, CAAS_KAFKA_BOOTSTRAP and CAAS_KAFKA_PROFILE=0.9 of a throwaway Kafka 0.9 broker.
#
#   ./scripts/bench-postgres.sh bench --store postgres
#   ./scripts/bench-postgres.sh bench --store postgres --rate 12000
#   ./scripts/bench-postgres.sh bench --replay --store postgres --events 200000
#   ./scripts/bench-postgres.sh bench-pipeline --mode bulk
#   ./scripts/bench-postgres.sh --kafka bench-pipeline --mode kafka
#   ./scripts/bench-postgres.sh bench-rest --store postgres
#
# The throwaway server's write-ahead log is warmed before the bench, as a server that has run for a while has it: about
# 1 GB of WAL written and checkpointed (~5 s), so the bench reuses recycled WAL segments instead of creating and
# zero-filling each new 16 MB segment in the middle of its commits, which a server does until its checkpoints have
# recycled enough segments (measured: the journal bench on a just-initialized server 13,784 acked/s, on the same server's second and third runs
# 16,311 and 16,229, on a just-initialized server with its WAL warmed 15,474; README, "Measured").
#
# Environment: CAAS_BENCH_NO_BUILD=1 skips `dotnet build src/Caas.Node -c Release`; CAAS_TEST_SKIP_DEPS=1 skips
# scripts/deps/*.sh (see ./scripts/test.sh); CAAS_BENCH_PG_COLD_WAL=1 skips the WAL warm-up (a just-initialized
# server); an outside CAAS_TEST_POSTGRES is used as it is, without the warm-up (the bench prints its fsync and
# synchronous_commit).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

kafka=""
case "${1:-}" in
  ""|-h|--help|help) usage; exit 0 ;;
  --kafka) kafka=1; shift ;;
esac
[ $# -gt 0 ] || { usage; exit 2; }

if [ "${CAAS_BENCH_NO_BUILD:-}" != 1 ]; then
  dotnet build src/Caas.Node -c Release -nologo -v quiet >&2
fi
CAAS_DLL="$ROOT/src/Caas.Node/bin/Release/net10.0/caas.dll"
[ -f "$CAAS_DLL" ] || { echo "bench-postgres.sh: $CAAS_DLL not found (dotnet build src/Caas.Node -c Release)" >&2; exit 1; }

# No Kafka unless asked, and never the servers no bench uses (S3, TURN, Redis; their start-up and memory are nothing the
# figures need). test.sh starts none of a service whose variable is `none`.
[ -n "$kafka" ] || export CAAS_TEST_KAFKA="${CAAS_TEST_KAFKA:-none}"
export CAAS_TEST_S3_ENDPOINT=none CAAS_TEST_TURN_SERVERS=none CAAS_TEST_REDIS=none
export CAAS_TEST_PG_DURABILITY=default CAAS_DLL kafka

# Runs under test.sh --services, with its CAAS_TEST_* variables.
run_bench() {
  export CAAS_POSTGRES="$CAAS_TEST_POSTGRES"
  # Only the server test.sh started here (it exports its data directory); never an outside one.
  if [ -n "${CAAS_TEST_POSTGRES_DATA:-}" ] && [ "${CAAS_BENCH_PG_COLD_WAL:-}" != 1 ]; then
    echo "bench-postgres.sh: warming the server's write-ahead log (about 1 GB written and checkpointed)" >&2
    "$CAAS_TEST_POSTGRES_BIN/psql" "$CAAS_TEST_POSTGRES_URL" -X -q -v ON_ERROR_STOP=1 \
      -c "CREATE TABLE caas_bench_wal_warmup AS SELECT g, repeat('w', 900) AS pad FROM generate_series(1, 1100000) g" \
      -c "DROP TABLE caas_bench_wal_warmup" -c "CHECKPOINT" >&2
  fi
  if [ -n "$kafka" ]; then export CAAS_KAFKA_BOOTSTRAP="$CAAS_TEST_KAFKA" CAAS_KAFKA_PROFILE=0.9; fi
  dotnet "$CAAS_DLL" "$@"
}
export -f run_bench
exec ./scripts/test.sh --services -- bash -c 'run_bench "$@"' run_bench "$@"
