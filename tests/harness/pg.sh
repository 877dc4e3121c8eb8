#!/bin/sh
# Throwaway PostgreSQL clusters for tests. POSIX sh.
#
# Sourced (". pg.sh"), for shell tests:
#   pg_start NAME      initdb + start a cluster in $AIRLOCK_SCRATCH/pg-NAME
#                      (or a mktemp dir); silent on success. Sets
#                      PG_<NAME>_{DIR,DATA,HOST,PORT,USER,DATABASE,CONNINFO,LOG,BINDIR}
#                      (NAME upper-cased) and exports PGHOST PGPORT PGUSER
#                      PGDATABASE for it.
#   pg_use NAME        export PGHOST PGPORT PGUSER PGDATABASE for NAME
#   pg_conninfo NAME   print NAME's libpq conninfo
#   pg_psql NAME ARGS  psql -X -A -t -q -v ON_ERROR_STOP=1 on NAME's database
#   pg_tables_sum NAME SCHEMA...  one line: every table of the schemas with
#                      the md5 of its rows in text order ("t:md5 u:md5 ...")
#   pg_staging_count NAME  airlock_staging_* and airlock_old_* schemas left
#   pg_is_running NAME status 0 when the server answers pg_ctl status
#   pg_kill NAME       immediate shutdown (as a crash would); data kept
#   pg_restart NAME    start again (after pg_kill) or restart, same port
#   pg_stop NAME       fast shutdown, removes the directory
#   pg_stop_all        pg_stop every cluster this shell started
#   pg_cleanup_on_exit make sure pg_stop_all runs at exit (see below)
#
# Cleanup: sourcing installs an EXIT trap that runs pg_stop_all (an EXIT
# trap set before is kept and runs after it) and, when they are at their
# default, INT/TERM/HUP traps that exit 130/143/129 so the EXIT trap runs.
# If you set your own EXIT trap later, call pg_cleanup_on_exit afterwards
# (pg_start does it too). A watcher process stops a cluster within about
# a second once the shell that started it is gone, even after SIGKILL.
#
# Command mode, one implementation for the C harness (harness_pg.c):
#   sh pg.sh start DIR [OWNER_PID]   prints key=value lines (also kept in
#                                    DIR/cluster.env): dir data socket_dir
#                                    port user dbname conninfo log bindir
#   sh pg.sh stop DIR | kill DIR | restart DIR | status DIR
#
# Environment: AIRLOCK_PG_BINDIR (initdb, pg_ctl, postgres, psql);
# otherwise `pg_config --bindir` when it has initdb, else the newest
# /usr/lib/postgresql/*/bin. As root the server runs as the postgres system
# user (AIRLOCK_PG_RUNAS to change it). The superuser role is "postgres",
# trust authentication on the Unix socket only (listen_addresses = '').

_pg_user=postgres
_pg_dbname=airlock_test

_pg_err() {
	printf 'pg.sh: %s\n' "$*" >&2
}

# ---------------------------------------------------------------------
# Exit hooks (hooks.sh): through AIRLOCK_HARNESS when sourced, next to
# this file when run as a command.
. "${AIRLOCK_HARNESS:-$(dirname "$0")}/hooks.sh" ||
	{ _pg_err "no hooks.sh: set AIRLOCK_HARNESS to tests/harness"; return 1 2>/dev/null || exit 1; }

# ---------------------------------------------------------------------
# The implementation (command mode; the sourced functions call these in
# subshells, so their variables never reach the caller).

_pg_bindir() {
	if [ -n "${AIRLOCK_PG_BINDIR-}" ]; then
		if [ ! -x "$AIRLOCK_PG_BINDIR/initdb" ]; then
			_pg_err "AIRLOCK_PG_BINDIR=$AIRLOCK_PG_BINDIR has no initdb"
			return 1
		fi
		printf '%s\n' "$AIRLOCK_PG_BINDIR"
		return 0
	fi
	if command -v pg_config >/dev/null 2>&1; then
		b=$(pg_config --bindir 2>/dev/null) || b=
		if [ -n "$b" ] && [ -x "$b/initdb" ]; then
			printf '%s\n' "$b"
			return 0
		fi
	fi
	b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ -n "$b" ] && [ -x "$b/initdb" ]; then
		printf '%s\n' "$b"
		return 0
	fi
	_pg_err "no PostgreSQL server binaries (initdb): apt-get install postgresql, or set AIRLOCK_PG_BINDIR"
	return 1
}

# Run a command as the server's user: postgres when we are root.
_pg_as() {
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid="$_pg_uid" --regid="$_pg_gid" --init-groups -- "$@"
	else
		"$@"
	fi
}

_pg_runas_init() {
	if [ "$(id -u)" -ne 0 ]; then
		return 0
	fi
	runas=${AIRLOCK_PG_RUNAS:-postgres}
	_pg_uid=$(id -u "$runas" 2>/dev/null) || {
		_pg_err "running as root needs the '$runas' system user to own the server (apt-get install postgresql creates it)"
		return 1
	}
	_pg_gid=$(id -g "$runas")
}

_pg_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	{ read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
	st=${st##*) }
	case $st in
	Z*|X*) return 1 ;;
	esac
	return 0
}

# A port no TCP listener and no PostgreSQL socket on this host uses.
_pg_free_port() {
	i=0
	while [ "$i" -lt 100 ]; do
		r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' \n')
		p=$((r % 30000 + 30000))
		hex=$(printf '%04X' "$p")
		if ! grep -q ":$hex " /proc/net/tcp /proc/net/tcp6 2>/dev/null &&
		   ! grep -q "\.s\.PGSQL\.$p\$" /proc/net/unix 2>/dev/null; then
			printf '%s\n' "$p"
			return 0
		fi
		i=$((i + 1))
	done
	_pg_err "no free port found"
	return 1
}

# Read DIR/cluster.env into c_<key> variables.
_pg_load() {
	c_dir= c_data= c_socket_dir= c_port= c_conninfo= c_log= c_bindir=
	[ -f "$1/cluster.env" ] || return 1
	while IFS= read -r line; do
		k=${line%%=*}
		v=${line#*=}
		case $k in
		dir|data|socket_dir|port|conninfo|log|bindir) eval "c_$k=\$v" ;;
		esac
	done <"$1/cluster.env"
	[ -n "$c_data" ] && [ -n "$c_bindir" ]
}

_pg_abs() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$(pwd)" "$1" ;;
	esac
}

_pg_cmd_start() {
	dir=$(_pg_abs "$1")
	owner=${2-}
	case $dir in
	*[!A-Za-z0-9._/+-]*)
		_pg_err "$dir: only [A-Za-z0-9._/+-] allowed in a cluster path"
		return 1 ;;
	esac
	if [ -e "$dir" ] || [ -L "$dir" ]; then
		if [ ! -d "$dir" ] || [ -L "$dir" ] || [ -n "$(ls -A "$dir")" ]; then
			_pg_err "$dir exists and is not an empty directory"
			return 1
		fi
	else
		mkdir "$dir" || return 1
	fi
	# The marker lets stop remove the directory: nothing else is removed.
	# Its token tells this cluster from a later one in the same place.
	token=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	printf '%s\n' "$token" >"$dir/.airlock-pg" || return 1
	if ! chmod 0755 "$dir" || ! bindir=$(_pg_bindir) || ! _pg_runas_init; then
		_pg_cmd_stop "$dir" immediate
		return 1
	fi
	socket_dir=$dir
	# sun_path holds 107 bytes: ".s.PGSQL.NNNNN.lock" must fit.
	if [ "${#dir}" -gt 80 ]; then
		socket_dir=$(mktemp -d "${TMPDIR:-/tmp}/airlock-pg.XXXXXX") || {
			_pg_cmd_stop "$dir" immediate
			return 1
		}
		chmod 0755 "$socket_dir"
		printf '%s\n' "$socket_dir" >"$dir/.socket_dir"
	fi
	if [ "$(id -u)" -eq 0 ]; then
		chown "$_pg_uid:$_pg_gid" "$dir" "$socket_dir" || {
			_pg_cmd_stop "$dir" immediate
			return 1
		}
		if ! _pg_as test -w "$dir"; then
			_pg_err "$dir: not reachable by the '${AIRLOCK_PG_RUNAS:-postgres}' user (a parent directory is not searchable)"
			_pg_cmd_stop "$dir" immediate
			return 1
		fi
	fi
	port=$(_pg_free_port) || {
		_pg_cmd_stop "$dir" immediate
		return 1
	}
	data=$dir/data
	log=$dir/postgresql.log
	if ! (cd "$dir" && LC_ALL=C _pg_as "$bindir/initdb" -D "$data" \
			-A trust -U "$_pg_user" -E UTF8 --locale=C \
			--no-sync --no-instructions) >"$dir/initdb.log" 2>&1; then
		_pg_err "initdb failed in $data:"
		sed 's/^/  /' "$dir/initdb.log" >&2
		_pg_cmd_stop "$dir" immediate
		return 1
	fi
	cat >>"$data/postgresql.conf" <<EOF

# airlock test harness
listen_addresses = ''
port = $port
unix_socket_directories = '$socket_dir'
# synchronous_commit stays on: pg_kill must not lose committed rows.
fsync = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 40
lc_messages = 'C'
log_line_prefix = '%m [%p] '
EOF
	conninfo="host=$socket_dir port=$port user=$_pg_user dbname=$_pg_dbname"
	cat >"$dir/cluster.env" <<EOF
dir=$dir
data=$data
socket_dir=$socket_dir
port=$port
user=$_pg_user
dbname=$_pg_dbname
conninfo=$conninfo
log=$log
bindir=$bindir
EOF
	if ! _pg_ctl_start; then
		_pg_cmd_stop "$dir" immediate
		return 1
	fi
	if ! "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$socket_dir" \
			-p "$port" -U "$_pg_user" -d postgres \
			-c "CREATE DATABASE $_pg_dbname" >"$dir/createdb.log" 2>&1; then
		_pg_err "CREATE DATABASE failed:"
		sed 's/^/  /' "$dir/createdb.log" >&2
		_pg_cmd_stop "$dir" immediate
		return 1
	fi
	rm -f "$dir/initdb.log" "$dir/createdb.log"
	if [ -n "$owner" ]; then
		# exec, not a redirection on the call: dash would keep a saved
		# copy of stdout (the caller's $(...) pipe) open in the watcher.
		(exec </dev/null >/dev/null 2>&1; _pg_watch "$dir" "$owner" "$token") &
	fi
	cat "$dir/cluster.env"
}

# pg_ctl start for the cluster whose variables are set (data, log, dir,
# bindir); the server log goes to $log.
_pg_ctl_start() {
	if ! (cd "$dir" && _pg_as "$bindir/pg_ctl" -D "$data" -l "$log" \
			-w -t 60 -s start) >/dev/null 2>"$dir/pg_ctl.err"; then
		_pg_err "pg_ctl start failed for $data:"
		sed 's/^/  /' "$dir/pg_ctl.err" >&2
		tail -n 20 "$log" 2>/dev/null | sed 's/^/  log: /' >&2
		rm -f "$dir/pg_ctl.err"
		return 1
	fi
	rm -f "$dir/pg_ctl.err"
}

# Send SIG to the postmaster of DATA, and only to it: the pid in a stale
# postmaster.pid may belong to anything by now.
_pg_signal_postmaster() {
	pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null)
	case $pid in
	''|*[!0-9]*) return 0 ;;
	esac
	if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-D $1"; then
		kill -"$2" "$pid" 2>/dev/null || :
	fi
}

# Stop the server (MODE fast or immediate), then remove the directory.
# Nothing to do when DIR is gone.
_pg_cmd_stop() {
	dir=$(_pg_abs "$1")
	mode=${2:-fast}
	if [ ! -e "$dir" ]; then
		return 0
	fi
	if [ ! -f "$dir/.airlock-pg" ]; then
		# what pg_start made before a failed start
		rmdir "$dir" 2>/dev/null && return 0
		_pg_err "$dir is not a harness cluster: left alone"
		return 1
	fi
	data=$dir/data
	if [ -f "$data/postmaster.pid" ]; then
		_pg_runas_init || return 1
		bindir=
		if _pg_load "$dir"; then
			bindir=$c_bindir
		fi
		[ -n "$bindir" ] || bindir=$(_pg_bindir) || return 1
		# a test may have stopped it (SIGSTOP) to play a hung server
		_pg_signal_postmaster "$data" CONT
		if ! (cd "$dir" && _pg_as "$bindir/pg_ctl" -D "$data" \
				-m "$mode" -w -t 20 -s stop) >/dev/null 2>&1; then
			# hung: immediate shutdown, then SIGKILL
			if ! (cd "$dir" && _pg_as "$bindir/pg_ctl" -D "$data" \
					-m immediate -w -t 5 -s stop) >/dev/null 2>&1; then
				_pg_signal_postmaster "$data" KILL
			fi
		fi
	fi
	if [ -f "$dir/.socket_dir" ]; then
		sd=$(cat "$dir/.socket_dir")
		case $sd in
		/*/airlock-pg.*) rm -rf "$sd" ;;
		esac
	fi
	rm -rf "$dir"
}

_pg_cmd_kill() {
	dir=$(_pg_abs "$1")
	_pg_runas_init || return 1
	_pg_load "$dir" || { _pg_err "$dir: no cluster"; return 1; }
	(cd "$dir" && _pg_as "$c_bindir/pg_ctl" -D "$c_data" -m immediate \
		-w -t 30 -s stop) >/dev/null
}

_pg_cmd_restart() {
	dir=$(_pg_abs "$1")
	_pg_runas_init || return 1
	_pg_load "$dir" || { _pg_err "$dir: no cluster"; return 1; }
	data=$c_data
	log=$c_log
	bindir=$c_bindir
	if _pg_cmd_status "$dir"; then
		(cd "$dir" && _pg_as "$bindir/pg_ctl" -D "$data" -m fast \
			-w -t 30 -s stop) >/dev/null || return 1
	fi
	_pg_ctl_start
}

# 0 when the server runs, 3 when it does not (pg_ctl status).
_pg_cmd_status() {
	dir=$(_pg_abs "$1")
	_pg_runas_init || return 1
	_pg_load "$dir" || return 4
	(cd "$dir" && _pg_as "$c_bindir/pg_ctl" -D "$c_data" status) >/dev/null 2>&1
}

# DIR still holds the cluster whose marker token is TOKEN.
_pg_marker_is() {
	t=
	{ read -r t <"$1/.airlock-pg"; } 2>/dev/null || return 1
	[ "$t" = "$2" ]
}

# Stop the cluster DIR (marker TOKEN) once OWNER is gone; quit when it is
# stopped (polls once a second, without forking but for sleep).
_pg_watch() {
	trap '' INT TERM HUP
	while _pg_marker_is "$1" "$3" && _pg_alive "$2"; do
		sleep 1
	done
	if _pg_marker_is "$1" "$3"; then
		_pg_cmd_stop "$1" immediate
	fi
}

# ---------------------------------------------------------------------
# The sourced API.

_pg_names=${_pg_names-}

_pg_key() {
	case $1 in
	''|[!A-Za-z]*|*[!A-Za-z0-9_]*)
		_pg_err "cluster name '$1': use letters, digits and _"
		return 1 ;;
	esac
	printf '%s\n' "$1" | tr 'a-z' 'A-Z'
}

# Set _pg_k and _pg_d for a started cluster NAME.
_pg_find() {
	_pg_k=$(_pg_key "$1") || return 1
	eval "_pg_d=\${PG_${_pg_k}_DIR-}"
	if [ -z "$_pg_d" ]; then
		_pg_err "no cluster '$1' started"
		return 1
	fi
}

pg_cleanup_on_exit() {
	_harness_add_hook pg_stop_all
	_harness_trap_install
}

pg_start() {
	if [ $# -ne 1 ]; then
		_pg_err "usage: pg_start NAME"
		return 1
	fi
	_pg_k=$(_pg_key "$1") || return 1
	eval "_pg_d=\${PG_${_pg_k}_DIR-}"
	if [ -n "$_pg_d" ]; then
		_pg_err "cluster '$1' is already started ($_pg_d)"
		return 1
	fi
	if [ -n "${AIRLOCK_SCRATCH-}" ]; then
		_pg_d=$AIRLOCK_SCRATCH/pg-$1
	else
		_pg_d=$(mktemp -d "${TMPDIR:-/tmp}/airlock-pg-$1.XXXXXX") || return 1
	fi
	pg_cleanup_on_exit
	# Registered before it exists, so a signal during the start still
	# finds it at exit.
	eval "PG_${_pg_k}_DIR=\$_pg_d"
	_pg_names="$_pg_names $1"
	if ! _pg_out=$(_pg_cmd_start "$_pg_d" "$$"); then
		pg_stop "$1"
		return 1
	fi
	while IFS= read -r _pg_line; do
		_pg_v=${_pg_line#*=}
		case ${_pg_line%%=*} in
		dir) eval "PG_${_pg_k}_DIR=\$_pg_v" ;;
		data) eval "PG_${_pg_k}_DATA=\$_pg_v" ;;
		socket_dir) eval "PG_${_pg_k}_HOST=\$_pg_v" ;;
		port) eval "PG_${_pg_k}_PORT=\$_pg_v" ;;
		user) eval "PG_${_pg_k}_USER=\$_pg_v" ;;
		dbname) eval "PG_${_pg_k}_DATABASE=\$_pg_v" ;;
		conninfo) eval "PG_${_pg_k}_CONNINFO=\$_pg_v" ;;
		log) eval "PG_${_pg_k}_LOG=\$_pg_v" ;;
		bindir) eval "PG_${_pg_k}_BINDIR=\$_pg_v" ;;
		esac
	done <<EOF
$_pg_out
EOF
	pg_use "$1"
}

pg_use() {
	_pg_find "$1" || return 1
	eval "PGHOST=\$PG_${_pg_k}_HOST PGPORT=\$PG_${_pg_k}_PORT" \
		"PGUSER=\$PG_${_pg_k}_USER PGDATABASE=\$PG_${_pg_k}_DATABASE"
	export PGHOST PGPORT PGUSER PGDATABASE
}

pg_conninfo() {
	_pg_find "$1" || return 1
	eval "printf '%s\n' \"\$PG_${_pg_k}_CONNINFO\""
}

pg_psql() {
	_pg_find "$1" || return 1
	shift
	eval "_pg_b=\$PG_${_pg_k}_BINDIR _pg_c=\$PG_${_pg_k}_CONNINFO"
	"$_pg_b/psql" -X -A -t -q -v ON_ERROR_STOP=1 -d "$_pg_c" "$@"
}

pg_tables_sum() {
	_pg_sc=$1
	shift
	_pg_list=$(printf "'%s'," "$@")
	pg_psql "$_pg_sc" -c "SELECT coalesce(string_agg(n || ':' || c, ' ' ORDER BY n), '') FROM (
		SELECT c.relname AS n, (xpath('/row/c/text()', query_to_xml(
			format('SELECT md5(coalesce(string_agg(t::text, %L ORDER BY t::text), %L)) AS c FROM %I.%I t',
			       ',', '', n.nspname, c.relname), false, true, '')))[1]::text AS c
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname IN (${_pg_list%,}) AND c.relkind = 'r') s"
}

pg_staging_count() {
	pg_psql "$1" -c "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'airlock\_staging\_%' OR nspname LIKE 'airlock\_old\_%'"
}

pg_is_running() {
	_pg_find "$1" || return 1
	(_pg_cmd_status "$_pg_d")
}

pg_kill() {
	_pg_find "$1" || return 1
	(_pg_cmd_kill "$_pg_d")
}

pg_restart() {
	_pg_find "$1" || return 1
	(_pg_cmd_restart "$_pg_d")
}

pg_stop() {
	_pg_find "$1" || return 1
	_pg_src=0
	(_pg_cmd_stop "$_pg_d" fast) || _pg_src=1
	eval "_pg_h=\${PG_${_pg_k}_HOST-}"
	if [ -n "$_pg_h" ] && [ "${PGHOST-}" = "$_pg_h" ]; then
		unset PGHOST PGPORT PGUSER PGDATABASE
	fi
	for _pg_v in DIR DATA HOST PORT USER DATABASE CONNINFO LOG BINDIR; do
		unset "PG_${_pg_k}_$_pg_v"
	done
	_pg_rest=
	for _pg_v in $_pg_names; do
		[ "$_pg_v" = "$1" ] || _pg_rest="$_pg_rest $_pg_v"
	done
	_pg_names=$_pg_rest
	return "$_pg_src"
}

pg_stop_all() {
	_pg_rc=0
	for _pg_n in $_pg_names; do
		pg_stop "$_pg_n" || _pg_rc=1
	done
	return "$_pg_rc"
}

# ---------------------------------------------------------------------
case ${0##*/}:${1-} in
pg.sh:start|pg.sh:stop|pg.sh:kill|pg.sh:restart|pg.sh:status)
	_pg_cmd=$1
	shift
	if [ $# -lt 1 ]; then
		_pg_err "usage: pg.sh $_pg_cmd DIR"
		exit 64
	fi
	case $_pg_cmd in
	start) _pg_cmd_start "$@" ;;
	stop) _pg_cmd_stop "$1" "${2:-fast}" ;;
	kill) _pg_cmd_kill "$1" ;;
	restart) _pg_cmd_restart "$1" ;;
	status) _pg_cmd_status "$1" ;;
	esac
	exit
	;;
*)
	pg_cleanup_on_exit
	;;
esac
