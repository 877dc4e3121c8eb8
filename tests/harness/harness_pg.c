#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_pg.h"

#define PG_NAME_MAX 32

/* Clusters this process started, for the atexit handler. */
struct pg_live {
	struct pg_live *next;
	char *dir;
	pid_t owner;
};

static struct pg_live *pg_live;
static int pg_atexit_registered;

static char *pg_script(void)
{
	const char *h = getenv("AIRLOCK_HARNESS");
	char *path;

	if (h && *h)
		path = harness_strdup_printf("%s/pg.sh", h);
	else
		path = harness_strdup_printf("%s/tests/harness/pg.sh", harness_srcdir());
	if (access(path, R_OK) < 0)
		fprintf(stderr, "harness: %s: %s (set AIRLOCK_HARNESS to the "
		        "tests/harness directory, or run through make check)\n",
		        path, strerror(errno));
	return path;
}

/* Run "sh pg.sh CMD DIR [ARG]"; stdout to *out when out is not NULL.
 * Returns the exit status; stderr is copied to ours on failure. */
static int pg_script_run(const char *cmd, const char *dir, const char *arg,
                         char **out)
{
	char *script = pg_script();
	const char *argv[] = { "sh", script, cmd, dir, arg, NULL };
	char *err = NULL;
	int rc;

	rc = harness_run(argv, NULL, out, &err);
	if (rc != 0)
		fprintf(stderr, "harness_pg: pg.sh %s %s: exit %d\n%s", cmd, dir,
		        rc, err ? err : "");
	free(err);
	free(script);
	return rc;
}

static void pg_live_remove(const char *dir)
{
	struct pg_live **pp = &pg_live;

	while (*pp) {
		struct pg_live *l = *pp;

		if (strcmp(l->dir, dir) == 0) {
			*pp = l->next;
			free(l->dir);
			free(l);
			return;
		}
		pp = &l->next;
	}
}

static void pg_atexit(void)
{
	while (pg_live) {
		struct pg_live *l = pg_live;

		pg_live = l->next;
		/* A fork()ed child inherits the list: only the owner stops. */
		if (l->owner == getpid())
			pg_script_run("stop", l->dir, NULL, NULL);
		free(l->dir);
		free(l);
	}
}

static int pg_live_add(const char *dir)
{
	struct pg_live *l;

	if (!pg_atexit_registered) {
		if (atexit(pg_atexit) != 0)
			return -ENOMEM;
		pg_atexit_registered = 1;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->dir = strdup(dir);
	if (!l->dir) {
		free(l);
		return -ENOMEM;
	}
	l->owner = getpid();
	l->next = pg_live;
	pg_live = l;
	return 0;
}

static int pg_name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > PG_NAME_MAX || !isalpha((unsigned char)name[0]))
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_')
			return 0;
	return 1;
}

static char *pg_env_name(const char *name)
{
	char *v = harness_strdup_printf("AIRLOCK_PG_%s", name);
	char *p;

	for (p = v; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return v;
}

static void pg_free(struct harness_pg *pg)
{
	free(pg->name);
	free(pg->dir);
	free(pg->data_dir);
	free(pg->socket_dir);
	free(pg->user);
	free(pg->dbname);
	free(pg->conninfo);
	free(pg->log_file);
	free(pg->bindir);
	memset(pg, 0, sizeof(*pg));
}

static int pg_set(char **field, const char *value)
{
	free(*field);
	*field = strdup(value);
	return *field ? 0 : -ENOMEM;
}

/* Fill pg from pg.sh's key=value lines (text is modified). */
static int pg_parse(struct harness_pg *pg, char *text)
{
	char *line, *save = NULL;
	int r = 0;

	for (line = strtok_r(text, "\n", &save); line && r == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		const char *v;

		if (!eq)
			continue;
		*eq = '\0';
		v = eq + 1;
		if (strcmp(line, "dir") == 0) {
			r = pg_set(&pg->dir, v);
		} else if (strcmp(line, "data") == 0) {
			r = pg_set(&pg->data_dir, v);
		} else if (strcmp(line, "socket_dir") == 0) {
			r = pg_set(&pg->socket_dir, v);
		} else if (strcmp(line, "user") == 0) {
			r = pg_set(&pg->user, v);
		} else if (strcmp(line, "dbname") == 0) {
			r = pg_set(&pg->dbname, v);
		} else if (strcmp(line, "conninfo") == 0) {
			r = pg_set(&pg->conninfo, v);
		} else if (strcmp(line, "log") == 0) {
			r = pg_set(&pg->log_file, v);
		} else if (strcmp(line, "bindir") == 0) {
			r = pg_set(&pg->bindir, v);
		} else if (strcmp(line, "port") == 0) {
			char *end;
			long p;

			errno = 0;
			p = strtol(v, &end, 10);
			if (errno || end == v || *end || p < 1 || p > 65535)
				r = -EPROTO;
			else
				pg->port = (int)p;
		}
	}
	if (r == 0 && (!pg->dir || !pg->data_dir || !pg->socket_dir ||
	               !pg->user || !pg->dbname || !pg->conninfo ||
	               !pg->log_file || !pg->bindir || pg->port == 0))
		r = -EPROTO;
	return r;
}

int harness_pg_start(struct harness_pg *pg, const char *name)
{
	char pid[32];
	char *dir, *out = NULL, *env;
	int r;

	memset(pg, 0, sizeof(*pg));
	if (!pg_name_ok(name)) {
		fprintf(stderr, "harness_pg_start: bad cluster name '%s'\n", name);
		return -EINVAL;
	}
	/* First, so that its own atexit cleanup runs after ours. */
	dir = harness_strdup_printf("%s/pg-%s.XXXXXX", harness_scratch(), name);
	if (!mkdtemp(dir)) {
		r = -errno;
		fprintf(stderr, "harness_pg_start: mkdtemp %s: %s\n", dir, strerror(errno));
		free(dir);
		return r;
	}
	r = pg_live_add(dir);
	if (r < 0) {
		rmdir(dir);
		free(dir);
		return r;
	}
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	if (pg_script_run("start", dir, pid, &out) != 0) {
		/* pg.sh removed what it made; an early failure leaves dir. */
		rmdir(dir);
		pg_live_remove(dir);
		free(dir);
		free(out);
		return -EIO;
	}
	r = pg_parse(pg, out);
	free(out);
	if (r == 0)
		r = pg_set(&pg->name, name);
	if (r < 0) {
		fprintf(stderr, "harness_pg_start: pg.sh start printed no complete cluster description\n");
		pg_script_run("stop", dir, NULL, NULL);
		pg_live_remove(dir);
		free(dir);
		pg_free(pg);
		return r;
	}
	free(dir);
	pg->owner = getpid();
	env = pg_env_name(name);
	r = setenv(env, pg->dir, 1) < 0 ? -errno : 0;
	free(env);
	return r;
}

int harness_pg_shared(struct harness_pg *pg, const char *name)
{
	const char *dir;
	char *env, *file, *text;
	int r;

	memset(pg, 0, sizeof(*pg));
	if (!pg_name_ok(name))
		return -EINVAL;
	env = pg_env_name(name);
	dir = getenv(env);
	free(env);
	if (!dir || !*dir)
		return -ENOENT;
	file = harness_strdup_printf("%s/cluster.env", dir);
	text = harness_read_file(file, NULL);
	free(file);
	if (!text)
		return -ENOENT;
	r = pg_parse(pg, text);
	free(text);
	if (r == 0)
		r = pg_set(&pg->name, name);
	if (r < 0)
		pg_free(pg);
	return r;
}

void harness_pg_stop(struct harness_pg *pg)
{
	if (pg->dir && pg->owner == getpid()) {
		char *env = pg_env_name(pg->name ? pg->name : "");
		const char *cur = getenv(env);

		pg_script_run("stop", pg->dir, NULL, NULL);
		pg_live_remove(pg->dir);
		if (cur && strcmp(cur, pg->dir) == 0)
			unsetenv(env);
		free(env);
	}
	pg_free(pg);
}

int harness_pg_kill(const struct harness_pg *pg)
{
	if (!pg->dir)
		return -EINVAL;
	return pg_script_run("kill", pg->dir, NULL, NULL) == 0 ? 0 : -EIO;
}

int harness_pg_restart(const struct harness_pg *pg)
{
	if (!pg->dir)
		return -EINVAL;
	return pg_script_run("restart", pg->dir, NULL, NULL) == 0 ? 0 : -EIO;
}

int harness_pg_exec(const struct harness_pg *pg, const char *sql, char **out)
{
	char *psql, *o = NULL, *err = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (!pg->bindir || !pg->conninfo)
		return -1;
	psql = harness_strdup_printf("%s/psql", pg->bindir);
	{
		const char *argv[] = { psql, "-X", "-A", "-t", "-q", "-v",
		                       "ON_ERROR_STOP=1", "-d", pg->conninfo,
		                       "-c", sql, NULL };

		rc = harness_run(argv, NULL, &o, &err);
	}
	if (rc != 0)
		fprintf(stderr, "harness_pg_exec(%s): psql exit %d: %s\n%s",
		        pg->name ? pg->name : "?", rc, sql, err ? err : "");
	if (o) {
		size_t n = strlen(o);

		while (n > 0 && o[n - 1] == '\n')
			o[--n] = '\0';
	}
	if (out)
		*out = o;
	else
		free(o);
	free(err);
	free(psql);
	return rc;
}

void harness_pg_setenv(const struct harness_pg *pg)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", pg->port);
	setenv("PGHOST", pg->socket_dir, 1);
	setenv("PGPORT", port, 1);
	setenv("PGUSER", pg->user, 1);
	setenv("PGDATABASE", pg->dbname, 1);
}
