#!/bin/sh
# Loop devices for tests. POSIX sh.
#
# Sourced (". loop.sh"), for shell tests:
#   loop_require          return when loop devices work here; otherwise
#                         print why and exit 77 (skip) when not root and
#                         not in CI, else exit 99 (hard error: CI=true
#                         never skips a missing loop device)
#   loop_attach [-r|--read-only] [-P|--partscan] IMAGE
#                         attach IMAGE (direct I/O off) and print /dev/loopN;
#                         works in $(...): the device is recorded in a file
#   loop_detach DEV       detach (waits until the kernel has let go)
#   loop_detach_all       detach every device this shell attached
#   loop_cleanup_on_exit  make sure loop_detach_all runs at exit
#
# Cleanup: sourcing installs an EXIT trap that runs loop_detach_all (an
# EXIT trap set before is kept and runs after it) and, when they are at
# their default, INT/TERM/HUP traps that exit 130/143/129. If you set your
# own EXIT trap later, call loop_cleanup_on_exit afterwards. A watcher
# process detaches a device within about a second once the shell that
# attached it is gone, even after SIGKILL.
#
# Where udev does not create /dev/loopN for a new device (a container with
# a static /dev), attach makes the node itself (mknod, from
# /sys/block/loopN/dev) and /dev/loop-control from /sys when it is missing.
#
# Command mode, one implementation for the C harness (harness_loop.c):
#   sh loop.sh require
#   sh loop.sh attach [--read-only] IMAGE [OWNER_PID]   prints /dev/loopN
#   sh loop.sh detach DEV

_loop_err() {
	printf 'loop.sh: %s\n' "$*" >&2
}

# ---------------------------------------------------------------------
# Exit hooks (hooks.sh): through AIRLOCK_HARNESS when sourced, next to
# this file when run as a command.
. "${AIRLOCK_HARNESS:-$(dirname "$0")}/hooks.sh" ||
	{ _loop_err "no hooks.sh: set AIRLOCK_HARNESS to tests/harness"; return 1 2>/dev/null || exit 1; }

# ---------------------------------------------------------------------
# The implementation (command mode; the sourced functions call these in
# subshells, so their variables never reach the caller).

_loop_is_root() {
	[ "$(id -u)" -eq 0 ]
}

_loop_cmd_require() {
	why=
	if ! command -v losetup >/dev/null 2>&1; then
		why="losetup not found (apt-get install mount)"
	elif [ ! -c /dev/loop-control ]; then
		if _loop_is_root && [ ! -r /sys/class/misc/loop-control/dev ]; then
			modprobe loop >/dev/null 2>&1 || :
		fi
		if _loop_is_root && [ -r /sys/class/misc/loop-control/dev ]; then
			mm=$(cat /sys/class/misc/loop-control/dev)
			mknod -m 0660 /dev/loop-control c "${mm%%:*}" "${mm#*:}" 2>/dev/null || :
		fi
		if [ ! -c /dev/loop-control ]; then
			why="/dev/loop-control is missing (modprobe loop; a container needs --device /dev/loop-control or --privileged)"
		fi
	elif ! _loop_is_root; then
		why="attaching loop devices needs root"
	fi
	if [ -z "$why" ]; then
		return 0
	fi
	if ! _loop_is_root && [ "${CI-}" != true ]; then
		_loop_err "SKIP: $why"
		return 77
	fi
	if [ "${CI-}" = true ]; then
		_loop_err "ERROR: $why (CI=true: a missing loop device is not skipped)"
	else
		_loop_err "ERROR: $why"
	fi
	return 99
}

# Make /dev/loopN when udev did not (no devtmpfs, no udevd).
_loop_node() {
	if [ -b "$1" ]; then
		return 0
	fi
	n=${1#/dev/loop}
	case $n in
	''|*[!0-9]*) return 1 ;;
	esac
	mm=$(cat "/sys/block/loop$n/dev" 2>/dev/null) || mm=7:$n
	mknod -m 0660 "$1" b "${mm%%:*}" "${mm#*:}" || return 1
	chgrp disk "$1" 2>/dev/null || :
	[ -b "$1" ]
}

_loop_sys() {
	printf '/sys/block/%s/loop/backing_file\n' "${1#/dev/}"
}

# Set seq to DEV's disk sequence number, which changes at every attach
# and detach (Linux 5.15 and later; "-" before).
_loop_seq() {
	seq=-
	if [ -r "/sys/block/${1#/dev/}/diskseq" ]; then
		{ read -r seq <"/sys/block/${1#/dev/}/diskseq"; } 2>/dev/null || seq=
	fi
}

# "DISKSEQ MAJ:MIN INO" (the last two of the file behind DEV): identifies
# one attachment, so that a watcher never detaches a later one.
_loop_identity() {
	_loop_seq "$1"
	printf '%s %s\n' "$seq" \
		"$(losetup --list --raw -n -O BACK-MAJ:MIN,BACK-INO "$1" 2>/dev/null)"
}

_loop_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	{ read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
	st=${st##*) }
	case $st in
	Z*|X*) return 1 ;;
	esac
	return 0
}

_loop_cmd_attach() {
	ro=
	while :; do
		case ${1-} in
		-r|--read-only) ro="$ro --read-only"; shift ;;
		-P|--partscan) ro="$ro --partscan"; shift ;;
		*) break ;;
		esac
	done
	if [ $# -lt 1 ]; then
		_loop_err "usage: attach [--read-only] [--partscan] IMAGE [OWNER_PID]"
		return 64
	fi
	img=$1
	owner=${2-}
	if [ ! -f "$img" ]; then
		_loop_err "$img: not a regular file"
		return 1
	fi
	case $img in
	/*) ;;
	*) img=$(pwd)/$img ;;
	esac
	errf=$(mktemp "${TMPDIR:-/tmp}/airlock-loop.XXXXXX") || return 1
	# shellcheck disable=SC2086
	if ! dev=$(losetup --find --show --direct-io=off $ro "$img" 2>"$errf"); then
		# No node for the new device: find one, make its node, attach.
		dev=
		i=0
		while [ "$i" -lt 10 ]; do
			d=$(losetup --find 2>>"$errf") || break
			_loop_node "$d" 2>>"$errf" || break
			# shellcheck disable=SC2086
			if losetup --direct-io=off $ro "$d" "$img" 2>>"$errf"; then
				dev=$d
				break
			fi
			i=$((i + 1))
		done
		if [ -z "$dev" ]; then
			_loop_err "cannot attach $img:"
			sed 's/^/  /' "$errf" >&2
			rm -f "$errf"
			return 1
		fi
	fi
	rm -f "$errf"
	case $ro in
	*--partscan*)
		# Some kernels set the partscan flag but do not scan when a
		# device is attached: add the partitions explicitly.
		_loop_base=${dev##*/}
		if ! ls -d /sys/block/"$_loop_base"/"$_loop_base"p* >/dev/null 2>&1; then
			partx -a "$dev" 2>/dev/null || blockdev --rereadpt "$dev" 2>/dev/null || :
		fi
		for _loop_p in /sys/block/"$_loop_base"/"$_loop_base"p*; do
			[ -e "$_loop_p/dev" ] || continue
			[ -b "/dev/${_loop_p##*/}" ] ||
				mknod "/dev/${_loop_p##*/}" b "$(cut -d: -f1 "$_loop_p/dev")" "$(cut -d: -f2 "$_loop_p/dev")" 2>/dev/null || :
		done
		;;
	esac
	if [ -n "$owner" ]; then
		id=$(_loop_identity "$dev")
		# exec, not a redirection on the call: dash would keep a saved
		# copy of stdout (the caller's $(...) pipe) open in the watcher.
		(exec </dev/null >/dev/null 2>&1; _loop_watch "$dev" "$id" "$owner") &
	fi
	printf '%s\n' "$dev"
}

# Detach DEV; with ID, only while the same file is behind it; with
# "strict" too, only while it is the same attachment (disk sequence).
_loop_cmd_detach() {
	dev=$1
	id=${2-}
	strict=${3-}
	case $dev in
	/dev/loop[0-9]*) ;;
	*) _loop_err "$dev: not a loop device"; return 1 ;;
	esac
	sys=$(_loop_sys "$dev")
	if [ ! -e "$sys" ]; then
		return 0
	fi
	if [ -n "$id" ]; then
		cur=$(_loop_identity "$dev")
		if [ "${cur#* }" != "${id#* }" ]; then
			return 0
		fi
		if [ -n "$strict" ] && [ "${cur%% *}" != "${id%% *}" ]; then
			return 0
		fi
	fi
	if ! losetup -d "$dev" 2>/dev/null && [ -e "$sys" ]; then
		losetup -d "$dev" || return 1
	fi
	# Busy devices are cleared when their last user closes them.
	i=0
	while [ -e "$sys" ] && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ -e "$sys" ]; then
		_loop_err "$dev: still attached (in use?)"
		return 1
	fi
}

# Detach DEV (attachment ID) once OWNER is gone; quit when it is detached
# (polls once a second, without forking but for sleep).
_loop_watch() {
	trap '' INT TERM HUP
	sys=$(_loop_sys "$1")
	while _loop_alive "$3"; do
		[ -e "$sys" ] || return 0
		_loop_seq "$1"
		[ "$seq" = "${2%% *}" ] || return 0
		sleep 1
	done
	_loop_cmd_detach "$1" "$2" strict
}

# ---------------------------------------------------------------------
# The sourced API.

loop_require() {
	_loop_rc=0
	(_loop_cmd_require) || _loop_rc=$?
	if [ "$_loop_rc" -ne 0 ]; then
		exit "$_loop_rc"
	fi
	loop_cleanup_on_exit
}

loop_cleanup_on_exit() {
	_harness_add_hook loop_detach_all
	_harness_trap_install
}

loop_attach() {
	_loop_d=$(_loop_cmd_attach "$@" "$$") || return 1
	printf '%s %s\n' "$_loop_d" "$(_loop_identity "$_loop_d")" >>"$_loop_state"
	printf '%s\n' "$_loop_d"
}

loop_detach() {
	if [ $# -ne 1 ]; then
		_loop_err "usage: loop_detach DEV"
		return 1
	fi
	(_loop_cmd_detach "$1") || return 1
	if [ -f "$_loop_state" ]; then
		grep -v "^$1 " "$_loop_state" >"$_loop_state.new" || :
		mv -f "$_loop_state.new" "$_loop_state"
	fi
}

loop_detach_all() {
	_loop_rc=0
	if [ -f "$_loop_state" ]; then
		while read -r _loop_dev _loop_id; do
			(_loop_cmd_detach "$_loop_dev" "$_loop_id") || _loop_rc=1
		done <"$_loop_state"
		rm -f "$_loop_state"
	fi
	return "$_loop_rc"
}

# ---------------------------------------------------------------------
case ${0##*/}:${1-} in
loop.sh:require|loop.sh:attach|loop.sh:detach)
	_loop_cmd=$1
	shift
	case $_loop_cmd in
	require) _loop_cmd_require ;;
	attach) _loop_cmd_attach "$@" ;;
	detach)
		if [ $# -ne 1 ]; then
			_loop_err "usage: loop.sh detach DEV"
			exit 64
		fi
		_loop_cmd_detach "$1" ;;
	esac
	exit
	;;
*)
	if [ -z "${_loop_state-}" ]; then
		_loop_state=$(mktemp "${AIRLOCK_SCRATCH:-${TMPDIR:-/tmp}}/.airlock-loop.XXXXXX" 2>/dev/null) ||
			_loop_state=$(mktemp "${TMPDIR:-/tmp}/.airlock-loop.XXXXXX") || return 1
	fi
	loop_cleanup_on_exit
	;;
esac
