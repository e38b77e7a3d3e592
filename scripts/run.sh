#!/usr/bin/env bash
# One-command embedded start: `caas run` with SQLite under ./data (CAAS_DATA_DIR), listening on
# http://127.0.0.1:5080 (--urls or ASPNETCORE_URLS). Arguments go to `caas run`, e.g. ./scripts/run.sh --urls http://0.0.0.0:8080
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

exec dotnet run --project src/Caas.Node -c Release -- run "$@"
