# scripts/servers.sh — sourced by test.sh and demo.sh: makes sure the server
# binaries the tests and the demo start themselves are installed.
#
# ensure_servers NAME: installs mariadb-server, redis-server and postgresql (as
# root, with apt, their system services kept from starting) when mariadbd,
# mariadb-install-db, mariadb, redis-server, or PostgreSQL's initdb and postgres
# are missing; NAME prefixes the messages.

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

# have_postgres: initdb and postgres are in PATH, a system bin directory, or
# Debian's /usr/lib/postgresql/VERSION/bin (not in PATH).
have_postgres() {
	have initdb && have postgres && return 0
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && [ -x "$d/postgres" ] && return 0
	done
	return 1
}

ensure_servers() {
	local me="$1"
	if ! command -v go >/dev/null 2>&1; then
		echo "$me: go not found in PATH: install Go (see go.mod for the version)" >&2
		exit 1
	fi

	missing=()
	for bin in mariadbd mariadb-install-db mariadb redis-server; do
		have "$bin" || missing+=("$bin")
	done
	have_postgres || missing+=("initdb/postgres")
	local packages=(mariadb-server redis-server postgresql)

	if [ "${#missing[@]}" -gt 0 ]; then
		if [ "$(id -u)" -ne 0 ]; then
			echo "$me: missing ${missing[*]}; the tests start their own MariaDB, Redis and PostgreSQL." >&2
			echo "Install them as root:  apt-get install ${packages[*]}   (then rerun)" >&2
			exit 1
		fi
		echo "$me: installing ${packages[*]} (missing: ${missing[*]})"
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
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
		cleanup_policy
		trap - EXIT
		for bin in mariadbd mariadb-install-db mariadb redis-server; do
			if ! have "$bin"; then
				echo "$me: $bin still missing after installing ${packages[*]}" >&2
				exit 1
			fi
		done
		if ! have_postgres; then
			echo "$me: initdb/postgres still missing after installing ${packages[*]} (looked in PATH and /usr/lib/postgresql/*/bin)" >&2
			exit 1
		fi
	fi
}
