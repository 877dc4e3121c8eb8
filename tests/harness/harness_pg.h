/* Throwaway PostgreSQL clusters for Criterion tests. One implementation:
 * every step runs tests/harness/pg.sh in its command mode.
 *
 * A cluster per Test: harness_pg_start() in .init, harness_pg_stop() in
 * .fini. A cluster shared by a whole test binary: harness_pg_start() in
 * ReportHook(PRE_ALL), harness_pg_stop() in ReportHook(POST_ALL), and
 * harness_pg_shared() in each Test (Criterion runs Tests in re-executed
 * children, which see the parent's environment but not its memory).
 *
 * Clusters still running at exit() are stopped by an atexit handler of
 * the process that started them (not by its children). When that process
 * dies without exit() (crash, timeout, SIGKILL), a watcher started by
 * pg.sh stops the cluster within about a second. */
#ifndef AIRLOCK_HARNESS_PG_H
#define AIRLOCK_HARNESS_PG_H

#include <sys/types.h>

struct harness_pg {
	char *name;        /* as given to harness_pg_start() */
	char *dir;         /* cluster directory, removed by harness_pg_stop() */
	char *data_dir;    /* PGDATA (dir/data) */
	char *socket_dir;  /* PGHOST: the Unix socket directory */
	int port;          /* PGPORT (no TCP: listen_addresses = '') */
	char *user;        /* PGUSER: a superuser, trust auth */
	char *dbname;      /* PGDATABASE: created empty */
	char *conninfo;    /* "host=... port=... user=... dbname=..." */
	char *log_file;    /* the server log */
	char *bindir;      /* PostgreSQL binaries (psql, pg_ctl) */
	pid_t owner;       /* process that stops it; 0 for harness_pg_shared() */
};

/* Start a new cluster NAME (letters, digits, _; at most 32) in a new
 * directory of the scratch directory, and export AIRLOCK_PG_<NAME> (the
 * directory, NAME upper-cased) for harness_pg_shared(). Returns 0, or a
 * negative errno with the reason on stderr. */
int harness_pg_start(struct harness_pg *pg, const char *name);

/* In a Test: fill pg for the cluster NAME that the runner process started
 * (ReportHook(PRE_ALL)). harness_pg_stop() on it only frees pg. Returns 0
 * or -ENOENT. */
int harness_pg_shared(struct harness_pg *pg, const char *name);

/* Fast shutdown and remove the directory (when this process started it),
 * then free pg's strings. Safe on a zeroed or already stopped pg. */
void harness_pg_stop(struct harness_pg *pg);

/* Immediate shutdown, as a crash would; the data stays. 0 or -EIO. */
int harness_pg_kill(const struct harness_pg *pg);

/* Start the server again after harness_pg_kill() (or restart a running
 * one), same port and socket. 0 or -EIO. */
int harness_pg_restart(const struct harness_pg *pg);

/* Run sql with psql -X -A -t -q -v ON_ERROR_STOP=1 on pg's database.
 * *out (when out is not NULL) gets psql's stdout without the trailing
 * newline (malloc'd). Returns psql's exit status (0 on success; psql's
 * stderr is copied to stderr otherwise), or -1 when psql cannot run. */
int harness_pg_exec(const struct harness_pg *pg, const char *sql, char **out);

/* Export PGHOST, PGPORT, PGUSER and PGDATABASE for pg, for programs the
 * test runs. */
void harness_pg_setenv(const struct harness_pg *pg);

#endif
