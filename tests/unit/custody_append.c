/* al-custody-append: append custody entries from the command line, for the
 * shell tests of airlock-audit. Prints "SEQ HASH" for each entry. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "alerr.h"
#include "custody.h"
#include "digest.h"
#include "log.h"
#include "manifest.h"

#define MAX_DETAILS 16

static int hex32(const char *s, uint8_t out[32])
{
	return digest_from_hex(out, s, strlen(s));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "log", required_argument, NULL, 'l' },
		{ "side", required_argument, NULL, 's' },
		{ "event", required_argument, NULL, 'e' },
		{ "outcome", required_argument, NULL, 'o' },
		{ "reason", required_argument, NULL, 'r' },
		{ "run", required_argument, NULL, 'R' },
		{ "channel", required_argument, NULL, 'c' },
		{ "sequence", required_argument, NULL, 'q' },
		{ "bundle-id", required_argument, NULL, 'b' },
		{ "manifest-sha256", required_argument, NULL, 'm' },
		{ "image-sha256", required_argument, NULL, 'i' },
		{ "verified", no_argument, NULL, 'v' },
		{ "devnode", required_argument, NULL, 'd' },
		{ "serial", required_argument, NULL, 'S' },
		{ "vendor", required_argument, NULL, 'V' },
		{ "model", required_argument, NULL, 'M' },
		{ "size", required_argument, NULL, 'z' },
		{ "courier", required_argument, NULL, 'C' },
		{ "detail", required_argument, NULL, 'D' },
		{ "signed-host", required_argument, NULL, 'H' },
		{ "signed-courier", required_argument, NULL, 'K' },
		{ "signed-media-serial", required_argument, NULL, 'N' },
		{ "signer", required_argument, NULL, 'G' },
		{ "count", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *log = NULL, *event = "media.inserted", *reason = NULL, *run = NULL;
	const char *courier = NULL, *details[MAX_DETAILS];
	const char *signed_host = NULL, *signed_courier = NULL, *signed_serial = NULL;
	const char *signers[8];
	enum custody_side side = CUSTODY_SIDE_HIGH;
	enum custody_outcome outcome = CUSTODY_INFO;
	struct custody_bundle b = { 0 };
	struct custody_device d = { 0 };
	uint8_t msha[32], isha[32];
	int has_bundle = 0, has_device = 0, c, status = EX_OK;
	size_t n_details = 0, n_signers = 0, i;
	unsigned long count = 1, k;
	struct manifest *m = NULL;
	struct alerr e;

	log_init("al-custody-append", LOG_TO_STDERR, LOG_LEVEL_NOTICE);
	custody_set_syslog(0);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': log = optarg; break;
		case 's': side = strcmp(optarg, "low") == 0 ? CUSTODY_SIDE_LOW : CUSTODY_SIDE_HIGH; break;
		case 'e': event = optarg; break;
		case 'o':
			outcome = strcmp(optarg, "ok") == 0 ? CUSTODY_OK :
			          strcmp(optarg, "refused") == 0 ? CUSTODY_REFUSED :
			          strcmp(optarg, "error") == 0 ? CUSTODY_ERROR : CUSTODY_INFO;
			break;
		case 'r': reason = optarg; break;
		case 'R': run = optarg; break;
		case 'c': b.channel = optarg; has_bundle = 1; break;
		case 'q': b.sequence = strtoull(optarg, NULL, 10); b.has_sequence = 1; has_bundle = 1; break;
		case 'b': b.bundle_id = optarg; has_bundle = 1; break;
		case 'm':
			if (hex32(optarg, msha) < 0)
				return EX_USAGE;
			b.manifest_sha256 = msha;
			has_bundle = 1;
			break;
		case 'i':
			if (hex32(optarg, isha) < 0)
				return EX_USAGE;
			b.image_sha256 = isha;
			has_bundle = 1;
			break;
		case 'v': b.verified = 1; break;
		case 'd': d.devnode = optarg; has_device = 1; break;
		case 'S': d.serial = optarg; has_device = 1; break;
		case 'V': d.vendor = optarg; has_device = 1; break;
		case 'M': d.model = optarg; has_device = 1; break;
		case 'z': d.size = strtoull(optarg, NULL, 10); d.has_size = 1; has_device = 1; break;
		case 'C': courier = optarg; break;
		case 'D':
			if (n_details == MAX_DETAILS)
				return EX_USAGE;
			details[n_details++] = optarg;
			break;
		case 'H': signed_host = optarg; break;
		case 'K': signed_courier = optarg; break;
		case 'N': signed_serial = optarg; break;
		case 'G':
			if (n_signers == 8)
				return EX_USAGE;
			signers[n_signers++] = optarg;
			break;
		case 'n': count = strtoul(optarg, NULL, 10); break;
		default:
			return EX_USAGE;
		}
	}
	if (!log || optind != argc)
		return EX_USAGE;
	alerr_clear(&e);
	if (signed_host) {
		m = manifest_new();
		if (!m || manifest_set_text(m, MANIFEST_F_WRITER_HOST, signed_host, &e) < 0 ||
		    (signed_courier && manifest_set_text(m, MANIFEST_F_COURIER, signed_courier, &e) < 0) ||
		    (signed_serial && manifest_set_text(m, MANIFEST_F_MEDIA_SERIAL, signed_serial, &e) < 0) ||
		    manifest_set_text(m, MANIFEST_F_SNAPSHOT, "00000003-0000001B-1", &e) < 0 ||
		    manifest_set_created(m, INT64_C(1714557600), &e) < 0 ||
		    manifest_set_valid_until(m, INT64_C(1715767200), &e) < 0) {
			log_alerr(&e);
			return EX_SOFTWARE;
		}
		for (i = 0; i < n_signers; i++) {
			if (manifest_add_signer(m, signers[i], &e) < 0) {
				log_alerr(&e);
				return EX_SOFTWARE;
			}
		}
	}
	for (k = 0; k < count && status == EX_OK; k++) {
		struct custody_entry *en;
		char hash[CUSTODY_HASH_HEX_LEN + 1];
		uint64_t seq;

		if (custody_entry_new(&en, side, event, outcome, &e) < 0) {
			log_alerr(&e);
			status = alerr_exit_code(e.cls);
			break;
		}
		if (reason)
			custody_entry_set_reason(en, reason);
		if (run)
			custody_entry_set_run(en, run);
		if (courier)
			custody_entry_set_courier(en, courier);
		if (has_bundle)
			custody_entry_set_bundle(en, &b);
		if (has_device)
			custody_entry_set_device(en, &d);
		if (m)
			custody_entry_set_signed(en, m);
		for (i = 0; i < n_details; i++) {
			char key[64];
			const char *eqs = strchr(details[i], '=');
			size_t kl = eqs ? (size_t)(eqs - details[i]) : 0;

			if (!eqs || kl >= sizeof(key))
				return EX_USAGE;
			memcpy(key, details[i], kl);
			key[kl] = '\0';
			custody_entry_add_detail_str(en, key, eqs + 1);
		}
		if (custody_append(log, en, &seq, hash, &e) < 0) {
			log_alerr(&e);
			status = alerr_exit_code(e.cls);
		} else {
			printf("%llu %s\n", (unsigned long long)seq, hash);
		}
		custody_entry_free(en);
	}
	manifest_free(m);
	if (fclose(stdout) != 0 && status == EX_OK)
		status = EX_IOERR;
	return status;
}
