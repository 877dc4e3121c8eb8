#!/bin/sh
# airlock-audit, the real binary, on custody logs written by the custody
# module (through tests/unit/al-custody-append): a clean trail verifies and
# renders in all three formats; each kind of tampering is caught and the
# first bad entry named; usage errors, a missing log, a bad config and a
# failed write to stdout give their exit codes.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}"
cd "${AIRLOCK_SCRATCH:?}"
command -v jq >/dev/null 2>&1 || { echo "SKIP: jq is not installed (apt-get install jq)"; exit 77; }

AUDIT=$AIRLOCK_BUILDDIR/src/airlock-audit
APPEND=$AIRLOCK_BUILDDIR/tests/unit/al-custody-append
ID_A=6f1c2a4e-0b7d-4c52-9a55-3f0e2d1c4b6a
ID_B=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
SHA_A=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
SHA_B=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
FPR=0123456789ABCDEF0123456789ABCDEF01234567
CR=$(printf '\r')

fail() { echo "FAIL: $*" >&2; exit 1; }

# run CMD...: exit status in $rc, output in the files out and err.
run() { set +e; "$@" >out 2>err; rc=$?; set -e; }

# expect RC TEXT CMD...: the status is RC and stderr holds TEXT.
expect() {
	want=$1 text=$2
	shift 2
	run "$@"
	[ "$rc" = "$want" ] || { cat out err >&2; fail "$*: exit $rc, expected $want"; }
	grep -qF -- "$text" err || { cat err >&2; fail "$*: stderr lacks \"$text\""; }
}

app() { "$APPEND" "$@" >/dev/null || fail "append $*"; }

# The low side: one bundle written.
app --log "$PWD/low.log" --side low --event bundle.written --outcome ok \
	--run 11111111-1111-4111-8111-111111111111 --channel nvd --sequence 42 \
	--bundle-id $ID_A --manifest-sha256 $SHA_B --verified --devnode /dev/sdb \
	--serial 4C530001 --vendor Kingston --model 'DataTraveler 3.0' --size 16008609792 \
	--courier 'Sgt. Jane Doe' --signed-host low-01 --signed-courier 'Sgt. Jane Doe' \
	--signed-media-serial 4C530001 --signer $FPR

# The high side: an import, a refusal, a foreign medium.
R1=0f8fad5b-d9cb-469f-a165-70867728950e
R2=7c9e6679-7425-40de-944b-e07fc1f90ae7
R3=16fd2706-8baf-433b-82eb-8c7fada847da
H=$PWD/high.log
app --log "$H" --event media.inserted --run $R1 --devnode /dev/sdc --serial 4C530001 \
	--vendor Kingston --model 'DataTraveler 3.0' --size 16008609792
app --log "$H" --event media.quarantined --outcome ok --run $R1 --devnode /dev/sdc \
	--serial 4C530001 --image-sha256 $SHA_A --detail bytes=1048576
app --log "$H" --event bundle.verified --outcome ok --run $R1 --channel nvd --sequence 42 \
	--bundle-id $ID_A --manifest-sha256 $SHA_B --image-sha256 $SHA_A --verified \
	--signed-host low-01 --signed-courier 'Sgt. Jane Doe' --signed-media-serial 4C530001 \
	--signer $FPR
app --log "$H" --event restore.intent --run $R1 --channel nvd --sequence 42 \
	--bundle-id $ID_A --manifest-sha256 $SHA_B --verified
app --log "$H" --event restore.done --outcome ok --run $R1 --channel nvd --sequence 42 \
	--bundle-id $ID_A --manifest-sha256 $SHA_B --verified --detail rows=12345
app --log "$H" --event media.inserted --run $R2 --devnode /dev/sdd --serial 'S"Q,1' \
	--vendor '=cmd'
app --log "$H" --event media.quarantined --outcome ok --run $R2 --devnode /dev/sdd \
	--image-sha256 $SHA_B
app --log "$H" --event bundle.rejected --outcome refused --reason signature.untrusted \
	--run $R2 --channel nvd --sequence 43 --bundle-id $ID_B --image-sha256 $SHA_B
app --log "$H" --event media.inserted --run $R3 --devnode /dev/sde
app --log "$H" --event media.ignored --run $R3 --devnode /dev/sde --detail type=vfat
[ "$(wc -l < "$H")" = 10 ] || fail "expected 10 entries"
HEAD=$(tail -n 1 "$H" | jq -r .hash)

# A config file naming the log.
printf '[common]\ncustody-log = %s\n' "$H" > airlock.conf
chmod 0600 airlock.conf

# --- verify ---------------------------------------------------------
run "$AUDIT" verify --custody-log "$H"
[ "$rc" = 0 ] || { cat err; fail "verify of a clean log: exit $rc"; }
[ "$(cat out)" = "custody log OK: 10 entries, head seq 10 hash $HEAD" ] ||
	fail "verify said: $(cat out)"
run "$AUDIT" verify --config "$PWD/airlock.conf"
[ "$rc" = 0 ] || fail "verify through the config file: exit $rc"
run "$AUDIT" verify --custody-log low.log      # a relative path: an auditor's copy
[ "$rc" = 0 ] || { cat err; fail "verify of the low-side log: exit $rc"; }
run "$AUDIT" verify --custody-log "$H" --anchor "10:$HEAD" \
	--anchor "3:$(sed -n 3p "$H" | jq -r .hash)"
[ "$rc" = 0 ] || { cat err; fail "verify with matching anchors: exit $rc"; }
grep -q '; 2 anchors match$' out || fail "anchors not reported: $(cat out)"

# --- list -------------------------------------------------------------
run "$AUDIT" list --config "$PWD/airlock.conf"
[ "$rc" = 0 ] || { cat err; fail "list: exit $rc"; }
[ "$(wc -l < out)" = 11 ] || { cat out; fail "list: expected a header and 10 rows"; }
head -n 1 out | grep -q '^SEQ  TIME  *SIDE  EVENT  *OUTCOME  REASON  *CHANNEL/SEQUENCE  BUNDLE$' ||
	fail "list: header $(head -n 1 out)"
# Aligned: every row has its OUTCOME cell where the header has it.
col=$(head -n 1 out | awk '{ print index($0, "OUTCOME") }')
cut -c "$((col - 2))-" out | awk -v file=out '
	$0 !~ /^  (OUTCOME|ok|info|refused|error) / { print "misaligned: " $0; bad = 1 }
	END { exit bad }' || { cat out; fail "list: columns not aligned"; }
grep -q '^  8  .*  bundle\.rejected  *refused  signature\.untrusted  *nvd/43  *0a1b2c3d$' out ||
	{ cat out; fail "list: the refusal row"; }

run "$AUDIT" list --custody-log "$H" --format json --outcome ok
[ "$rc" = 0 ] || fail "list --format json: exit $rc"
jq -c 'select(.outcome == "ok")' "$H" > want.json
cmp -s out want.json || { diff out want.json; fail "list --format json: not the log's lines"; }
[ "$(wc -l < out)" = 4 ] || fail "list --format json --outcome ok: expected 4 lines"

run "$AUDIT" list --custody-log "$H" --format csv
[ "$rc" = 0 ] || fail "list --format csv: exit $rc"
[ "$(head -n 1 out)" = "seq,time,host,side,run,event,outcome,reason,channel,sequence,bundle_id,verified,manifest_sha256,image_sha256,devnode,vendor,model,serial,size,user,uid,loginuid,unit,courier,signed,details,prev,hash$CR" ] ||
	fail "csv header: $(head -n 1 out)"
[ "$(wc -l < out)" = 11 ] || fail "csv: expected 11 lines"
[ "$(tr -cd '\r' < out | wc -c)" = 11 ] || fail "csv: lines must end with CR LF"
grep -q ",bundle\.rejected,refused,signature\.untrusted,nvd,43,$ID_B,false,,$SHA_B," out ||
	fail "csv: the refusal row"
grep -q ",/dev/sdd,\"'=cmd\",,\"S\"\"Q,1\",," out || { grep sdd out; fail "csv: quoting"; }
grep -q ',"{""bytes"":""1048576""}",' out || fail "csv: details as JSON"

run "$AUDIT" list --custody-log "$H" --device 4C530001 --format json
[ "$(wc -l < out)" = 3 ] || { cat out; fail "list --device: expected 3 entries"; }
run "$AUDIT" list --custody-log "$H" --event media.inserted --since 2000-01-01 --until 2999-12-31T23:59:59Z
[ "$(wc -l < out)" = 4 ] || { cat out; fail "list --event --since --until: expected 3 rows"; }
run "$AUDIT" list --custody-log "$H" --channel nvd --bundle 0a1b2c3d --format json
[ "$(wc -l < out)" = 1 ] || { cat out; fail "list --channel --bundle: expected 1 entry"; }
run "$AUDIT" list --custody-log "$H" --since 2999-01-01
[ "$rc" = 0 ] && [ "$(wc -l < out)" = 1 ] || fail "list with nothing selected: the header alone"

# --- show -------------------------------------------------------------
run "$AUDIT" show 6f1c2a4e --custody-log "$H"
[ "$rc" = 0 ] || { cat err; fail "show: exit $rc"; }
for text in "Bundle $ID_A: channel nvd, sequence 42" \
	"Low-side facts, from the signed MANIFEST (as recorded at seq 3):" \
	"  writer host    low-01" "  courier        Sgt. Jane Doe" \
	"  media serial   4C530001" "  signers        $FPR" \
	"  seq 1  high  media.inserted" "  seq 2  high  media.quarantined" \
	"      image sha256 $SHA_A" "  seq 3  high  bundle.verified" \
	"  seq 4  high  restore.intent" "  seq 5  high  restore.done       ok" \
	"      details: rows=12345"; do
	grep -qF -- "$text" out || { cat out; fail "show: no \"$text\""; }
done
grep -q 'bundle.rejected\|media.ignored' out && fail "show: entries of other runs"
run "$AUDIT" show "$ID_A" --custody-log low.log
[ "$rc" = 0 ] && grep -q '  seq 1  low   bundle.written     ok' out ||
	{ cat out err; fail "show on the low-side log"; }
expect 66 "no entry about a bundle" "$AUDIT" show deadbeef --custody-log "$H"
expect 64 "at least 8 characters" "$AUDIT" show 6f1c --custody-log "$H"

# --- tampering: each caught, the first bad entry named -----------------
tamper() { cp "$H" t.log; chmod 0640 t.log; }

tamper; sed -i '3s/"outcome":"ok"/"outcome":"refused"/' t.log
expect 65 "t.log: line 3 (seq 3): hash mismatch" "$AUDIT" verify --custody-log t.log
tamper; sed -i '7s/"devnode":"\/dev\/sdd"/"devnode":"\/dev\/sdx"/' t.log
expect 65 "line 7 (seq 7): hash mismatch" "$AUDIT" verify --custody-log t.log
tamper; sed -i '5s/"rows":"12345"/"rows":"12346"/' t.log
expect 65 "line 5 (seq 5): hash mismatch" "$AUDIT" verify --custody-log t.log
tamper; sed -i '4d' t.log
expect 65 "line 4 (seq 5): seq 5 follows 3 [custody.seq_gap]" "$AUDIT" verify --custody-log t.log
tamper; { sed -n 1,3p "$H"; sed -n 5p "$H"; sed -n 4p "$H"; sed -n '6,$p' "$H"; } > t.log
expect 65 "line 4 (seq 5): seq 5 follows 3" "$AUDIT" verify --custody-log t.log
expect 65 "does not verify: line 4 (seq 5): seq 5 follows 3" "$AUDIT" list --custody-log t.log

# A forged entry, hashed right but chained to nothing: made by hand from
# the format's rules.
tamper
body=$(tail -n 1 "$H" | sed -e 's/"seq":10,/"seq":11,/' \
	-e "s/\"prev\":\"[0-9a-f]*\"/\"prev\":\"$SHA_A\"/" -e 's/,"hash":"[0-9a-f]\{64\}"}$/}/')
hash=$(printf '%s' "$body" | sha256sum | cut -c1-64)
printf '%s,"hash":"%s"}\n' "${body%?}" "$hash" >> t.log
expect 65 "line 11 (seq 11): prev does not match entry 10's hash (line 10) [custody.prev_mismatch]" \
	"$AUDIT" verify --custody-log t.log
# The same, copied without recomputing the hash.
tamper; tail -n 1 "$H" | sed -e 's/"seq":10,/"seq":11,/' >> t.log
expect 65 "line 11 (seq 11): hash mismatch" "$AUDIT" verify --custody-log t.log

# A torn last line, then recorded by the next append.
tamper; truncate -s -40 t.log
expect 65 "line 10: torn line: no newline at the end of the log" "$AUDIT" verify --custody-log t.log
app --log "$PWD/t.log" --event media.inserted --devnode /dev/sdf
run "$AUDIT" verify --custody-log t.log
[ "$rc" = 0 ] || { cat err; fail "a recorded torn line: exit $rc"; }
grep -q '^custody log OK: 11 entries, head seq 11 hash [0-9a-f]*; 1 torn write recorded$' out ||
	fail "torn: $(cat out)"
[ "$(sed -n 11p t.log | jq -r .event)" = custody.torn_tail ] || fail "no custody.torn_tail entry"

# A cut tail: still a whole chain, caught through the anchor.
tamper; sed -i '9,$d' t.log
run "$AUDIT" verify --custody-log t.log
[ "$rc" = 0 ] || fail "a cut log is still a whole chain"
expect 65 "log cut: it ends at seq 8 (line 8), but the database anchors seq 10" \
	"$AUDIT" verify --custody-log t.log --anchor "10:$HEAD"
expect 65 "line 3 (seq 3): anchor mismatch" \
	"$AUDIT" verify --custody-log "$H" --anchor "3:$SHA_A"

# --- usage, missing files, configuration, output errors ---------------
run "$AUDIT" --help
[ "$rc" = 0 ] && head -n 1 out | grep -q '^Usage:$' || fail "--help"
run "$AUDIT" --version
[ "$rc" = 0 ] && grep -q '^airlock-audit (airlock) ' out || fail "--version"
expect 64 "no command given" "$AUDIT"
expect 64 "unknown command \"check\"; try 'airlock-audit --help'" "$AUDIT" check
expect 64 "unknown option --frobnicate" "$AUDIT" verify --frobnicate
expect 64 "--format does not apply to verify" "$AUDIT" verify --format csv
expect 64 "--anchor does not apply to list" "$AUDIT" list --anchor "1:$SHA_A"
expect 64 "--since: \"last week\" is not a time" "$AUDIT" list --since 'last week'
expect 64 "--format: \"xml\" is not table, json or csv" "$AUDIT" list --format xml
expect 64 "--outcome: \"fine\" is not ok" "$AUDIT" list --outcome fine --custody-log "$H"
expect 64 "--anchor: \"10\" is not SEQ:HASH" "$AUDIT" verify --anchor 10
expect 64 "--channel given twice" "$AUDIT" list --channel a --channel b
expect 64 "show needs a BUNDLE-ID" "$AUDIT" show
expect 64 "unexpected argument \"extra\"" "$AUDIT" verify extra
expect 64 "--custody-log needs a value" "$AUDIT" verify --custody-log
expect 66 "no such custody log" "$AUDIT" verify --custody-log "$PWD/none.log"
ln -s "$H" link.log
expect 66 "is a symbolic link" "$AUDIT" verify --custody-log link.log
expect 78 "config" "$AUDIT" verify --config "$PWD/none.conf"
printf '[common]\nbogus = 1\n' > bad.conf
chmod 0600 bad.conf
expect 78 "unknown key" "$AUDIT" verify --config "$PWD/bad.conf"
if [ -w /dev/full ]; then
	expect 74 "write error on standard output" sh -c '"$0" list --custody-log "$1" > /dev/full' \
		"$AUDIT" "$H"
fi

# --- the man page ---------------------------------------------------------
if command -v man >/dev/null 2>&1; then
	warnings=$(MANWIDTH=80 man --warnings -l "$AIRLOCK_SRCDIR/doc/airlock-audit.1" 2>&1 >/dev/null)
	[ -z "$warnings" ] || fail "man page warnings: $warnings"
	MANWIDTH=200 man -l "$AIRLOCK_SRCDIR/doc/airlock-audit.1" 2>/dev/null > man.txt
	# Every option of --help is in the man page, and the reverse.
	"$AUDIT" --help | grep -o -- '--[a-z][a-z-]*' | sort -u > help.opts
	grep -o -- '--[a-z][a-z-]*' man.txt | sort -u > man.opts
	cmp -s help.opts man.opts || { diff help.opts man.opts; fail "--help and the man page differ in options"; }
	for cmd in verify list show; do
		grep -q "^ *airlock-audit $cmd" man.txt || fail "man page synopsis lacks $cmd"
		"$AUDIT" --help | grep -q "^  airlock-audit $cmd" || fail "--help synopsis lacks $cmd"
	done
fi

echo "audit: verify, list (table, json, csv), show and 11 kinds of tampering checked"
