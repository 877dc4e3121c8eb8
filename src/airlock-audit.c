/* airlock-audit: verify the custody log, list it, show one bundle's trail.
 * Options are parsed here; the work is done by the audit stages. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "alerr.h"
#include "audit.h"
#include "bounds.h"
#include "cli.h"
#include "conf.h"
#include "custody.h"
#include "log.h"

#define PROG "airlock-audit"

enum command { CMD_NONE = 0, CMD_VERIFY = 1, CMD_LIST = 2, CMD_SHOW = 4 };

enum opt {
	OPT_CONFIG = 256, OPT_CUSTODY_LOG, OPT_ANCHOR, OPT_TARGET, OPT_SINCE, OPT_UNTIL, OPT_CHANNEL,
	OPT_BUNDLE, OPT_DEVICE, OPT_EVENT, OPT_OUTCOME, OPT_FORMAT,
};

static const struct option long_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "custody-log", required_argument, NULL, OPT_CUSTODY_LOG },
	{ "anchor", required_argument, NULL, OPT_ANCHOR },
	{ "target", required_argument, NULL, OPT_TARGET },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "channel", required_argument, NULL, OPT_CHANNEL },
	{ "bundle", required_argument, NULL, OPT_BUNDLE },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "event", required_argument, NULL, OPT_EVENT },
	{ "outcome", required_argument, NULL, OPT_OUTCOME },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* The commands each option applies to: one table, checked once. */
static const struct {
	int opt;
	unsigned int commands;
	int repeatable;
} option_scope[] = {
	{ OPT_CONFIG, CMD_VERIFY | CMD_LIST | CMD_SHOW, 0 },
	{ OPT_CUSTODY_LOG, CMD_VERIFY | CMD_LIST | CMD_SHOW, 0 },
	{ OPT_ANCHOR, CMD_VERIFY, 1 },
	{ OPT_TARGET, CMD_VERIFY, 0 },
	{ OPT_SINCE, CMD_LIST, 0 },
	{ OPT_UNTIL, CMD_LIST, 0 },
	{ OPT_CHANNEL, CMD_LIST, 0 },
	{ OPT_BUNDLE, CMD_LIST, 0 },
	{ OPT_DEVICE, CMD_LIST, 0 },
	{ OPT_EVENT, CMD_LIST, 0 },
	{ OPT_OUTCOME, CMD_LIST, 0 },
	{ OPT_FORMAT, CMD_LIST, 0 },
};

#define N_SCOPE (sizeof(option_scope) / sizeof(option_scope[0]))

struct args {
	enum command command;
	const char *config;
	const char *custody_log;
	const char *target;
	const char *bundle_id;          /* show */
	struct custody_anchor *anchors;
	size_t n_anchors;
	struct audit_filter filter;
	enum audit_format format;
	unsigned int seen[N_SCOPE];
};

static void usage(FILE *out)
{
	fputs("Usage:\n"
	      "  " PROG " verify [--target CONNINFO] [--anchor SEQ:HASH]...\n"
	      "                [--custody-log FILE] [--config FILE]\n"
	      "  " PROG " list [--since TIME] [--until TIME] [--channel NAME] [--bundle ID]\n"
	      "                [--device SERIAL|DEVNODE] [--event EVENT] [--outcome OUTCOME]\n"
	      "                [--format table|json|csv] [--custody-log FILE] [--config FILE]\n"
	      "  " PROG " show BUNDLE-ID [--custody-log FILE] [--config FILE]\n"
	      "  " PROG " --help | --version\n"
	      "\n"
	      "Verify airlock's chain-of-custody log, list its entries, and show the\n"
	      "trail of one bundle from the low-side snapshot to the high-side restore.\n"
	      "\n"
	      "Commands:\n"
	      "  verify               check every entry's hash, the seq and prev chain, time\n"
	      "                       order, recorded torn writes, the anchors given and\n"
	      "                       those the --target database recorded\n"
	      "  list                 print the entries the filters select\n"
	      "  show BUNDLE-ID       print one bundle's trail (an id or a unique prefix of\n"
	      "                       at least 8 characters)\n"
	      "\n"
	      "Options:\n"
	      "  --custody-log FILE   the custody log (default: custody-log in [common])\n"
	      "  --config FILE        the configuration file (default " SYSCONFDIR "/airlock/airlock.conf)\n"
	      "  --target CONNINFO    verify: the high-side database (libpq conninfo or URI):\n"
	      "                       check the log against every anchor its airlock.imports\n"
	      "                       records (default: target in [import] of the\n"
	      "                       file, when --custody-log is not given)\n"
	      "  --anchor SEQ:HASH    verify: the log's head as the database recorded it;\n"
	      "                       the entry at SEQ must have HASH (repeatable)\n"
	      "  --since TIME         list: entries at or after TIME (UTC unless an offset\n"
	      "                       is given: 2024-05-01, 2024-05-01T12:00:00+02:00)\n"
	      "  --until TIME         list: entries at or before TIME\n"
	      "  --channel NAME       list: entries about bundles of this channel\n"
	      "  --bundle ID          list: entries about this bundle (or id prefix)\n"
	      "  --device DEV         list: entries about this media serial or device node\n"
	      "  --event EVENT        list: entries of this event (bundle.verified...)\n"
	      "  --outcome OUTCOME    list: ok, refused, error or info\n"
	      "  --format FORMAT      list: table (default), json (the entries as logged,\n"
	      "                       one per line) or csv (RFC 4180)\n"
	      "  -h, --help           print this help and exit\n"
	      "  -V, --version        print the version and exit\n"
	      "\n"
	      "Exit status: 0 done; 64 usage error; 65 the log does not verify; 66 no log,\n"
	      "or no such bundle; 69 the database is unavailable; 74 I/O error; 75 the log\n"
	      "is locked; 78 configuration error.\n"
	      "See airlock-audit(1) and the auditor guide.\n", out);
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_err("%s; try '" PROG " --help'", msg);
	return EX_USAGE;
}

static const char *option_name(int opt)
{
	size_t i;

	for (i = 0; long_options[i].name; i++)
		if (long_options[i].val == opt)
			return long_options[i].name;
	return "?";
}

static int parse_args(int argc, char **argv, struct args *a, int *exit_now)
{
	struct custody_anchor *grown;
	int c, rest;
	size_t i;

	*exit_now = -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", long_options, NULL)) != -1) {
		for (i = 0; i < N_SCOPE; i++) {
			if (option_scope[i].opt != c)
				continue;
			if (a->seen[i] && !option_scope[i].repeatable)
				return usage_error("--%s given twice", option_name(c));
			a->seen[i]++;
		}
		switch (c) {
		case 'h':
			usage(stdout);
			*exit_now = EX_OK;
			return 0;
		case 'V':
			printf(PROG " (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			*exit_now = EX_OK;
			return 0;
		case OPT_CONFIG:
			a->config = optarg;
			break;
		case OPT_CUSTODY_LOG:
			a->custody_log = optarg;
			break;
		case OPT_TARGET:
			a->target = optarg;
			break;
		case OPT_ANCHOR:
			if (a->n_anchors >= CUSTODY_MAX_ANCHORS)
				return usage_error("more than %u --anchor options", CUSTODY_MAX_ANCHORS);
			grown = realloc(a->anchors, (a->n_anchors + 1) * sizeof(*grown));
			if (!grown) {
				log_err("out of memory");
				return EX_OSERR;
			}
			a->anchors = grown;
			if (custody_anchor_parse(optarg, &a->anchors[a->n_anchors]) < 0)
				return usage_error("--anchor: \"%s\" is not SEQ:HASH (a seq from 1 and 64 lower-case hex digits)",
				                   optarg);
			a->n_anchors++;
			break;
		case OPT_SINCE:
		case OPT_UNTIL:
			if (audit_parse_time(optarg, c == OPT_SINCE ? &a->filter.since_us :
			                     &a->filter.until_us) < 0)
				return usage_error("--%s: \"%s\" is not a time such as 2024-05-01 or 2024-05-01T12:00:00Z",
				                   option_name(c), optarg);
			if (c == OPT_SINCE)
				a->filter.has_since = 1;
			else
				a->filter.has_until = 1;
			break;
		case OPT_CHANNEL:
			a->filter.channel = optarg;
			break;
		case OPT_BUNDLE:
			a->filter.bundle = optarg;
			break;
		case OPT_DEVICE:
			a->filter.device = optarg;
			break;
		case OPT_EVENT:
			a->filter.event = optarg;
			break;
		case OPT_OUTCOME:
			a->filter.outcome = optarg;
			break;
		case OPT_FORMAT:
			if (audit_format_parse(optarg, &a->format) < 0)
				return usage_error("--format: \"%s\" is not table, json or csv", optarg);
			break;
		case ':':
			return usage_error("%s needs a value", argv[optind - 1]);
		default:
			if (optopt)
				return usage_error("unknown option -%c", optopt);
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no command given (verify, list or show)");
	if (strcmp(argv[optind], "verify") == 0)
		a->command = CMD_VERIFY;
	else if (strcmp(argv[optind], "list") == 0)
		a->command = CMD_LIST;
	else if (strcmp(argv[optind], "show") == 0)
		a->command = CMD_SHOW;
	else
		return usage_error("unknown command \"%s\"", argv[optind]);
	rest = argc - optind - 1;
	if (a->command == CMD_SHOW) {
		if (rest < 1)
			return usage_error("show needs a BUNDLE-ID");
		a->bundle_id = argv[optind + 1];
		rest--;
	}
	if (rest > 0)
		return usage_error("unexpected argument \"%s\"", argv[argc - rest]);
	for (i = 0; i < N_SCOPE; i++)
		if (a->seen[i] && !(option_scope[i].commands & a->command))
			return usage_error("--%s does not apply to %s", option_name(option_scope[i].opt),
			                   argv[optind]);
	return 0;
}

/* The configuration file, then the options over it. A relative
 * --custody-log (an auditor's copy) is taken from the current directory. */
static int load_config(const struct args *a, struct config *conf, struct alerr *e)
{
	char cwd[PATH_MAX], *abs = NULL;
	int r;

	r = config_init(conf, e);
	if (r < 0)
		return r;
	/* The built-in default target (dbname=feeds) is no reason to
	 * connect: only a target the file names, or --target. */
	free(conf->import.target);
	conf->import.target = NULL;
	if (a->config)
		r = config_load(conf, a->config, 0, e);
	else
		r = config_load(conf, config_default_path(), 1, e);
	if (r == 0 && a->target)
		r = config_set(conf, "import", "target", a->target, "--target", e);
	if (r < 0 || !a->custody_log)
		return r;
	if (a->custody_log[0] != '/') {
		if (!getcwd(cwd, sizeof(cwd)))
			return alerr_set(e, ALERR_OSERR, -errno, "audit.cwd",
			                 "cannot read the current directory: %s", strerror(errno));
		if (asprintf(&abs, "%s/%s", cwd, a->custody_log) < 0)
			return alerr_set(e, ALERR_OSERR, -ENOMEM, "audit.memory", "out of memory");
	}
	r = config_set(conf, "common", "custody-log", abs ? abs : a->custody_log,
	               "--custody-log", e);
	free(abs);
	return r;
}

/* The database whose anchors verify checks: --target, else the target
 * the file sets in [import], but only for the configured log: a copy
 * named with --custody-log (a low-side log, another station's) is not
 * checked against this station's database unless --target says so. */
static const char *verify_target(const struct args *a, const struct config *conf)
{
	if (a->target || !a->custody_log)
		return conf->import.target;
	return NULL;
}

int main(int argc, char **argv)
{
	struct args a;
	struct config conf;
	struct alerr e;
	int status, exit_now, r;

	log_init(PROG, LOG_TO_STDERR, LOG_LEVEL_NOTICE);
	alerr_clear(&e);
	memset(&a, 0, sizeof(a));
	memset(&conf, 0, sizeof(conf));
	status = parse_args(argc, argv, &a, &exit_now);
	if (status != 0 || exit_now >= 0) {
		free(a.anchors);
		return cli_finish(status != 0 ? status : exit_now);
	}
	r = load_config(&a, &conf, &e);
	if (r == 0) {
		switch (a.command) {
		case CMD_VERIFY:
			r = audit_verify(conf.custody_log, a.anchors, a.n_anchors,
			                 verify_target(&a, &conf), stdout, &e);
			break;
		case CMD_LIST:
			r = audit_list(conf.custody_log, &a.filter, a.format, stdout, &e);
			break;
		case CMD_SHOW:
			r = audit_show(conf.custody_log, a.bundle_id, stdout, &e);
			break;
		case CMD_NONE:
			break;
		}
	}
	status = EX_OK;
	if (r < 0) {
		log_alerr(&e);
		status = alerr_exit_code(e.cls);
	}
	config_free(&conf);
	free(a.anchors);
	/* A full disk or a closed pipe must not pass for a complete listing. */
	return cli_finish(status);
}
