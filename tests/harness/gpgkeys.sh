#!/bin/sh
# Throwaway OpenPGP keys and signature fixtures for airlock's tests.
#
#   gpgkeys.sh DIR                         generate the keys into DIR
#   gpgkeys.sh sign DIR KIND FPR IN OUT    make one fixture signature
#   gpgkeys.sh kill DIR                    stop the gpg-agents of DIR
#
# DIR (created; refused if it exists and is not empty) receives:
#   signer/   GnuPG home with the secret keys (the low side);
#   keyring/  the importer's GnuPG home: public keys of signer1, signer2,
#             signer3, revoked (with its revocation), expired, untrusted
#             and encronly; never "unknown";
#   keys.env  NAME_FPR=<primary fingerprint> lines, sourceable by sh,
#             written last (its presence means the keys are complete).
#
# The keys (ed25519 unless said otherwise, no passphrase, created on
# 2020-01-01 with --faked-system-time so that fixtures can be dated
# before their expiry or revocation):
#   signer1, signer2  sign+certify primaries, no expiry.
#   signer3           certify-only primary with two signing subkeys:
#                     SIGNER3_SUBKEY2_FPR (older) and SIGNER3_SUBKEY_FPR
#                     (newer, the one gpg picks for "-u SIGNER3_FPR").
#   revoked           in keyring/ with a "key compromised" revocation
#                     dated 2023-01-01, imported after the public key.
#                     signer/ never sees it, so it can still sign there.
#   expired           created 2020-01-01, expired 2020-12-31.
#   untrusted         in keyring/, meant to stay unpinned.
#   unknown           only in signer/.
#   encronly          certify-only primary with one RSA-3072 subkey
#                     (ENCRONLY_SUBKEY_FPR). In signer/ that subkey may
#                     sign. keyring/ gets a copy whose binding grants it
#                     encryption only: the secret key is copied into a
#                     scratch home, "gpg --edit-key ... key 1, change-usage"
#                     (GnuPG 2.2 toggles subkey usage there) turns the
#                     usage from S into E with a newer binding signature,
#                     and that copy is exported with export-minimal (only
#                     the newest binding) into keyring/. The subkey is RSA
#                     because only RSA may hold either usage. A signature
#                     that signer/ makes with it is thus made by a subkey
#                     that is not sign-capable for the verifier.
#
# Fixture kinds for "sign" (FPR is used exactly, as "FPR!", so a subkey
# fingerprint selects that subkey):
#   detached     binary detached signature, SHA-256
#   sha1         binary detached signature, SHA-1
#   armor        ASCII-armored detached signature, SHA-256
#   clearsign    a clearsigned copy of IN
#   inline       an inline-signed message (gpg --sign) carrying IN
#   expired-key  detached, made on 2020-06-01, while "expired" was valid
#   expired-sig  detached, made on 2020-06-01 with a one-day expiry
#   before-revocation  detached, made on 2022-01-01, before the revocation
#   keyblock     the public key block of FPR (IN is ignored)
#
# Quiet on success; on failure the gpg output is shown and no agent is
# left running. From a shell test:
#   "$AIRLOCK_HARNESS/gpgkeys.sh" keys && . keys/keys.env
#   trap '"$AIRLOCK_HARNESS/gpgkeys.sh" kill keys' EXIT
set -eu

T0=20200101T000000
T0_EPOCH=1577836800
T_EXPIRED_SIG=20200601T000000
T_BEFORE_REVOCATION=20220101T000000
T_REVOCATION=20230101T000000

me=gpgkeys.sh
log=

die() {
	echo "$me: $*" >&2
	if [ -n "$log" ] && [ -s "$log" ]; then
		sed 's/^/  /' "$log" >&2
	fi
	exit 1
}

kill_agents() {  # kill_agents HOME...
	for h in "$@"; do
		if [ -d "$h" ]; then
			gpgconf --homedir "$h" --kill all >/dev/null 2>&1 || :
		fi
	done
}

# g HOME ARGS...: one gpg run, unattended, output into the log.
g() {
	_home=$1
	shift
	gpg --homedir "$_home" --batch --no-tty --pinentry-mode loopback \
		--passphrase '' --no-auto-check-trustdb "$@" >>"$log" 2>&1 ||
		die "gpg $* failed"
}

# fpr HOME PATTERN [N]: the Nth fingerprint (1: primary) listed for PATTERN.
fpr() {
	gpg --homedir "$1" --batch --no-tty --with-colons --list-keys -- "$2" \
		2>>"$log" | awk -F: -v n="${3:-1}" '/^fpr:/ { if (++i == n) { print $10; exit } }'
}

genkey() {  # genkey NAME ALGO USAGE EXPIRY
	g "$signer" --faked-system-time "$T0!" \
		--quick-gen-key "$1 <$1@airlock.test>" "$2" "$3" "$4"
	_f=$(fpr "$signer" "<$1@airlock.test>")
	[ ${#_f} -eq 40 ] || die "no fingerprint for $1"
	echo "$_f"
}

addkey() {  # addkey FPR ALGO USAGE SECONDS_AFTER_T0
	g "$signer" --faked-system-time "$((T0_EPOCH + $4))!" \
		--quick-add-key "$1" "$2" "$3" never
}

generate() {
	dir=$1
	if [ -e "$dir" ]; then
		[ -d "$dir" ] || die "$dir exists and is not a directory"
		[ -z "$(ls -A "$dir")" ] || die "$dir exists and is not empty"
	else
		mkdir -p "$dir" || die "cannot create $dir"
	fi
	dir=$(cd "$dir" && pwd)
	case $dir in
	*\'*) die "$dir: a single quote cannot go into keys.env" ;;
	esac
	signer=$dir/signer
	keyring=$dir/keyring
	tmp=$dir/tmp-encronly
	log=$dir/gpgkeys.log
	trap 'kill_agents "$signer" "$keyring" "$tmp"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	: >"$log"
	mkdir -m 0700 "$signer" "$keyring" "$tmp"

	signer1=$(genkey signer1 ed25519 sign,cert never)
	signer2=$(genkey signer2 ed25519 sign,cert never)
	signer3=$(genkey signer3 ed25519 cert never)
	addkey "$signer3" ed25519 sign 60
	addkey "$signer3" ed25519 sign 120
	signer3_sub2=$(fpr "$signer" "$signer3" 2)
	signer3_sub=$(fpr "$signer" "$signer3" 3)
	revoked=$(genkey revoked ed25519 sign,cert never)
	expired=$(genkey expired ed25519 sign,cert 1y)
	untrusted=$(genkey untrusted ed25519 sign,cert never)
	unknown=$(genkey unknown ed25519 sign,cert never)
	encronly=$(genkey encronly ed25519 cert never)
	addkey "$encronly" rsa3072 sign 60
	encronly_sub=$(fpr "$signer" "$encronly" 2)

	# The verifier's copy of encronly: same key material, newer binding
	# signature granting the subkey encryption only.
	g "$signer" -o "$tmp/encronly.sec" --export-secret-keys "$encronly"
	g "$tmp" --import "$tmp/encronly.sec"
	printf 'key 1\nchange-usage\nS\nE\nQ\nsave\n' |
		gpg --homedir "$tmp" --batch --no-tty --pinentry-mode loopback \
			--passphrase '' --command-fd 0 --edit-key "$encronly" \
			>>"$log" 2>&1 || die "change-usage on encronly failed"
	gpg --homedir "$tmp" --batch --with-colons --list-keys "$encronly" \
		2>>"$log" | awk -F: '$1 == "sub" && $12 == "e" { ok = 1 } END { exit !ok }' ||
		die "encronly subkey is not encrypt-only after change-usage"
	g "$tmp" -o "$tmp/encronly.pub" --export --export-options export-minimal "$encronly"

	g "$signer" -o "$dir/public.pgp" --export "$signer1" "$signer2" "$signer3" \
		"$revoked" "$expired" "$untrusted"
	g "$keyring" --import "$dir/public.pgp"
	g "$keyring" --import "$tmp/encronly.pub"

	# Revoke "revoked" only now, and only in the verifier's keyring.
	printf 'y\n1\nkey compromised (test fixture)\n\ny\n' |
		gpg --homedir "$signer" --no-tty --pinentry-mode loopback \
			--passphrase '' --command-fd 0 --faked-system-time "$T_REVOCATION!" \
			-o "$dir/revoked.rev" --gen-revoke "$revoked" \
			>>"$log" 2>&1 || die "gen-revoke failed"
	g "$keyring" --import "$dir/revoked.rev"

	gpgconf --homedir "$tmp" --kill all >/dev/null 2>&1 || :
	rm -rf "$tmp" "$dir/public.pgp"

	# Sanity: what the tests rely on.
	[ -z "$(fpr "$keyring" "$unknown")" ] || die "unknown leaked into keyring/"
	if gpg --homedir "$keyring" --batch --list-secret-keys 2>/dev/null | grep -q .; then
		die "secret keys in keyring/"
	fi
	gpg --homedir "$keyring" --batch --with-colons --list-keys "$revoked" \
		2>>"$log" | grep -q '^pub:r:' || die "revoked is not revoked in keyring/"
	gpg --homedir "$keyring" --batch --with-colons --list-keys "$expired" \
		2>>"$log" | grep -q '^pub:e:' || die "expired is not expired in keyring/"

	for f in "$signer1" "$signer2" "$signer3" "$signer3_sub" "$signer3_sub2" \
		"$revoked" "$expired" "$untrusted" "$unknown" "$encronly" "$encronly_sub"; do
		case $f in
		*[!0-9A-F]*|'') die "bad fingerprint '$f'" ;;
		esac
		[ ${#f} -eq 40 ] || die "bad fingerprint '$f'"
	done
	{
		echo "GPGKEYS_SIGNER_HOME='$signer'"
		echo "GPGKEYS_KEYRING_HOME='$keyring'"
		echo "SIGNER1_FPR=$signer1"
		echo "SIGNER2_FPR=$signer2"
		echo "SIGNER3_FPR=$signer3"
		echo "SIGNER3_SUBKEY_FPR=$signer3_sub"
		echo "SIGNER3_SUBKEY2_FPR=$signer3_sub2"
		echo "REVOKED_FPR=$revoked"
		echo "EXPIRED_FPR=$expired"
		echo "UNTRUSTED_FPR=$untrusted"
		echo "UNKNOWN_FPR=$unknown"
		echo "ENCRONLY_FPR=$encronly"
		echo "ENCRONLY_SUBKEY_FPR=$encronly_sub"
	} >"$dir/keys.env.tmp"
	mv "$dir/keys.env.tmp" "$dir/keys.env"
	rm -f "$log"
	log=
}

sign() {
	[ $# -eq 5 ] || die "usage: $me sign DIR KIND FPR IN OUT"
	dir=$1 kind=$2 key=$3 in=$4 out=$5
	signer=$dir/signer
	[ -d "$signer" ] || die "$signer: no such directory"
	log=$(mktemp "${TMPDIR:-/tmp}/gpgkeys.XXXXXX")
	trap 'rm -f "$log"' EXIT
	rm -f "$out"
	case $kind in
	detached)
		g "$signer" --digest-algo SHA256 -u "$key!" -o "$out" --detach-sign "$in" ;;
	sha1)
		g "$signer" --digest-algo SHA1 -u "$key!" -o "$out" --detach-sign "$in" ;;
	armor)
		g "$signer" --digest-algo SHA256 -u "$key!" -a -o "$out" --detach-sign "$in" ;;
	clearsign)
		g "$signer" --digest-algo SHA256 -u "$key!" -o "$out" --clearsign "$in" ;;
	inline)
		g "$signer" --digest-algo SHA256 -u "$key!" -o "$out" --sign "$in" ;;
	expired-key)
		g "$signer" --faked-system-time "$T_EXPIRED_SIG!" --digest-algo SHA256 \
			-u "$key!" -o "$out" --detach-sign "$in" ;;
	expired-sig)
		g "$signer" --faked-system-time "$T_EXPIRED_SIG!" --default-sig-expire 1d \
			--digest-algo SHA256 -u "$key!" -o "$out" --detach-sign "$in" ;;
	before-revocation)
		g "$signer" --faked-system-time "$T_BEFORE_REVOCATION!" --digest-algo SHA256 \
			-u "$key!" -o "$out" --detach-sign "$in" ;;
	keyblock)
		g "$signer" -o "$out" --export "$key" ;;
	*)
		die "unknown fixture kind: $kind" ;;
	esac
	[ -s "$out" ] || die "$kind: no output"
}

case ${1:-} in
sign)
	shift
	sign "$@" ;;
kill)
	[ $# -eq 2 ] || die "usage: $me kill DIR"
	kill_agents "$2/signer" "$2/keyring" "$2/tmp-encronly" ;;
''|-h|--help)
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2 ;;
*)
	[ $# -eq 1 ] || die "usage: $me DIR"
	generate "$1" ;;
esac
