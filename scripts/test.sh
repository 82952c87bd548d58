#!/usr/bin/env bash
# scripts/test.sh — the project's one test command.
#
# Installs the server binaries the integration tests start themselves
# (mariadbd, mariadb-install-db, redis-server, PostgreSQL's initdb and postgres)
# when they are missing, then runs
# go vet and the whole test suite against real servers on free loopback ports.
#
# Usage: ./scripts/test.sh [go test flags...]      e.g. ./scripts/test.sh -run Binlog -v
#        TEST_PKGS="./pkg/binlog/..." ./scripts/test.sh   to test only some packages
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

pkgs="${TEST_PKGS:-./...}"

# shellcheck source=scripts/servers.sh
. scripts/servers.sh
ensure_servers scripts/test.sh

echo "scripts/test.sh: go vet $pkgs"
# shellcheck disable=SC2086 # pkgs is a space-separated package list
go vet $pkgs

echo "scripts/test.sh: go test -count=1 -timeout 40m $* $pkgs"
# shellcheck disable=SC2086
exec go test -count=1 -timeout 40m "$@" $pkgs
