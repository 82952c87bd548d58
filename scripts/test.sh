#!/usr/bin/env bash
# scripts/test.sh — the project's one test command.
#
# Installs the server binaries the integration tests start themselves
# (mariadbd, mariadb-install-db, redis-server) when they are missing, then runs
# go vet and the whole test suite against real servers on free loopback ports.
#
# Usage: ./scripts/test.sh [go test flags...]      e.g. ./scripts/test.sh -run Binlog -v
#        TEST_PKGS="./pkg/binlog/..." ./scripts/test.sh   to test only some packages
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

pkgs="${TEST_PKGS:-./...}"

# have NAME: the binary is in PATH or in a system sbin/bin directory
# (mariadbd lives in /usr/sbin, which a non-root PATH often lacks).
have() {
	command -v "$1" >/dev/null 2>&1 && return 0
	local d
	for d in /usr/sbin /usr/local/sbin /usr/bin /usr/local/bin; do
		[ -x "$d/$1" ] && return 0
	done
	return 1
}

if ! command -v go >/dev/null 2>&1; then
	echo "scripts/test.sh: go not found in PATH: install Go (see go.mod for the version)" >&2
	exit 1
fi

missing=()
for bin in mariadbd mariadb-install-db redis-server; do
	have "$bin" || missing+=("$bin")
done

if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "scripts/test.sh: missing ${missing[*]}; the tests start their own MariaDB and Redis." >&2
		echo "Install them as root:  apt-get install mariadb-server redis-server   (then rerun)" >&2
		exit 1
	fi
	echo "scripts/test.sh: installing mariadb-server and redis-server (missing: ${missing[*]})"
	# Keep the packages' system services from starting: the tests start their
	# own servers. policy-rc.d exit 101 tells invoke-rc.d "not allowed".
	policy=/usr/sbin/policy-rc.d
	created_policy=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		created_policy=1
	fi
	cleanup_policy() { if [ "$created_policy" = 1 ]; then rm -f "$policy"; fi; }
	trap cleanup_policy EXIT
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server redis-server
	cleanup_policy
	trap - EXIT
	for bin in mariadbd mariadb-install-db redis-server; do
		if ! have "$bin"; then
			echo "scripts/test.sh: $bin still missing after installing mariadb-server and redis-server" >&2
			exit 1
		fi
	done
fi

echo "scripts/test.sh: go vet $pkgs"
# shellcheck disable=SC2086 # pkgs is a space-separated package list
go vet $pkgs

echo "scripts/test.sh: go test -count=1 -timeout 40m $* $pkgs"
# shellcheck disable=SC2086
exec go test -count=1 -timeout 40m "$@" $pkgs
