/* airlock-import: options in, import_run, result out. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "alerr.h"
#include "cli.h"
#include "conf.h"
#include "import.h"
#include "log.h"
#include "progress.h"
#include "station.h"

#define PROGNAME "airlock-import"

static void usage(FILE *f)
{
	fprintf(f,
"Usage: " PROGNAME " (--device DEV | --image FILE) [--target CONNINFO]\n"
"                      [--config FILE] [OPTIONS]\n"
"       " PROGNAME " --watch [--config FILE] [OPTIONS]\n"
"       " PROGNAME " --spool DIR [--config FILE] [OPTIONS]\n"
"\n"
"Quarantine an airlock volume (read once, never mounted), verify its\n"
"signatures, checksums and policy, and restore the feed atomically into\n"
"PostgreSQL. Every step is written to the custody log.\n"
"\n"
"Source:\n"
"  -d, --device DEV        the inserted media (a whole disk, e.g. /dev/sdb)\n"
"  -i, --image FILE        a volume image (e.g. from a cross-domain drop point)\n"
"      --watch             import media as udev reports them, one at a time,\n"
"                          until SIGTERM (hosts without systemd)\n"
"      --spool DIR         import every complete *.iso image in DIR in sequence\n"
"                          order, moving each to DIR/done or DIR/rejected\n"
"\n"
"Policy (override the [import] section of the config file):\n"
"  -t, --target CONNINFO   libpq conninfo or URI of the feeds database\n"
"      --keyring DIR       airlock's own GnuPG home with the signers' keys\n"
"      --trust FPR         pinned primary-key fingerprint (repeatable)\n"
"      --threshold M       distinct pinned keys that must have signed\n"
"  -c, --channel NAME      channel accepted (repeatable)\n"
"      --require-media-serial  the media's serial must match the signed one\n"
"      --quarantine DIR    quarantine directory\n"
"      --max-bytes SIZE    largest volume accepted, e.g. 64G\n"
"      --lock-timeout DUR  how long the swap waits for readers, e.g. 30s\n"
"  -j, --jobs N            parallel restore connections\n"
"\n"
"Other:\n"
"      --verify-only       run every check, restore nothing\n"
"      --config FILE       configuration file (default " SYSCONFDIR "/airlock/airlock.conf)\n"
"      --custody-log FILE  custody log to append to\n"
"      --json              print the result as JSON on stdout\n"
"  -q, --quiet             no progress, warnings and errors only\n"
"  -v, --verbose           more detail on stderr\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n"
"\n"
"There is no option that skips verification.\n"
"\n"
"Exit status: 0 restored (or verified with --verify-only); 64 usage; 65 bundle\n"
"rejected; 66 media or image not found, or not an airlock volume; 69 database\n"
"unavailable; 73 quarantine cannot be created or is full; 74 media I/O\n"
"error; 75 try again later; 78 configuration error. See airlock-import(8).\n");
}

enum {
	OPT_KEYRING = 256, OPT_TRUST, OPT_THRESHOLD, OPT_REQUIRE_SERIAL,
	OPT_QUARANTINE, OPT_MAX_BYTES, OPT_LOCK_TIMEOUT, OPT_VERIFY_ONLY,
	OPT_CONFIG, OPT_CUSTODY_LOG, OPT_JSON, OPT_WATCH, OPT_SPOOL,
};

static const struct option longopts[] = {
	{ "device", required_argument, NULL, 'd' },
	{ "image", required_argument, NULL, 'i' },
	{ "watch", no_argument, NULL, OPT_WATCH },
	{ "spool", required_argument, NULL, OPT_SPOOL },
	{ "target", required_argument, NULL, 't' },
	{ "keyring", required_argument, NULL, OPT_KEYRING },
	{ "trust", required_argument, NULL, OPT_TRUST },
	{ "threshold", required_argument, NULL, OPT_THRESHOLD },
	{ "channel", required_argument, NULL, 'c' },
	{ "require-media-serial", no_argument, NULL, OPT_REQUIRE_SERIAL },
	{ "quarantine", required_argument, NULL, OPT_QUARANTINE },
	{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
	{ "lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT },
	{ "jobs", required_argument, NULL, 'j' },
	{ "verify-only", no_argument, NULL, OPT_VERIFY_ONLY },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "custody-log", required_argument, NULL, OPT_CUSTODY_LOG },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static const char optstring[] = ":d:i:t:c:j:qvhV";

/* Options that map onto config keys: section, key. */
static const struct cli_config_opt config_opts[] = {
	{ 't', "import", "target", "--target" },
	{ OPT_KEYRING, "import", "keyring", "--keyring" },
	{ OPT_TRUST, "import", "trust", "--trust" },
	{ OPT_THRESHOLD, "import", "threshold", "--threshold" },
	{ 'c', "import", "channel", "--channel" },
	{ OPT_QUARANTINE, "import", "quarantine", "--quarantine" },
	{ OPT_MAX_BYTES, "import", "max-bytes", "--max-bytes" },
	{ OPT_LOCK_TIMEOUT, "import", "lock-timeout", "--lock-timeout" },
	{ 'j', "import", "jobs", "--jobs" },
	{ OPT_CUSTODY_LOG, "common", "custody-log", "--custody-log" },
};

struct cmdline {
	const char *config;
	const char *device;
	const char *image;
	const char *spool;
	int watch;
	int require_serial;
	int verify_only;
	int json;
	int quiet;
	int verbose;
};

static void on_signal(int sig)
{
	import_interrupted = sig;
}

static void print_result(const struct import_result *r)
{
	size_t i;

	switch (r->outcome) {
	case IMPORT_RESTORED:
		printf("airlock bundle imported\n");
		break;
	case IMPORT_VERIFIED:
		printf("airlock bundle verified (--verify-only: nothing restored)\n");
		break;
	default:
		return;
	}
	printf("  bundle id    %s\n"
	       "  channel      %s\n"
	       "  sequence     %llu\n"
	       "  manifest     %s\n"
	       "  source       %s\n"
	       "  image        %s (%llu bytes)\n",
	       r->bundle_id, r->channel, (unsigned long long)r->sequence,
	       r->manifest_sha256, r->source, r->image_sha256,
	       (unsigned long long)r->image_bytes);
	for (i = 0; i < r->n_signers; i++)
		printf("  %s  %s\n", i == 0 ? "signed by  " : "           ", r->signers[i]);
	if (r->outcome == IMPORT_RESTORED)
		printf("  restored     %zu tables, %llu rows in %.1f s\n", r->tables,
		       (unsigned long long)r->rows, r->restore_seconds);
	printf("  custody      entry %llu, %s\n", (unsigned long long)r->custody_seq,
	       r->custody_hash);
}

static int print_json(const struct import_result *r, const struct alerr *e)
{
	json_object *o = json_object_new_object(), *a;
	size_t i;
	int rc;

	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "ok", json_object_new_boolean(!alerr_failed(e)));
	json_object_object_add(o, "outcome", json_object_new_string(
		alerr_failed(e) && r->outcome == IMPORT_RESTORED ? "failed" :
		import_outcome_name(r->outcome)));
	if (alerr_failed(e)) {
		json_object_object_add(o, "error", json_object_new_string(alerr_class_name(e->cls)));
		json_object_object_add(o, "reason", json_object_new_string(e->reason));
		json_object_object_add(o, "message", json_object_new_string(e->message));
		json_object_object_add(o, "exit_code", json_object_new_int(alerr_exit_code(e->cls)));
		if (r->kept[0])
			json_object_object_add(o, "kept", json_object_new_string(r->kept));
	}
	json_object_object_add(o, "run", json_object_new_string(r->run_id));
	json_object_object_add(o, "source", json_object_new_string(r->source));
	if (r->image_sha256[0]) {
		json_object_object_add(o, "image_sha256", json_object_new_string(r->image_sha256));
		json_object_object_add(o, "image_bytes", json_object_new_int64((int64_t)r->image_bytes));
	}
	if (r->bundle_id[0]) {
		json_object_object_add(o, "bundle_id", json_object_new_string(r->bundle_id));
		json_object_object_add(o, "channel", json_object_new_string(r->channel));
		json_object_object_add(o, "sequence", json_object_new_int64((int64_t)r->sequence));
	}
	if (r->manifest_sha256[0])
		json_object_object_add(o, "manifest_sha256", json_object_new_string(r->manifest_sha256));
	a = json_object_new_array();
	for (i = 0; i < r->n_signers; i++)
		json_object_array_add(a, json_object_new_string(r->signers[i]));
	json_object_object_add(o, "signers", a);
	if (r->outcome == IMPORT_RESTORED && !alerr_failed(e)) {
		json_object_object_add(o, "tables", json_object_new_int64((int64_t)r->tables));
		json_object_object_add(o, "rows", json_object_new_int64((int64_t)r->rows));
		json_object_object_add(o, "seconds", json_object_new_double(r->restore_seconds));
	}
	if (r->custody_seq) {
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
	struct import_options o;
	struct import_result res;
	struct cmdline cl;
	struct config cfg;
	struct alerr e;
	int c, rc, code;

	memset(&cl, 0, sizeof(cl));
	memset(&res, 0, sizeof(res));
	alerr_clear(&e);
	log_init(PROGNAME, LOG_TO_STDERR, LOG_LEVEL_NOTICE);
	if (config_init(&cfg, &e) < 0) {
		log_alerr(&e);
		return alerr_exit_code(e.cls);
	}

	opterr = 0;
	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_CONFIG: cl.config = optarg; break;
		case 'd': cl.device = optarg; break;
		case 'i': cl.image = optarg; break;
		case OPT_WATCH: cl.watch = 1; break;
		case OPT_SPOOL: cl.spool = optarg; break;
		case OPT_REQUIRE_SERIAL: cl.require_serial = 1; break;
		case OPT_VERIFY_ONLY: cl.verify_only = 1; break;
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
	rc = cli_apply_config(argc, argv, optstring, longopts, config_opts,
	                      sizeof(config_opts) / sizeof(config_opts[0]), &cfg, &e);
	if (rc < 0)
		goto fail;
	if (cl.require_serial)
		cfg.import.require_media_serial = 1;
	if (cfg.syslog)
		log_init(PROGNAME, LOG_TO_STDERR | LOG_TO_SYSLOG, log_get_threshold());

	if (!!cl.device + !!cl.image + !!cl.watch + !!cl.spool > 1) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "--device, --image, --watch and --spool exclude each other (try --help)");
		goto fail;
	}
	if (!cl.device && !cl.image && !cl.watch && !cl.spool) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "a source is required: --device DEV, --image FILE, --watch or "
		               "--spool DIR (try --help)");
		goto fail;
	}
	if ((cl.watch || cl.spool) && cl.json) {
		rc = alerr_set(&e, ALERR_USAGE, -EINVAL, "usage",
		               "--json describes one import: not with --watch or --spool (try --help)");
		goto fail;
	}
	if (cfg.import.trust.n == 0) {
		rc = alerr_set(&e, ALERR_CONFIG, -EINVAL, "config.policy",
		               "no key is trusted: pin signers with --trust FPR or trust = in [import]");
		goto fail;
	}
	if (cfg.import.threshold > cfg.import.trust.n) {
		rc = alerr_set(&e, ALERR_CONFIG, -EINVAL, "config.policy",
		               "threshold %u is more than the %zu trusted key(s): no bundle could pass",
		               cfg.import.threshold, cfg.import.trust.n);
		goto fail;
	}
	if (cfg.import.channels.n == 0) {
		rc = alerr_set(&e, ALERR_CONFIG, -EINVAL, "config.policy",
		               "no channel is accepted: name one with --channel or channel = in [import]");
		goto fail;
	}

	memset(&o, 0, sizeof(o));
	o.device = cl.device;
	o.image = cl.image;
	o.target = cfg.import.target;
	o.keyring = cfg.import.keyring;
	o.trust = (const char *const *)(uintptr_t)cfg.import.trust.v;
	o.n_trust = cfg.import.trust.n;
	o.threshold = cfg.import.threshold;
	o.channels = (const char *const *)(uintptr_t)cfg.import.channels.v;
	o.n_channels = cfg.import.channels.n;
	o.require_media_serial = cfg.import.require_media_serial;
	o.quarantine = cfg.import.quarantine;
	o.max_bytes = cfg.import.max_bytes;
	o.max_files = cfg.import.max_files;
	o.max_path = cfg.import.max_path;
	o.lock_timeout = cfg.import.lock_timeout;
	o.retention = cfg.import.retention;
	o.jobs = cfg.import.jobs;
	o.custody_log = cfg.custody_log;
	o.verify_only = cl.verify_only;
	o.progress = !cl.quiet && !cl.json;

	cli_install_signals(on_signal);
	if (cl.watch || cl.spool) {
		o.progress = 0;
		rc = cl.watch ? station_watch(&o, &code, &e) : station_spool(cl.spool, &o, &code, &e);
		if (rc < 0)
			goto fail;
		config_free(&cfg);
		return cli_finish(code);
	}
	rc = import_run(&o, &res, &e);
	if (rc < 0)
		goto fail;
	if (cl.json)
		print_json(&res, &e);
	else
		print_result(&res);
	config_free(&cfg);
	return cli_finish(EX_OK);

fail:
	log_alerr(&e);
	if (res.kept[0])
		log_notice("the quarantine copy is kept for review in %s", res.kept);
	code = alerr_exit_code(e.cls);
	if (cl.json)
		print_json(&res, &e);
	config_free(&cfg);
	return cli_finish(code);
}
