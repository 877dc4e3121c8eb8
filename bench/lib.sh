# shellcheck shell=bash
# The globals below are the sourcing script's (SC2154) or read by it
# (SC2034); wmin[$s] and the like are associative arrays (SC2004).
# shellcheck disable=SC2034,SC2154,SC2004
# bench/lib.sh: what write-bench and import-bench share. Sourced (bash)
# after the script has set me, here, srcdir and harness; see
# bench/README.md.
#
# Variables the functions read or set (globals, as in the scripts):
#   scratch keys keep_logs child size tsv ncpu     (read)
#   fpr ghome                                        bench_keys
#   conninfo pg_bindir server_version               bench_cluster
#   units rows db_bytes est_copy gen_s per_unit cal_vendors   bench_feed

die() {
	printf '%s: %s\n' "$me" "$*" >&2
	exit 1
}

say() {
	printf '%s: %s\n' "$me" "$*" >&2
}

need_arg() {
	[ $# -ge 2 ] || die "$1 needs an argument (see --help)"
}

# SIZE -> bytes (binary units).
parse_size() {
	local n u
	case $1 in
	''|*[!0-9KMGTkmgtiIbB.]*) return 1 ;;
	esac
	n=${1%%[KMGTkmgt]*}
	u=${1#"$n"}
	case $n in ''|*[!0-9]*) return 1 ;; esac
	case $u in
	''|[bB]) echo "$n" ;;
	[kK]|[kK]i[bB]|[kK][bB]|[kK]i) echo $((n * 1024)) ;;
	[mM]|[mM]i[bB]|[mM][bB]|[mM]i) echo $((n * 1024 * 1024)) ;;
	[gG]|[gG]i[bB]|[gG][bB]|[gG]i) echo $((n * 1024 * 1024 * 1024)) ;;
	[tT]|[tT]i[bB]|[tT][bB]|[tT]i) echo $((n * 1024 * 1024 * 1024 * 1024)) ;;
	*) return 1 ;;
	esac
}

# bench_binary NAME GIVEN ENVVALUE: the absolute path of an airlock
# program: GIVEN, else ENVVALUE, else ./src/NAME, else the source tree's.
bench_binary() {
	local name=$1 b=$2 c
	if [ -z "$b" ]; then
		for c in "$3" "./src/$name" "$srcdir/src/$name"; do
			if [ -n "$c" ] && [ -x "$c" ]; then
				b=$c
				break
			fi
		done
		[ -n "$b" ] || die "no $name found: build it (see README) and pass --$name PATH"
	fi
	[ -x "$b" ] || die "$b: not an executable"
	echo "$(cd "$(dirname "$b")" && pwd)/$(basename "$b")"
}

# bench_tools TOOL...: GNU time, the harness, the generator and TOOLs.
bench_tools() {
	local t
	if [ ! -x /usr/bin/time ] || ! /usr/bin/time --version 2>&1 | grep -q GNU; then
		die "GNU time is needed as /usr/bin/time (Debian: apt-get install time)"
	fi
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || die "$t not found (Debian packages: xorriso gnupg coreutils util-linux postgresql-client jq)"
	done
	{ [ -r "$harness/pg.sh" ] && [ -x "$harness/gpgkeys.sh" ]; } || die "$harness: the test harness (pg.sh, gpgkeys.sh) is missing"
	[ -r "$here/feeds-gen.sql" ] || die "$here/feeds-gen.sql is missing"
	[ "$(id -u)" -eq 0 ] || say "not root: the cluster runs as you (pg.sh)"
}

# bench_disk DIR FACTOR: refuse when DIR's disk has less than FACTOR x
# size free (FACTOR in tenths: 40 is 4x). Prints DIR made absolute.
bench_disk() {
	local d=$1 avail_kb need_kb
	[ -d "$d" ] || die "--dir $d: no such directory"
	d=$(cd "$d" && pwd)
	avail_kb=$(df -Pk "$d" | awk 'NR == 2 { print $4 }')
	need_kb=$((size * $2 / 10 / 1024))
	if [ "$avail_kb" -lt "$need_kb" ]; then
		die "$d has $((avail_kb / 1024)) MiB free; a $size_arg feed needs about $((need_kb / 1024)) MiB ($(awk -v f="$2" 'BEGIN { print f / 10 }') x the size): free some space or use --dir"
	fi
	echo "$d"
}

# ---------------------------------------------------------------------
# Cleanup. bench_traps is called before pg.sh is sourced, so pg.sh keeps
# our traps: INT/TERM/HUP stop the measured command (its own process
# group), then exit; at exit pg.sh stops the cluster first, then
# cleanup() stops the gpg-agents and removes the scratch directory.
scratch=
child=
keys=

stop_child() {
	if [ -n "$child" ]; then
		kill -TERM -- "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null
		wait "$child" 2>/dev/null
		child=
	fi
}

cleanup() {
	stop_child
	if [ -n "$keys" ] && [ -d "$keys" ]; then
		"$harness/gpgkeys.sh" kill "$keys" >/dev/null 2>&1
	fi
	if [ -n "$scratch" ] && [ -d "$scratch" ]; then
		if [ -n "$keep_logs" ] && [ -d "$scratch/logs" ]; then
			mkdir -p "$keep_logs" && cp -a "$scratch/logs/." "$keep_logs/" 2>/dev/null
		fi
		rm -rf "$scratch"
	fi
}

on_signal() {
	say "interrupted: cleaning up"
	stop_child
	exit "$1"
}

bench_traps() {
	trap cleanup EXIT
	trap 'on_signal 130' INT
	trap 'on_signal 143' TERM
	trap 'on_signal 129' HUP
}

# ---------------------------------------------------------------------
# Measurement helpers

cpu_snap() {  # "busy total" jiffies since boot, all CPUs
	local _c u n s i w q sq st rest
	read -r _c u n s i w q sq st rest </proc/stat
	echo "$((u + n + s + q + sq + st)) $((u + n + s + i + w + q + sq + st))"
}

# busy_cpus "B0 T0" "B1 T1": CPUs busy on average (all processes).
busy_cpus() {
	awk -v a="$1" -v b="$2" -v n="$ncpu" 'BEGIN {
		split(a, x, " "); split(b, y, " ");
		dt = y[2] - x[2];
		printf "%.2f\n", (dt > 0 ? (y[1] - x[1]) / dt * n : 0) }'
}

load1() {
	cut -d' ' -f1 /proc/loadavg
}

# Machine load over a few seconds before anything of ours runs.
background_load() {
	local a b
	a=$(cpu_snap)
	sleep 5
	b=$(cpu_snap)
	busy_cpus "$a" "$b"
}

# The fields of a GNU time -v file: wall rss_kib user sys fs_in fs_out exit.
parse_time() {
	awk -F': ' '
	/Elapsed \(wall clock\)/ {
		n = split($2, p, ":");
		w = (n == 3) ? p[1] * 3600 + p[2] * 60 + p[3] : p[1] * 60 + p[2] }
	/Maximum resident set size/ { rss = $2 }
	/User time \(seconds\)/ { u = $2 }
	/System time \(seconds\)/ { s = $2 }
	/File system inputs/ { fi = $2 }
	/File system outputs/ { fo = $2 }
	/Exit status/ { x = $2 }
	END { printf "%.2f %d %.2f %.2f %d %d %d\n", w, rss, u, s, fi, fo, x }' "$1"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

tsv_header() {
	printf 'size\trun\tvariant\tstep\twall_s\tmaxrss_kib\tuser_s\tsys_s\tfs_in_blocks\tfs_out_blocks\tload1\tbusy_cpus\n'
}

# measure RUN VARIANT STEP LOGNAME CMD...: one command under GNU time, in
# its own session (so that a signal can stop all of it), stdout and
# stderr into logs/LOGNAME.{out,err}; a line into raw.tsv. With STAMP=1
# each stderr line gets the seconds since the start in front, and the
# start (seconds since the epoch) goes into logs/LOGNAME.t0.
measure() {
	local run=$1 variant=$2 step=$3 log=$4 t0 c0 c1 l0 rc f
	shift 4
	f=$scratch/logs/$log
	l0=$(load1)
	c0=$(cpu_snap)
	if [ "${STAMP-0}" = 1 ]; then
		t0=$(date +%s.%N)
		echo "$t0" >"$f.t0"
		setsid /usr/bin/time -v -o "$f.time" "$@" >"$f.out" \
			2> >(while IFS= read -r line; do
				printf '%s %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%7.2f", a - b }')" "$line"
			done >"$f.err") &
	else
		setsid /usr/bin/time -v -o "$f.time" "$@" >"$f.out" 2>"$f.err" &
	fi
	child=$!
	rc=0
	wait "$child" || rc=$?
	child=
	c1=$(cpu_snap)
	if [ "$rc" -ne 0 ]; then
		say "$step failed (exit $rc); its output:"
		sleep 0.2
		tail -n 30 "$f.err" "$f.time" >&2 2>/dev/null
		exit 1
	fi
	# shellcheck disable=SC2046 # seven numbers
	set -- $(parse_time "$f.time")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$run" "$variant" "$step" \
		"$1" "$2" "$3" "$4" "$5" "$6" "$l0" "$(busy_cpus "$c0" "$c1")" >>"$scratch/raw.tsv"
	say "  run $run  $(printf '%-32s %8.2f s  %7s MiB RSS' "$step" "$1" "$(mib "$2")")"
}

# Per-run sum of the steps of VARIANT in raw.tsv, as rows with step
# LABEL (wall, CPU and blocks summed, RSS the largest step's, busy CPUs
# the steps' average weighted by their wall time).
sum_rows() {  # sum_rows VARIANT LABEL
	awk -F'\t' -v OFS='\t' -v v="$1" -v label="$2" 'NR > 1 && $3 == v {
			k = $2; w[k] += $5; if ($6 > m[k]) m[k] = $6; u[k] += $7; s[k] += $8;
			fi[k] += $9; fo[k] += $10; if (!(k in l)) l[k] = $11; bw[k] += $5 * $12; sz = $1 }
		END { for (k in w) print sz, k, v, label, sprintf("%.2f", w[k]), m[k],
			sprintf("%.2f", u[k]), sprintf("%.2f", s[k]), fi[k], fo[k], l[k],
			sprintf("%.2f", (w[k] > 0 ? bw[k] / w[k] : 0)) }' \
		"$scratch/raw.tsv" | sort -n -k2
}

# Median of numbers on stdin, one a line ("null" when none).
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "null"; exit }
		printf "%.2f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

stat_of() {  # stat_of STEP COLUMN -> "min median max" from $tsv
	awk -F'\t' -v s="$1" -v c="$2" 'NR > 1 && $4 == s { print $c }' "$tsv" | sort -g |
		awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "0 0 0"; exit }
			med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
			printf "%s %s %s\n", v[1], med, v[NR] }'
}

# bench_stats STEP...: wmin wmed rmax rmed cpumed machmed (associative
# arrays the caller declared) for each STEP, from $tsv. machmed is the
# median over the runs of the whole machine's CPU time during the step
# (wall x CPUs busy): the server's work included, which cpumed (the
# command's own user + system time) leaves out.
bench_stats() {
	local s a b c
	for s in "$@"; do
		read -r a b _ <<<"$(stat_of "$s" 5)"
		wmin[$s]=$a wmed[$s]=$b
		read -r _ b c <<<"$(stat_of "$s" 6)"
		rmed[$s]=$b rmax[$s]=$c
		cpumed[$s]=$(awk -F'\t' -v s="$s" 'NR > 1 && $4 == s { print $7 + $8 }' "$tsv" | sort -g |
			awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
		machmed[$s]=$(awk -F'\t' -v s="$s" 'NR > 1 && $4 == s { print $5 * $12 }' "$tsv" | sort -g |
			awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
	done
}

# Smallest and largest busy CPUs and load of the measurements in $tsv:
# sets all_busy and all_load ("min max").
bench_load_range() {
	all_busy=$(awk -F'\t' 'NR > 1 && $4 !~ /sum/ { print $12 }' "$tsv" | sort -g |
		awk '{ v[NR] = $1 } END { printf "%s %s", v[1], v[NR] }')
	all_load=$(awk -F'\t' 'NR > 1 && $4 !~ /sum/ { print $11 }' "$tsv" | sort -g |
		awk '{ v[NR] = $1 } END { printf "%s %s", v[1], v[NR] }')
}

# JSON array of the runs of STEP in $tsv.
runs_json() {
	awk -F'\t' -v s="$1" 'NR > 1 && $4 == s {
		printf "%s{\"run\": %s, \"wall_s\": %s, \"maxrss_kib\": %s, \"user_s\": %s, \"sys_s\": %s, \"fs_in_blocks\": %s, \"fs_out_blocks\": %s, \"load1\": %s, \"busy_cpus\": %s}",
			sep, $2, $5, $6, $7, $8, $9, $10, $11, $12; sep = ", " }' "$tsv"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print ((v <= t) ? "PASS" : "FAIL") }'; }
jbool() { if [ "$1" = PASS ]; then echo true; else echo false; fi; }

# ---------------------------------------------------------------------
# Keys and the cluster

# A throwaway signing key in $scratch/keys (gpgkeys.sh), its agent
# started before anything is timed. Sets fpr (signer1) and ghome.
bench_keys() {
	say "generating a throwaway signing key"
	keys=$scratch/keys
	"$harness/gpgkeys.sh" "$keys" || die "gpgkeys.sh failed"
	# shellcheck disable=SC1091
	. "$keys/keys.env"
	fpr=$SIGNER1_FPR
	ghome=$keys/signer
	gpg-connect-agent --homedir "$ghome" /bye >/dev/null 2>&1 || die "gpg-agent does not start in $ghome"
}

# The server settings of every benchmark cluster, as a JSON object.
bench_pg_settings_json='{"wal_level": "minimal", "max_wal_senders": 0, "maintenance_work_mem": "256MB", "shared_buffers": "128MB", "max_wal_size": "8GB", "checkpoint_timeout": "1h"}'

# A throwaway cluster "feed" in $scratch (pg.sh, sourced by the caller):
# bulk loads without WAL (tables created in the loading transaction),
# bigger maintenance memory for the index builds, no checkpoints during a
# measurement. Sets conninfo, pg_bindir and server_version.
bench_cluster() {
	say "starting a throwaway PostgreSQL cluster in $scratch"
	TMPDIR=$scratch pg_start feed || die "pg_start failed"
	pg_cleanup_on_exit
	conninfo=$(pg_conninfo feed)
	pg_bindir=$PG_FEED_BINDIR
	pg_psql feed -c "ALTER SYSTEM SET wal_level = 'minimal'" \
		-c "ALTER SYSTEM SET max_wal_senders = 0" \
		-c "ALTER SYSTEM SET maintenance_work_mem = '256MB'" \
		-c "ALTER SYSTEM SET shared_buffers = '128MB'" \
		-c "ALTER SYSTEM SET max_wal_size = '8GB'" \
		-c "ALTER SYSTEM SET checkpoint_timeout = '1h'" || die "ALTER SYSTEM failed"
	pg_restart feed || die "the cluster did not restart"
	server_version=$(pg_psql feed -c 'SHOW server_version')
}

# ---------------------------------------------------------------------
# The feed: calibrate the COPY text bytes per unit on a small run, then
# generate the whole (schema feeds of the cluster's database).
copy_bytes() {
	local t total=0 b
	for t in vendors advisories packages affected_ranges; do
		b=$(pg_psql feed -c "COPY feeds.$t TO STDOUT" | wc -c) || return 1
		total=$((total + b))
	done
	echo "$total"
}

# In the background and waited for: bash runs a trap only once the
# foreground command ends, and a generation takes minutes; wait returns
# at once on a signal, so SIGINT or SIGTERM stop the benchmark then (its
# cleanup stops the cluster, which ends the generation).
gen() {  # gen UNITS
	local rc=0
	{
		pg_psql feed -v units="$1" -f "$here/feeds-gen.sql" 2>&1 |
			grep -v -e NOTICE -e DETAIL -e '^drop cascades' >&2
		exit "${PIPESTATUS[0]}"
	} &
	child=$!
	wait "$child" || rc=$?
	child=
	return "$rc"
}

bench_feed() {
	local cal_units=20000 cal_total g0
	say "calibrating the generator"
	gen "$cal_units" || die "feeds-gen.sql failed"
	cal_vendors=$(pg_psql feed -c 'COPY feeds.vendors TO STDOUT' | wc -c)
	cal_total=$(copy_bytes) || die "COPY failed"
	per_unit=$(( (cal_total - cal_vendors) / cal_units ))
	units=$(( (size - cal_vendors + per_unit - 1) / per_unit ))
	say "$per_unit bytes of COPY text per advisory (with its packages and ranges): $units advisories for $size_arg"

	say "generating the feed (this takes a while: about a minute per GiB)"
	g0=$(date +%s)
	gen "$units" || die "feeds-gen.sql failed"
	pg_psql feed -c 'DROP SCHEMA bench_gen CASCADE' 2>/dev/null
	pg_psql feed -c 'VACUUM (FREEZE, ANALYZE)' || die "VACUUM failed"
	pg_psql feed -c 'CHECKPOINT' || die "CHECKPOINT failed"
	gen_s=$(( $(date +%s) - g0 ))
	rows=$(pg_psql feed -c "SELECT sum(n_live_tup) FROM pg_stat_user_tables WHERE schemaname = 'feeds'")
	db_bytes=$(pg_psql feed -c 'SELECT pg_database_size(current_database())')
	est_copy=$((cal_vendors + units * per_unit))
	say "feed ready in ${gen_s}s: $rows rows, about $est_copy bytes of COPY text, database $((db_bytes / 1048576)) MiB"
}
