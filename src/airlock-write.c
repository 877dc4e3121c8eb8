/* airlock-write: options in, write_run, receipt out. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "alerr.h"
#include "cli.h"
#include "conf.h"
#include "log.h"
#include "progress.h"
#include "write.h"

#define PROGNAME "airlock-write"

static void usage(FILE *f)
{
	fprintf(f,
"Usage: " PROGNAME " --source CONNINFO --schema NAME [--schema NAME ...]\n"
"                     --channel NAME --signer FPR [--signer FPR ...]\n"
"                     (--device DEV | --image FILE) [OPTIONS]\n"
"\n"
"Snapshot a PostgreSQL feeds database, pack it into a signed airlock bundle\n"
"and write it onto USB media (or an image file), then read it back.\n"
"\n"
"Source and bundle:\n"
"  -s, --source CONNINFO   libpq conninfo or URI of the feeds database\n"
"  -n, --schema NAME       schema to export (repeatable)\n"
"  -c, --channel NAME      feed channel name\n"
"  -S, --signer FPR        OpenPGP key to sign with (repeatable)\n"
"      --gnupghome DIR     GnuPG home holding the signing keys\n"
"      --sequence N        bundle sequence (default: one above the last written)\n"
"      --valid-for DUR     validity, e.g. 14d, 36h (default 14d)\n"
"      --courier NAME      who carries the media (recorded in the manifest)\n"
"  -j, --jobs N            parallel export connections (default 2)\n"
"      --chunk-size SIZE   payload chunk size, e.g. 256M\n"
"\n"
"Target:\n"
"  -d, --device DEV        whole USB disk to wipe and write (e.g. /dev/sdb)\n"
"  -i, --image FILE        write the volume into a new image file instead\n"
"  -y, --yes               do not ask to confirm the device's serial\n"
"      --force-device      accept a block device that is not removable USB\n"
"                          (never a mounted one or the system disk)\n"
"\n"
"Other:\n"
"      --config FILE       configuration file (default " SYSCONFDIR "/airlock/airlock.conf)\n"
"      --workdir DIR       where temporary files go (default /var/tmp)\n"
"      --state-dir DIR     low-side state (last sequence per channel)\n"
"      --custody-log FILE  custody log to append to\n"
"      --json              print the result as JSON on stdout\n"
"  -q, --quiet             no progress, warnings and errors only\n"
"  -v, --verbose           more detail on stderr\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n"
"\n"
"Exit status: 0 written and verified; 64 usage (also a schema holding objects\n"
"airlock cannot carry); 66 target not found; 69 database unavailable; 73\n"
"cannot create; 74 media I/O error; 75 interrupted or try again; 78\n"
"configuration error. See airlock-write(1).\n");
}

enum {
	OPT_GNUPGHOME = 256, OPT_SEQUENCE, OPT_VALID_FOR, OPT_COURIER,
	OPT_CHUNK_SIZE, OPT_FORCE_DEVICE, OPT_CONFIG, OPT_WORKDIR,
	OPT_STATE_DIR, OPT_CUSTODY_LOG, OPT_JSON,
};

static const struct option longopts[] = {
	{ "source", required_argument, NULL, 's' },
	{ "schema", required_argument, NULL, 'n' },
	{ "channel", required_argument, NULL, 'c' },
	{ "signer", required_argument, NULL, 'S' },
	{ "gnupghome", required_argument, NULL, OPT_GNUPGHOME },
	{ "sequence", required_argument, NULL, OPT_SEQUENCE },
	{ "valid-for", required_argument, NULL, OPT_VALID_FOR },
	{ "courier", required_argument, NULL, OPT_COURIER },
	{ "jobs", required_argument, NULL, 'j' },
	{ "chunk-size", required_argument, NULL, OPT_CHUNK_SIZE },
	{ "device", required_argument, NULL, 'd' },
	{ "image", required_argument, NULL, 'i' },
	{ "yes", no_argument, NULL, 'y' },
	{ "force-device", no_argument, NULL, OPT_FORCE_DEVICE },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "workdir", required_argument, NULL, OPT_WORKDIR },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "custody-log", required_argument, NULL, OPT_CUSTODY_LOG },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Options that map onto config keys: section, key. */
static const struct cli_config_opt config_opts[] = {
	{ 's', "write", "source", "--source" },
	{ 'n', "write", "schema", "--schema" },
	{ 'c', "write", "channel", "--channel" },
	{ 'S', "write", "signer", "--signer" },
	{ OPT_GNUPGHOME, "write", "gnupghome", "--gnupghome" },
	{ OPT_VALID_FOR, "write", "valid-for", "--valid-for" },
	{ OPT_COURIER, "write", "courier", "--courier" },
	{ 'j', "write", "jobs", "--jobs" },
	{ OPT_CHUNK_SIZE, "write", "chunk-size", "--chunk-size" },
	{ OPT_WORKDIR, "write", "workdir", "--workdir" },
	{ OPT_STATE_DIR, "common", "state-dir", "--state-dir" },
	{ OPT_CUSTODY_LOG, "common", "custody-log", "--custody-log" },
};

struct cmdline {
	const char *config;
	const char *device;
	const char *image;
	const char *sequence;
	int yes;
	int force_device;
	int json;
	int quiet;
	int verbose;
};

static void on_signal(int sig)
{
	write_interrupted = sig;
}

/* Ask the officer to type the serial of the device about to be wiped. */
static int confirm_serial(void *ctx, const struct write_target_facts *t, struct alerr *e)
{
	char size[32], line[256];
	FILE *tty;
	size_t n;

	(void)ctx;
	progress_format_bytes(size, sizeof(size), t->size_bytes);
	tty = fopen("/dev/tty", "r+e");
	if (!tty)
		return alerr_set(e, ALERR_USAGE, -ENOTTY, "usage",
		                 "%s will be wiped: confirm on a terminal, or pass --yes",
		                 t->devnode);
	fprintf(tty, "\nThe device below will be WIPED and written:\n"
	             "  device  %s\n  vendor  %s\n  model   %s\n  serial  %s\n  size    %s\n\n"
	             "Type its serial to go on: ",
	        t->devnode, t->vendor[0] ? t->vendor : "(unknown)",
	        t->model[0] ? t->model : "(unknown)",
	        t->serial[0] ? t->serial : "(none)", size);
	fflush(tty);
	if (!fgets(line, sizeof(line), tty)) {
		fclose(tty);
		return alerr_set(e, ALERR_USAGE, -ECANCELED, "usage", "not confirmed: nothing written");
	}
	fclose(tty);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (!t->serial[0] || strcmp(line, t->serial) != 0)
		return alerr_set(e, ALERR_USAGE, -ECANCELED, "usage",
		                 "the serial typed does not match %s: nothing written",
		                 t->devnode);
	return 0;
}

static void print_receipt(const struct write_result *r)
{
	char vol[32], pay[32];
	size_t i;

	progress_format_bytes(vol, sizeof(vol), r->volume_bytes);
	progress_format_bytes(pay, sizeof(pay), r->payload_bytes);
	printf("airlock bundle written and verified\n"
	       "  bundle id    %s\n"
	       "  channel      %s\n"
	       "  sequence     %llu\n"
	       "  fingerprint  %s   (manifest SHA-256 %s)\n"
	       "  target       %s\n",
	       r->bundle_id, r->channel, (unsigned long long)r->sequence,
	       r->fingerprint, r->manifest_sha256, r->target);
	if (r->media_serial[0])
		printf("  media        %s %s, serial %s\n", r->media_vendor,
		       r->media_model, r->media_serial);
	printf("  tables       %llu (%llu rows), payload %s, volume %s\n",
	       (unsigned long long)r->tables, (unsigned long long)r->rows, pay, vol);
	for (i = 0; i < r->n_signers; i++)
		printf("  %s  %s\n", i == 0 ? "signed by  " : "           ", r->signers[i]);
	printf("  custody      entry %llu, %s\n", (unsigned long long)r->custody_seq,
	       r->custody_hash);
}

static int print_json(const struct write_result *r, const struct alerr *e)
{
	json_object *o = json_object_new_object(), *a;
	size_t i;
	int rc;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "ok", json_object_new_boolean(!alerr_failed(e)));
	if (alerr_failed(e)) {
		json_object_object_add(o, "error", json_object_new_string(alerr_class_name(e->cls)));
		json_object_object_add(o, "reason", json_object_new_string(e->reason));
		json_object_object_add(o, "message", json_object_new_string(e->message));
		json_object_object_add(o, "exit_code", json_object_new_int(alerr_exit_code(e->cls)));
	} else {
		json_object_object_add(o, "bundle_id", json_object_new_string(r->bundle_id));
		json_object_object_add(o, "channel", json_object_new_string(r->channel));
		json_object_object_add(o, "sequence", json_object_new_int64((int64_t)r->sequence));
		json_object_object_add(o, "manifest_sha256", json_object_new_string(r->manifest_sha256));
		json_object_object_add(o, "fingerprint", json_object_new_string(r->fingerprint));
		json_object_object_add(o, "target", json_object_new_string(r->target));
		json_object_object_add(o, "media_vendor", json_object_new_string(r->media_vendor));
		json_object_object_add(o, "media_model", json_object_new_string(r->media_model));
		json_object_object_add(o, "media_serial", json_object_new_string(r->media_serial));
		a = json_object_new_array();
		for (i = 0; i < r->n_signers; i++)
			json_object_array_add(a, json_object_new_string(r->signers[i]));
		json_object_object_add(o, "signers", a);
		json_object_object_add(o, "tables", json_object_new_int64((int64_t)r->tables));
		json_object_object_add(o, "rows", json_object_new_int64((int64_t)r->rows));
		json_object_object_add(o, "payload_bytes", json_object_new_int64((int64_t)r->payload_bytes));
		json_object_object_add(o, "volume_bytes", json_object_new_int64((int64_t)r->volume_bytes));
		json_object_object_add(o, "volume_sha256", json_object_new_string(r->volume_sha256));
		json_object_object_add(o, "created", json_object_new_int64(r->created));
		json_object_object_add(o, "valid_until", json_object_new_int64(r->valid_until));
		json_object_object_add(o, "custody_seq", json_object_new_int64((int64_t)r->custody_seq));
		json_object_object_add(o, "custody_hash", json_object_new_string(r->custody_hash));
	}
	rc = printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return rc < 0 ? -EIO : 0;
}

int main(int argc, char **argv)
{
	struct write_options o;
	struct write_result res;
	struct cmdline cl;
	struct config cfg;
	struct alerr e;
	uint64_t seq = 0;
	int c, rc, code;

	memset(&cl, 0, sizeof(cl));
	memset(&res, 0, sizeof(res));
	alerr_clear(&e);
	log_init(PROGNAME, LOG_TO_STDERR, LOG_LEVEL_NOTICE);
	if (config_init(&cfg, &e) < 0) {
		log_alerr(&e);
		return alerr_exit_code(e.cls);
	}

	/* First pass: --config and the flags that are not config keys; the
	 * second pass applies config keys over the loaded file. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:n:c:S:j:d:i:yqvhV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_CONFIG: cl.config = optarg; break;
		case 'd': cl.device = optarg; break;
		case 'i': cl.image = optarg; break;
		case OPT_SEQUENCE: cl.sequence = optarg; break;
		case 'y': cl.yes = 1; break;
		case OPT_FORCE_DEVICE: cl.force_device = 1; break;
		case OPT_JSON: cl.json = 1; break;
		default:
			if (cli_common_option(c, argv, PROGNAME, usage, &cl.quiet, &cl.verbose,
			                      &code) && code >= 0) {
				config_free(&cfg);
				return cli_finish(code);
			}
			break;
		}
	}
	if ((c = cli_no_arguments(argc, argv)) != 0) {
		config_free(&cfg);
		return cli_finish(c);
	}
	cli_set_verbosity(cl.quiet, cl.verbose);

	rc = config_load(&cfg, cl.config ? cl.config : config_default_path(), !cl.config, &e);
	if (rc < 0)
		goto fail;

	rc = cli_apply_config(argc, argv, ":s:n:c:S:j:d:i:yqvhV", longopts, config_opts,
	                      sizeof(config_opts) / sizeof(config_opts[0]), &cfg, &e);
	if (rc < 0)
		goto fail;

	if (cl.device && cl.image) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "--device and --image exclude each other (try --help)");
		goto fail;
	}
	if (!cl.device && !cl.image) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "a target is required: --device DEV or --image FILE (try --help)");
		goto fail;
	}
	if (cl.force_device && !cl.device) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "--force-device applies to --device only (try --help)");
		goto fail;
	}
	if (cl.sequence) {
		char *end;

		errno = 0;
		seq = strtoull(cl.sequence, &end, 10);
		if (errno || *end || !*cl.sequence || cl.sequence[0] == '-' || seq == 0 ||
		    seq > (uint64_t)INT64_MAX) {
			rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
			               "--sequence: '%s' is not a number from 1 to %lld (try --help)",
			               cl.sequence, (long long)INT64_MAX);
			goto fail;
		}
	}
	if (!cfg.write.source) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "--source CONNINFO is required (or source in [write] of the config) (try --help)");
		goto fail;
	}
	if (cfg.write.schemas.n == 0) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "at least one --schema is required (try --help)");
		goto fail;
	}
	if (!cfg.write.channel) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "--channel NAME is required (try --help)");
		goto fail;
	}
	if (cfg.write.signers.n == 0) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "at least one --signer FPR is required (try --help)");
		goto fail;
	}

	memset(&o, 0, sizeof(o));
	o.source = cfg.write.source;
	o.schemas = (const char *const *)(uintptr_t)cfg.write.schemas.v;
	o.n_schemas = cfg.write.schemas.n;
	o.channel = cfg.write.channel;
	o.signers = (const char *const *)(uintptr_t)cfg.write.signers.v;
	o.n_signers = cfg.write.signers.n;
	o.gnupghome = cfg.write.gnupghome;
	o.device = cl.device;
	o.image = cl.image;
	o.force_device = cl.force_device;
	o.sequence = seq;
	o.valid_for = cfg.write.valid_for;
	o.courier = cfg.write.courier;
	o.workdir = cfg.write.workdir;
	o.jobs = cfg.write.jobs;
	o.chunk_size = cfg.write.chunk_size;
	o.custody_log = cfg.custody_log;
	o.state_dir = cfg.state_dir;
	o.progress = !cl.quiet && !cl.json;
	o.confirm = (cl.device && !cl.yes) ? confirm_serial : NULL;

	cli_install_signals(on_signal);
	rc = write_run(&o, &res, &e);
	if (rc < 0)
		goto fail;
	if (cl.json)
		print_json(&res, &e);
	else
		print_receipt(&res);
	config_free(&cfg);
	return cli_finish(EX_OK);

fail:
	log_alerr(&e);
	code = alerr_exit_code(e.cls);
	if (cl.json)
		print_json(&res, &e);
	config_free(&cfg);
	return cli_finish(code);
}
