#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"

void cli_install_signals(void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void cli_option_error(int c, char *const argv[])
{
	if (c == ':')
		log_err("option %s needs an argument (try --help)", argv[optind - 1]);
	else if (optopt && optopt < 256)
		log_err("invalid option -%c (try --help)", optopt);
	else
		log_err("invalid option %s (try --help)", argv[optind - 1]);
}

void cli_set_verbosity(int quiet, int verbose)
{
	log_set_threshold(quiet ? LOG_LEVEL_WARNING :
	                  verbose > 1 ? LOG_LEVEL_DEBUG :
	                  verbose ? LOG_LEVEL_VERBOSE : LOG_LEVEL_NOTICE);
}

int cli_common_option(int c, char *const argv[], const char *progname,
                      void (*usage)(FILE *f), int *quiet, int *verbose, int *code)
{
	*code = -1;
	switch (c) {
	case 'q':
		*quiet = 1;
		return 1;
	case 'v':
		(*verbose)++;
		return 1;
	case 'h':
		usage(stdout);
		*code = EX_OK;
		return 1;
	case 'V':
		printf("%s (airlock) %s\n", progname, PACKAGE_VERSION);
		*code = EX_OK;
		return 1;
	case '?':
	case ':':
		cli_option_error(c, argv);
		*code = EX_USAGE;
		return 1;
	default:
		return 0;
	}
}

int cli_no_arguments(int argc, char *const argv[])
{
	if (optind >= argc)
		return 0;
	log_err("unexpected argument '%s' (try --help)", argv[optind]);
	return EX_USAGE;
}

int cli_apply_config(int argc, char *const argv[], const char *optstring,
                     const struct option *longopts, const struct cli_config_opt *t,
                     size_t n, struct config *cfg, struct alerr *e)
{
	size_t i;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		for (i = 0; i < n; i++) {
			if (t[i].opt != c)
				continue;
			rc = config_set(cfg, t[i].section, t[i].key, optarg, t[i].name, e);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int cli_finish(int code)
{
	if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
		if (errno != EPIPE)
			log_err("write error on standard output: %s", strerror(errno));
		if (code == 0)
			code = EX_IOERR;
	}
	log_close();
	return code;
}
