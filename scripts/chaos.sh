#!/usr/bin/env bash
# The fault suite's scenarios (tests/Caas.FaultTests, FaultScenarioTests), run longer and harder than in CI, and their
# table: scenario, load held (msgs/s), faults injected, acknowledged, lost, duplicated, recovery time.
# Three CAAS nodes run as separate processes on a PostgreSQL and a Kafka broker of their own (started and stopped by
# the suite through scripts/test.sh --services); all traffic stays on 127.0.0.1.
#
#   ./scripts/chaos.sh                       every scenario: 120 s of load, 3 faults each, 30 msgs/s offered
#   ./scripts/chaos.sh --seconds 300 --faults 5 --rate 40 --scenario SIGKILL
#
# Options (each bounded): --seconds N (10-3600: load before the first fault is N/4, after each fault N/2),
# --faults N (1-20 per scenario), --rate R (1-200 messages/s offered), --scenario TEXT (a test-name filter),
# --limit MINUTES (the whole run is stopped after this long; default 90).
# Exits with dotnet test's exit code: non-zero when anything acknowledged was lost or duplicated.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 MSBUILDDISABLENODEREUSE=1

seconds=120 faults=3 rate=30 scenario="" limit=90
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --faults) faults="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --scenario) scenario="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "chaos.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$seconds" "$faults" "$limit"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "chaos.sh: --seconds, --faults and --limit take whole numbers" >&2; exit 2; }
done
[[ "$rate" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "chaos.sh: --rate takes a number" >&2; exit 2; }

bash scripts/deps/kafka.sh >/dev/null
report="$(mktemp "${TMPDIR:-/tmp}/caas-chaos.XXXXXX")"
trap 'rm -f "$report"' EXIT
filter="FullyQualifiedName~FaultScenarioTests"
[ -n "$scenario" ] && filter="$filter&FullyQualifiedName~$scenario"

set +e
CAAS_CHAOS_SECONDS="$seconds" CAAS_CHAOS_FAULTS="$faults" CAAS_CHAOS_RATE="$rate" CAAS_CHAOS_REPORT="$report" \
  timeout --kill-after=60 "${limit}m" dotnet test tests/Caas.FaultTests -c Release --filter "$filter" \
  --logger "console;verbosity=minimal" --blame-hang-timeout "${limit}m" --blame-hang-dump-type none </dev/null
rc=$?
set -e

echo
echo "chaos: ${seconds} s of load per fault round, ${faults} faults per scenario, ${rate} msgs/s offered"
echo "| scenario | load held (msgs/s) | faults injected | acknowledged | lost | duplicated | recovery time (s) |"
echo "|---|---|---|---|---|---|---|"
sed 's/ <!--.*-->//' "$report"
echo "(recovery time: from the fault until every sender had an acknowledgement for a send begun after it; the worst fault)"
exit "$rc"
