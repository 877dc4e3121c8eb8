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
