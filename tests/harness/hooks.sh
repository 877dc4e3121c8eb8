# tests/harness/hooks.sh: the exit hooks pg.sh and loop.sh share (sourced
# by them, not by tests). A sourcing script's EXIT trap stays in force:
# the hooks run first, then the trap that was there; INT, TERM and HUP
# exit (so that EXIT runs) unless the script trapped them itself. Defined
# once, whichever of the two files is sourced first.
#
# _harness_trap_install   (re)install the EXIT trap, keeping the one there
# _harness_add_hook FN    run FN at exit (once, however often added)
if [ -z "${_harness_hooks_defined-}" ]; then
_harness_hooks_defined=1
_harness_exit_hooks=
_harness_exit_prev=

_harness_status() {
	return "$1"
}

_harness_exit_run() {
	_harness_rc=$?
	for _harness_h in $_harness_exit_hooks; do
		"$_harness_h" || :
	done
	_harness_exit_hooks=
	if [ -n "$_harness_exit_prev" ]; then
		# the earlier trap sees the original exit status in $?
		if _harness_status "$_harness_rc"; then
			eval "$_harness_exit_prev"
		else
			eval "$_harness_exit_prev"
		fi
	fi
}

_harness_trap_seen() {
	case $2 in
	EXIT|0) _harness_cur_exit=$1 ;;
	INT|SIGINT|2) _harness_cur_int='set' ;;
	TERM|SIGTERM|15) _harness_cur_term='set' ;;
	HUP|SIGHUP|1) _harness_cur_hup='set' ;;
	esac
}

# Install (or re-install, when someone replaced it) the EXIT trap, keeping
# the one in place. Must run in the main shell, not in $(...).
_harness_trap_install() {
	_harness_tf=$(mktemp "${TMPDIR:-/tmp}/airlock-trap.XXXXXX") || return 1
	trap >"$_harness_tf"
	_harness_cur_exit=
	_harness_cur_int=
	_harness_cur_term=
	_harness_cur_hup=
	eval "$(sed 's/^trap -- /_harness_trap_seen /' "$_harness_tf")"
	rm -f "$_harness_tf"
	if [ "$_harness_cur_exit" != _harness_exit_run ]; then
		_harness_exit_prev=$_harness_cur_exit
		trap _harness_exit_run EXIT
	fi
	[ -n "$_harness_cur_int" ] || trap 'exit 130' INT
	[ -n "$_harness_cur_term" ] || trap 'exit 143' TERM
	[ -n "$_harness_cur_hup" ] || trap 'exit 129' HUP
}

_harness_add_hook() {
	case " $_harness_exit_hooks " in
	*" $1 "*) ;;
	*) _harness_exit_hooks="$_harness_exit_hooks $1" ;;
	esac
}
fi
