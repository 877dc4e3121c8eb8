/* What the three mains share: signals, the option errors, the config
 * keys that options override, and the check that stdout got written. */
#ifndef AIRLOCK_CLI_H
#define AIRLOCK_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#include "alerr.h"
#include "conf.h"

/* An option that sets a config key: its getopt value, section, key, and
 * the name shown in errors ("--target"). */
struct cli_config_opt {
	int opt;
	const char *section;
	const char *key;
	const char *name;
};

/* SIGINT, SIGTERM and SIGHUP call handler (no SA_RESTART); SIGPIPE is
 * ignored so a closed pipe is an error, not a death. */
void cli_install_signals(void (*handler)(int));

/* One line for getopt's '?' (unknown option) or ':' (missing argument),
 * with "try --help". Needs opterr = 0 and an optstring starting with ':'. */
void cli_option_error(int c, char *const argv[]);

/* -q and -v (given n times) into the log threshold. */
void cli_set_verbosity(int quiet, int verbose);

/* The options every command handles alike, from getopt's c: -q and -v
 * (counted into *quiet and *verbose), -h (usage to stdout), -V (progname
 * and the version), and getopt's '?' and ':' (cli_option_error). 0 when c
 * is none of them; else 1, and *code is -1 to go on or the exit code the
 * command ends with (EX_OK after -h or -V, EX_USAGE after an error). */
int cli_common_option(int c, char *const argv[], const char *progname,
                      void (*usage)(FILE *f), int *quiet, int *verbose, int *code);

/* EX_USAGE, said, when arguments are left after the options; else 0. */
int cli_no_arguments(int argc, char *const argv[]);

/* Second pass over the options: apply those in t to cfg (after the file
 * was loaded, so options override it). */
int cli_apply_config(int argc, char *const argv[], const char *optstring,
                     const struct option *longopts, const struct cli_config_opt *t,
                     size_t n, struct config *cfg, struct alerr *e);

/* Flush and close stdout (a result lost to a full disk or a closed pipe
 * turns success into EX_IOERR), close the log, return the exit code. */
int cli_finish(int code);

#endif
