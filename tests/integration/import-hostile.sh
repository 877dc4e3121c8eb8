#!/bin/sh
# airlock-import against the hostile bundles of CATALOGUE.md: integrity
# (1-5), signatures and trust (6-17), policy (18-24), volume and archive
# parsing (25-33) and a truncated image (35). Each refusal is
# checked for its exit code, the one error line naming the reason code, the
# reason in --json and in a custody entry (with the image's SHA-256 where a
# copy was made), the live feed byte-identical, no staging schema left and
# the refused copy kept under quarantine/rejected. Every import runs under
# timeout: one that hangs fails the test.
set -eu
: "${AIRLOCK_SRCDIR:?}" "${AIRLOCK_BUILDDIR:?}" "${AIRLOCK_HARNESS:?}"
cd "${AIRLOCK_SCRATCH:?}"
W=$AIRLOCK_BUILDDIR/src/airlock-write
I=$AIRLOCK_BUILDDIR/src/airlock-import
FORGE=$AIRLOCK_BUILDDIR/tests/tools/al-forge
S=$AIRLOCK_SCRATCH
NOW=$(date +%s)

fail() { echo "FAIL: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is needed (scripts/setup installs it)"; }
need jq
need xorriso
need bsdtar
need python3

. "$AIRLOCK_HARNESS/pg.sh"
pg_start low
pg_start high
pg_psql low -f "$AIRLOCK_SRCDIR/tests/fixtures/feeds.sql" >/dev/null
"$AIRLOCK_HARNESS/gpgkeys.sh" keys
. ./keys/keys.env
trap '"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys' EXIT
pg_cleanup_on_exit
mkdir -p work state out tree
mkdir -m 0700 quarantine

THRESHOLD=2 KEYRING=$S/keys/keyring
import() {
	timeout -k 10 60 "$I" --target "$(pg_conninfo high)" --keyring "$KEYRING" \
		--trust "$SIGNER1_FPR" --trust "$SIGNER2_FPR" --threshold "$THRESHOLD" --channel nvd \
		--quarantine "$S/quarantine" --custody-log "$S/high.log" --lock-timeout 5s --quiet "$@"
}
# forge NAME [al-forge args]: out/NAME.iso, signed by signer1 and signer2
# unless --signer is given, created now, sequence 20 unless given.
forge() {
	name=$1
	shift
	case " $* " in *" --signer "*) signers= ;; *) signers="--signer $SIGNER1_FPR --signer $SIGNER2_FPR" ;; esac
	case " $* " in *" --sequence "*) seq= ;; *) seq="--sequence 20" ;; esac
	case " $* " in *" --created "*) created= ;; *) created="--created $NOW" ;; esac
	# shellcheck disable=SC2086
	"$FORGE" --out "$S/out/$name.iso" --gnupghome "$S/keys/signer" $signers $seq $created "$@" \
		>/dev/null || fail "al-forge $name $*"
}
live_sum() { pg_tables_sum high feeds airlock; }
staging_left() { pg_staging_count high; }
kept_count() { find quarantine/rejected -mindepth 1 -maxdepth 1 -name 'import-*' 2>/dev/null | wc -l; }

# refused CODE REASON IMAGE [ARGS...]: one refusal, checked whole.
# KEPT=0 before the call when no quarantine copy is made (or kept).
refused() {
	code=$1; reason=$2; image=$3; shift 3
	before=$(wc -l < high.log)
	kept=$(kept_count)
	set +e
	import --image "$image" --json "$@" > refused.json 2> refused.err
	rc=$?
	set -e
	case $rc in 124 | 137) fail "$reason: the import hung (killed by timeout) on $image" ;; esac
	[ "$rc" = "$code" ] || { cat refused.err refused.json; fail "$reason: expected exit $code, got $rc"; }
	[ "$(grep -c 'error:' refused.err)" = 1 ] || { cat refused.err; fail "$reason: not one error line"; }
	grep 'error:' refused.err | grep -qF "[$reason]" || { cat refused.err; fail "$reason: the error line does not name it"; }
	jq -e --arg r "$reason" '.ok == false and .reason == $r' refused.json >/dev/null ||
		{ cat refused.json refused.err; fail "expected reason $reason"; }
	[ "$(live_sum)" = "$live" ] || fail "$reason: the live feed changed"
	[ "$(staging_left)" = 0 ] || fail "$reason: a staging schema was left"
	tail -n +"$((before + 1))" high.log > entries.log
	grep "\"reason\":\"$reason\"" entries.log > entry.log || { cat entries.log; fail "$reason: no custody entry with the reason"; }
	if [ "${KEPT:-1}" = 1 ]; then
		[ "$(kept_count)" = "$((kept + 1))" ] || fail "$reason: the refused copy was not kept"
		sha=$(jq -r '.image_sha256 // .bundle.image_sha256 // empty' entry.log | head -n 1)
		[ -n "$sha" ] || { cat entry.log; fail "$reason: the custody entry has no image SHA-256"; }
		find quarantine/rejected -name image.iso -exec sha256sum {} + > kept.sums
		grep -q "^$sha " kept.sums ||
			fail "$reason: no kept copy has the logged SHA-256"
	else
		[ "$(kept_count)" = "$kept" ] || fail "$reason: a copy was kept"
		[ -z "$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')" ] || fail "$reason: a quarantine copy was left"
	fi
	KEPT=1
	echo "ok: $reason ($rc) $image"
}
# What a refusal wrote: WAL (every row COPY loaded is in it, even when the
# transaction is rolled back), the database's size, the quarantine's.
wal_lsn() { pg_psql high -c "SELECT pg_current_wal_lsn()"; }
db_bytes() { pg_psql high -c "SELECT pg_database_size(current_database())"; }
q_kib() { du -sk quarantine | cut -f1; }
mark() { m_wal=$(wal_lsn) m_db=$(db_bytes) m_q=$(q_kib); }
# bounded WHAT IMAGE: since mark, at most 16 MiB of WAL, the database at
# most 8 MiB bigger, the quarantine at most the image's size (the kept
# copy) and 64 KiB more.
bounded() {
	wal=$(pg_psql high -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$m_wal')::bigint")
	[ "$wal" -le $((16 << 20)) ] || fail "$1: $wal bytes of WAL: the database was filled"
	db=$(db_bytes)
	[ "$db" -le $((m_db + (8 << 20))) ] || fail "$1: the database grew from $m_db to $db bytes"
	q=$(q_kib)
	img=$((($(stat -c %s "$2") + 1023) / 1024))
	[ "$q" -le $((m_q + img + 64)) ] || fail "$1: the quarantine grew from $m_q to $q KiB (image $img KiB)"
	echo "ok: $1 bounded (WAL $wal bytes, database +$((db - m_db)) bytes, quarantine +$((q - m_q)) KiB)"
}
# A refusal made before any copy exists: its media.quarantined entry has
# no image hash but the SHA-256 of what was read (doc/custody-log.md).
evidence() { # FILE BYTES
	sha=$(head -c "$2" "$1" | sha256sum | cut -d' ' -f1)
	jq -e --arg s "$sha" --argjson n "$2" 'select(.event == "media.quarantined")
		| .outcome == "refused" and .bundle.image_sha256 == null
		and .details.read_sha256 == $s and .details.read_bytes == $n' entry.log >/dev/null ||
		{ cat entry.log; fail "no evidence of the $2 bytes read of $1"; }
}
# The signature verdicts are details of the rejected entry.
verdict() { grep -q "\"$1\"" entry.log || { cat entry.log; fail "no $1 verdict recorded"; }; }

# unpack NAME IMAGE: the tree of a forged image, to rebuild with xorriso.
unpack() {
	rm -rf "tree/$1"
	mkdir "tree/$1"
	bsdtar -C "tree/$1" -xf "$2" AIRLOCK
	chmod -R u+w "tree/$1"
}
# rebuild NAME SEQ [xorriso args]: out/NAME.iso from tree/NAME, Rock Ridge
# (no Joliet unless asked), labelled AIRLOCK_SEQ.
rebuild() {
	name=$1 seq=$2
	shift 2
	rm -f "out/$name.iso"
	xorriso -as mkisofs -quiet -R -V "AIRLOCK_$seq" "$@" -o "out/$name.iso" "tree/$name" \
		2>xorriso.err || { cat xorriso.err; fail "xorriso $name"; }
}
# resign NAME: the signatures of tree/NAME made again over its MANIFEST.
resign() {
	for f in "$SIGNER1_FPR" "$SIGNER2_FPR"; do
		rm -f "tree/$1/AIRLOCK/SIGNATURES/$f.sig"
		"$AIRLOCK_HARNESS/gpgkeys.sh" sign keys detached "$f" "tree/$1/AIRLOCK/MANIFEST" \
			"tree/$1/AIRLOCK/SIGNATURES/$f.sig"
	done
}
# patch IMAGE OLD NEW: replace bytes in an image (python escapes), once.
patch() {
	python3 - "$@" <<'EOF'
import sys
path, old, new = sys.argv[1], sys.argv[2].encode().decode('unicode_escape').encode('latin-1'), \
	sys.argv[3].encode().decode('unicode_escape').encode('latin-1')
b = open(path, 'rb').read()
if b.count(old) < 1:
	sys.exit("pattern not found: %r" % old)
b = b.replace(old, new)
open(path, 'wb').write(b)
EOF
}

# --- a feed lands: there is a last sequence (10) for channel nvd -----------------
"$W" --source "$(pg_conninfo low)" --schema feeds --channel nvd \
	--signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --gnupghome "$S/keys/signer" \
	--workdir "$S/work" --state-dir "$S/state" --custody-log "$S/low.log" --quiet \
	--sequence 10 --image "$S/out/good.iso" >/dev/null
import --image "$S/out/good.iso" >/dev/null 2>err.txt || { cat err.txt; fail "the good bundle was not imported"; }
live=$(live_sum)
[ -n "$live" ] || fail "no live checksum"

# A forged bundle that nothing is wrong with verifies (so that each refusal
# below is the attack's), and so does the same tree rebuilt by xorriso.
forge valid
import --image "$S/out/valid.iso" --verify-only >/dev/null 2>err.txt || { cat err.txt; fail "a valid forged bundle is refused"; }
unpack plain out/valid.iso
rebuild plain 20
import --image "$S/out/plain.iso" --verify-only >/dev/null 2>err.txt || { cat err.txt; fail "a valid bundle rebuilt by xorriso is refused"; }

# --- integrity ----------------------------------------------------------------
# 1. one byte flipped in a payload chunk.
forge flip --attack flip-chunk-byte
refused 65 checksum.mismatch "$S/out/flip.iso"
# 2. a chunk one byte shorter, one byte longer.
forge short --attack chunk-short
refused 65 checksum.size_mismatch "$S/out/short.iso"
forge long --attack chunk-long
refused 65 checksum.size_mismatch "$S/out/long.iso"
# 3. a file the manifest does not list.
forge extra --attack extra-file
refused 65 bundle.file_extra "$S/out/extra.iso"
# 4. a listed file missing.
forge missing --attack missing-file
refused 65 bundle.file_missing "$S/out/missing.iso"
# 5. one byte of MANIFEST changed after signing: no signature holds.
forge mbyte --attack manifest-byte
refused 65 signature.threshold "$S/out/mbyte.iso"
verdict signature.bad

# --- signatures and trust ---------------------------------------------------------
# 6. a key not in the keyring (pinned all the same).
forge unknown --signer "$UNKNOWN_FPR" --signer "$SIGNER1_FPR"
refused 65 signature.threshold "$S/out/unknown.iso" --trust "$UNKNOWN_FPR"
verdict signature.unknown_key
# 7. a pinned key revoked since.
forge revoked --signer "$REVOKED_FPR" --signer "$SIGNER1_FPR"
refused 65 signature.threshold "$S/out/revoked.iso" --trust "$REVOKED_FPR"
verdict signature.revoked
# 8. an expired key (signed while it was valid), an expired signature.
forge expkey --attack sign-in-2020 --signer "$EXPIRED_FPR" --signer "$SIGNER1_FPR"
refused 65 signature.threshold "$S/out/expkey.iso" --trust "$EXPIRED_FPR"
verdict signature.key_expired
forge expsig --attack expired-sig
refused 65 signature.threshold "$S/out/expsig.iso"
verdict signature.expired
# 9. a key in the keyring, not pinned.
forge untrusted --signer "$UNTRUSTED_FPR" --signer "$SIGNER1_FPR"
refused 65 signature.threshold "$S/out/untrusted.iso"
verdict signature.untrusted
# 10. a subkey that may not sign.
forge encronly --signer "$ENCRONLY_FPR" --signer "$SIGNER1_FPR"
refused 65 signature.threshold "$S/out/encronly.iso" --trust "$ENCRONLY_FPR"
verdict signature.wrong_usage
# 11. SHA-1.
forge sha1 --attack sha1
refused 65 signature.threshold "$S/out/sha1.iso"
verdict signature.weak_hash
# 12. no signature file, an empty one, garbage.
forge nosig --attack no-sig
refused 65 signature.none "$S/out/nosig.iso"
forge emptysig --attack empty-sig
refused 65 signature.threshold "$S/out/emptysig.iso"
verdict signature.malformed
forge garbage --attack garbage-sig
refused 65 signature.threshold "$S/out/garbage.iso"
verdict signature.malformed
# 13. an inline-signed message carrying other content.
forge inline --attack inline-sig
refused 65 signature.threshold "$S/out/inline.iso"
verdict signature.malformed
# 14. threshold 2: one key's signature twice; two subkeys of one primary.
forge twice --attack sig-twice-same-key --signer "$SIGNER1_FPR"
refused 65 signature.threshold "$S/out/twice.iso"
verdict signature.duplicate
forge subkeys --signer "$SIGNER3_SUBKEY_FPR" --signer "$SIGNER3_SUBKEY2_FPR"
refused 65 signature.threshold "$S/out/subkeys.iso" --trust "$SIGNER3_FPR"
verdict signature.duplicate
# 15. three signatures, one garbage: two still count (verified), but not three.
forge onebad --attack garbage-sig --signer "$SIGNER1_FPR" --signer "$SIGNER2_FPR" --signer "$SIGNER3_FPR"
import --image "$S/out/onebad.iso" --trust "$SIGNER3_FPR" --verify-only --json > vo.json 2>err.txt ||
	{ cat err.txt; fail "two good signatures of three do not reach threshold 2"; }
jq -e '.ok == true and (.signers | length) == 2' vo.json >/dev/null || { cat vo.json; fail "15: JSON"; }
THRESHOLD=3
refused 65 signature.threshold "$S/out/onebad.iso" --trust "$SIGNER3_FPR"
THRESHOLD=2
verdict signature.malformed
# 16. clearsigned, armored; a key block in place of a signature.
forge clear --attack clearsigned
refused 65 signature.threshold "$S/out/clear.iso"
verdict signature.malformed
forge armored --attack armored
refused 65 signature.threshold "$S/out/armored.iso"
verdict signature.malformed
unpack keyblock out/valid.iso
"$AIRLOCK_HARNESS/gpgkeys.sh" sign keys keyblock "$SIGNER1_FPR" /dev/null \
	"tree/keyblock/AIRLOCK/SIGNATURES/$SIGNER1_FPR.sig.new"
mv "tree/keyblock/AIRLOCK/SIGNATURES/$SIGNER1_FPR.sig.new" "tree/keyblock/AIRLOCK/SIGNATURES/$SIGNER1_FPR.sig"
rebuild keyblock 20
refused 65 signature.threshold "$S/out/keyblock.iso"
verdict signature.malformed
# 17. the keyring missing, writable by others, owned by another user:
# refused before verify reads anything (configuration error); the copy
# already made is kept for review, as a refused bundle's is.
cp -a keys/keyring keyring-open
chmod 0777 keyring-open
cp -a keys/keyring keyring-other
chown -R nobody keyring-other
for KEYRING in "$S/no-such-keyring" "$S/keyring-open" "$S/keyring-other"; do
	refused 78 signature.keyring "$S/out/valid.iso"
done
KEYRING=$S/keys/keyring

# --- policy (the last imported sequence of nvd is 10) -----------------------------
# 18. older; 19. the same bundle again; 20. sequence 10 with other content.
forge older --sequence 5
refused 65 policy.rollback "$S/out/older.iso"
refused 65 policy.replay "$S/out/good.iso"
forge equivocal --sequence 10
refused 65 policy.equivocation "$S/out/equivocal.iso"
grep -q 'flagged for the auditor' refused.err || { cat refused.err; fail "20: not flagged for the auditor"; }
# 21. past Valid-Until.
forge expired --created $((NOW - 30 * 86400)) --valid-for 86400
refused 65 policy.expired "$S/out/expired.iso"
# 22. created in the future; the station clock earlier than the newest
# bundle accepted (its Created moved an hour ahead).
forge future --created $((NOW + 3600))
refused 65 policy.future "$S/out/future.iso"
pg_psql high -c "UPDATE airlock.imports SET created = created + interval '1 day' WHERE sequence = 10" >/dev/null
live=$(live_sum)
refused 65 policy.clock "$S/out/valid.iso"
pg_psql high -c "UPDATE airlock.imports SET created = created - interval '1 day' WHERE sequence = 10" >/dev/null
live=$(live_sum)
# 23. a channel not accepted; an unknown Format (signed all the same).
forge other --channel other
refused 65 policy.channel "$S/out/other.iso"
unpack format out/valid.iso
sed -i 's|^Format: airlock-bundle/1$|Format: airlock-bundle/9|' tree/format/AIRLOCK/MANIFEST
grep -q '^Format: airlock-bundle/9$' tree/format/AIRLOCK/MANIFEST || fail "23: no Format line to change"
resign format
rebuild format 20
refused 65 manifest.format_unknown "$S/out/format.iso"
# 24. a signed media serial while the policy requires a match (an image
# has no serial at all).
forge serial --media-serial 4C530001230101112233
refused 65 policy.media_serial "$S/out/serial.iso" --require-media-serial

# --- volume and archive parsing ------------------------------------------------
# 25. Rock Ridge names with "..", "/", "//", NUL and control characters,
# written over the name of payload/000001.chunk (12 bytes each).
n=0
for name in '../../etc/pw' '/etc/passwd1' 'x//000001.ch' '00000\x00.chunk' '0000\x01\x1b.chunk' '0\x7f0001.chunk'; do
	n=$((n + 1))
	cp out/plain.iso "out/name$n.iso"
	patch "out/name$n.iso" 'NM\x11\x01\x00000001.chunk' "NM\\x11\\x01\\x00$name"
	refused 65 volume.entry_name "$S/out/name$n.iso"
done
# 26. a symbolic link, a hard link, a FIFO and a device node.
forge symlink --attack symlink
refused 65 volume.entry_type "$S/out/symlink.iso"
unpack fifo out/valid.iso
rm tree/fifo/AIRLOCK/payload/000001.chunk
mkfifo tree/fifo/AIRLOCK/payload/000001.chunk
rebuild fifo 20
refused 65 volume.entry_type "$S/out/fifo.iso"
unpack dev out/valid.iso
rm tree/dev/AIRLOCK/payload/000001.chunk
mknod tree/dev/AIRLOCK/payload/000001.chunk c 1 3
rebuild dev 20
refused 65 volume.entry_type "$S/out/dev.iso"
unpack hard out/valid.iso
rm tree/hard/AIRLOCK/payload/000001.chunk
ln tree/hard/AIRLOCK/payload/000000.chunk tree/hard/AIRLOCK/payload/000001.chunk
rebuild hard 20 --hardlinks
refused 65 volume.entry_type "$S/out/hard.iso"
# 27. a duplicate path (the Rock Ridge name of chunk 1 made chunk 0's).
cp out/plain.iso out/dup.iso
patch out/dup.iso 'NM\x11\x01\x00000001.chunk' 'NM\x11\x01\x00000000.chunk'
refused 65 volume.duplicate "$S/out/dup.iso"
# 27. Joliet names beside the Rock Ridge ones (which could disagree): the
# importer reads Rock Ridge only and refuses a volume with a Joliet tree
# at its first read, before any copy is made.
unpack joliet out/valid.iso
rebuild joliet 20 -J
KEPT=0 refused 65 volume.malformed "$S/out/joliet.iso"
grep -q 'Joliet' refused.err || { cat refused.err; fail "27: the Joliet tree is not named"; }
evidence out/joliet.iso "$(stat -c %s out/joliet.iso)"
# 28. a MANIFEST with a duplicate field, a line over 4096 bytes, over 4 MiB
# in all: each signed validly (both signatures count), so that the strict
# parse after the signatures is what refuses it.
forge mdup --attack manifest-dup-field
refused 65 manifest.field_duplicate "$S/out/mdup.iso"
grep -q 'duplicate field Courier (first on line' refused.err || { cat refused.err; fail "28: the field is not named"; }
jq -e '(.signers | length) == 2' refused.json >/dev/null || { cat refused.json; fail "28: the signatures did not count"; }
grep -q '"valid_signers":2' entry.log || { cat entry.log; fail "28: the signatures did not count"; }
forge mlong --attack manifest-long-line
refused 65 manifest.line_too_long "$S/out/mlong.iso"
jq -e '(.signers | length) == 2' refused.json >/dev/null || { cat refused.json; fail "28: the signatures did not count"; }
# Over MANIFEST_MAX_BYTES the listing refuses it before a byte is read.
forge mbig --attack manifest-too-large
refused 65 manifest.too_large "$S/out/mbig.iso"
grep -q 'MANIFEST' refused.err || { cat refused.err; fail "28: MANIFEST is not named"; }
# 29. names that are not valid UTF-8.
n=0
for name in '00000\xff.chunk' '0000\xc3\x28.chunk' '0000\xe2\x82.chunk' '\xc0\xaf0001.chunk'; do
	n=$((n + 1))
	cp out/plain.iso "out/utf$n.iso"
	patch "out/utf$n.iso" 'NM\x11\x01\x00000001.chunk' "NM\\x11\\x01\\x00$name"
	refused 65 volume.entry_name "$S/out/utf$n.iso"
done
# 30. a file declaring a huge size (ISO 9660 record of chunk 0: 4 GiB - 16).
cp out/valid.iso out/huge.iso
python3 - out/huge.iso <<'EOF'
import sys, struct
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
name = b'000000.CHUNK;1'
i = b.find(bytes([len(name)]) + name)
if i < 32:
	sys.exit("no ISO 9660 record for chunk 0")
rec = i - 32
b[rec + 10:rec + 18] = struct.pack('<I', 0xFFFFFFF0) + struct.pack('>I', 0xFFFFFFF0)
open(p, 'wb').write(bytes(b))
EOF
# libarchive finds the extent running past the volume before any cap.
refused 65 volume.malformed "$S/out/huge.iso"
grep -q 'extent' refused.err || { cat refused.err; fail "30: the extent is not named"; }
# A volume declaring more than the quarantine cap: stopped before a byte is
# copied.
KEPT=0 refused 65 volume.too_large "$S/out/valid.iso" --max-bytes 1048576
n=$(stat -c %s out/valid.iso)
[ "$n" -le 1048576 ] || n=65536         # only the descriptors of a larger file
evidence out/valid.iso "$n"
# 30. a zisofs bomb: chunk 1 zisofs-compressed by xorriso, its Rock Ridge
# ZF entry then declaring 4 GiB - 16 (over the chunk cap) or 2 GiB - 16
# (under it, not what MANIFEST says): refused before anything inflates.
unpack zisofs out/valid.iso
rm -f out/zisofs.iso
xorriso -outdev out/zisofs.iso -volid AIRLOCK_20 -rockridge on -joliet off \
	-zisofs level=9:block_size=32k -map tree/zisofs / -set_filter_r --zisofs / -- \
	2>xorriso.err || { cat xorriso.err; fail "xorriso zisofs"; }
for size in fffffff0 7ffffff0; do
	cp out/zisofs.iso "out/zbomb-$size.iso"
	python3 - "out/zbomb-$size.iso" "$size" <<'EOF'
import sys, struct
p, v = sys.argv[1], int(sys.argv[2], 16)
b = bytearray(open(p, 'rb').read())
# ZF, length 16, version 1, "pz", header size 4, log2 block 15, size 4096
i = b.find(bytes.fromhex('5a461001707a040f') + struct.pack('<I', 4096))
if i < 0:
	sys.exit("no zisofs ZF entry for chunk 1")
b[i + 8:i + 16] = struct.pack('<I', v) + struct.pack('>I', v)
open(p, 'wb').write(bytes(b))
EOF
done
refused 65 volume.too_large "$S/out/zbomb-fffffff0.iso"
refused 65 checksum.size_mismatch "$S/out/zbomb-7ffffff0.iso"
# 30. zstd bombs inside a validly signed payload (the chunks' sizes and
# hashes are in the signed MANIFEST, which counts 2 rows, or 1 or 0 for a
# line that never ends): stopped at the cap, nothing filled.
# A segment's tar header declaring 8 GiB - 1, and catalog.json's: refused at
# the header.
forge bomb-size --attack bomb-member-size
mark
refused 65 payload.too_large "$S/out/bomb-size.iso"
grep -q 'segment of 8589934591 bytes' refused.err || { cat refused.err; fail "30: the size is not named"; }
bounded bomb-member-size out/bomb-size.iso
forge bomb-catalog --attack bomb-catalog
mark
refused 65 payload.too_large "$S/out/bomb-catalog.iso"
bounded bomb-catalog out/bomb-catalog.iso
# 1 GiB of rows in 128 full segments (a 200 KiB image): the COPY stops at
# the first buffer over MANIFEST's count, not at the end of the table.
forge bomb-rows --attack bomb-rows
mark
refused 65 restore.row_count "$S/out/bomb-rows.iso"
grep -q 'more than the 2 rows MANIFEST says' refused.err || { cat refused.err; fail "30: the count is not named"; }
bounded bomb-rows out/bomb-rows.iso
# One line of 1 GiB that never ends, in a table MANIFEST counts 0 or 1
# rows. A row counts from its first byte: with 0 rows the COPY stops
# there; with 1 the decompressed cap stops it (64 x --max-bytes: 64 MiB
# here), and without that cap the importer's own limit on one row (1 GiB
# - 1, PostgreSQL's) does.
for rows in 0 1; do
	forge "bomb-line$rows" --attack bomb-line --rows "$rows"
	mark
	case $rows in 0) reason=restore.row_count ;; *) reason=payload.too_large ;; esac
	refused 65 "$reason" "$S/out/bomb-line$rows.iso" --max-bytes 1M
	bounded "bomb-line (rows $rows)" "out/bomb-line$rows.iso"
done
mark
refused 65 restore.data "$S/out/bomb-line1.iso"
bounded "bomb-line (rows 1, no cap)" out/bomb-line1.iso
# 31. a hundred thousand entries (refused at the first name that is not
# the bundle's, without reading the rest); a 3.8 KiB path (xorriso makes
# none over 4 KiB).
unpack many out/valid.iso
# (400 directories of 250: xorriso is quadratic in one directory's size)
(cd tree/many/AIRLOCK/payload && for d in $(seq 1 400); do
	mkdir "m$d" && (cd "m$d" && seq -f '%03.0f.chunk' 1 250 | xargs touch); done)
rebuild many 20
refused 65 volume.entry_name "$S/out/many.iso"
# ... and, under names section 2 allows, more entries than the cap.
unpack count out/valid.iso
(cd tree/count/AIRLOCK/payload && seq -f '%06.0f.chunk' 2 2999 | xargs touch)
rebuild count 20
printf '[import]\nmax-files = 1000\n' > small.conf
refused 65 volume.too_many_entries "$S/out/count.iso" --config "$S/small.conf"
unpack deep out/valid.iso
python3 -c 'import os
os.chdir("tree/deep/AIRLOCK/payload")
for i in range(15):
	d = "d%03d" % i + "0" * 246
	os.mkdir(d)
	os.chdir(d)
open("000000.chunk", "w").write("x")'
rebuild deep 20
refused 65 volume.entry_name "$S/out/deep.iso"
grep -q 'a path of' refused.err || { cat refused.err; fail "31: the path length is not named"; }
# 32. malformed images: a Rock Ridge continuation (SUSP CE) that continues
# into itself, a directory whose extent is the root's (a loop), a file's
# and a directory's extent beyond the end of the volume: refused, no hang
# (every import runs under timeout), no crash.
for attack in rr-ce-loop dir-loop extent-past-end dir-extent-past-end; do
	forge "$attack" --attack "$attack"
	refused 65 volume.malformed "$S/out/$attack.iso"
	case $attack in
	rr-ce-loop) grep -q '"CE"' refused.err ;;
	dir-loop) grep -q 'loop' refused.err ;;
	*) grep -q 'extent' refused.err ;;
	esac || { cat refused.err; fail "32 $attack: the fault is not named"; }
done
# 33. not an ISO at all: random bytes, FAT, ext4: left alone (66), nothing copied.
head -c 4194304 /dev/urandom > out/random.img
truncate -s 8M out/fat.img
mkfs.vfat out/fat.img >/dev/null 2>&1 || mkfs.fat out/fat.img >/dev/null
truncate -s 8M out/ext4.img
mkfs.ext4 -q -F -L AIRLOCK_20 out/ext4.img
for img in random fat ext4; do
	before=$(wc -l < high.log)
	set +e
	import --image "$S/out/$img.img" --json > ign.json 2> ign.err
	rc=$?
	set -e
	[ "$rc" = 66 ] || { cat ign.err; fail "33 $img: expected 66, got $rc"; }
	jq -e '.ok == false and .reason == "media.not_airlock"' ign.json >/dev/null || { cat ign.json; fail "33 $img: JSON"; }
	tail -n +"$((before + 1))" high.log | grep -q '"event":"media.ignored"' || fail "33 $img: not logged as ignored"
	[ -z "$(find quarantine -mindepth 1 -maxdepth 1 -name 'import-*')" ] || fail "33 $img: copied into quarantine"
	[ "$(live_sum)" = "$live" ] || fail "33 $img: the live feed changed"
	echo "ok: media.not_airlock (66) $img"
done

# --- media ----------------------------------------------------------------------
# 35. an image shorter than its volume claims: refused before any copy.
cp out/valid.iso out/truncated.iso
truncate -s $(($(stat -c %s out/truncated.iso) - 4096)) out/truncated.iso
KEPT=0 refused 65 volume.truncated "$S/out/truncated.iso"
evidence out/truncated.iso "$(stat -c %s out/truncated.iso)"

# The payload the bombs above were built on restores (so that each refusal
# is the bomb's): two rows in feeds.advisories, sequence 21.
forge payload --attack payload-ok --sequence 21
import --image "$S/out/payload.iso" >/dev/null 2>err.txt || { cat err.txt; fail "30: the forged payload does not restore"; }
[ "$(pg_psql high -c "SELECT string_agg(line, ',' ORDER BY line) FROM feeds.advisories")" = "row one,row two" ] ||
	fail "30: the forged payload restored other rows"
[ "$(staging_left)" = 0 ] || fail "30: a staging schema was left"

echo "import-hostile.sh: all cases passed"
