/* The real-service harness itself: throwaway PostgreSQL clusters and loop
 * devices, started and cleaned up the ways the other tests use them. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_loop.h"
#include "harness_pg.h"

#define IMAGE_SIZE (4u << 20)
/* Cleanup after a process dies is asynchronous (a watcher polls each
 * second): wait this long for it, so a slow machine does not fail. */
#define REAP_WAIT_S 30

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A process that is gone or a zombie no longer runs anything. */
static int pid_gone(pid_t pid)
{
	char path[64], *stat, *p;
	int gone;

	if (kill(pid, 0) < 0)
		return errno == ESRCH;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	stat = harness_read_file(path, NULL);
	if (!stat)
		return 1;
	p = strrchr(stat, ')');
	gone = p && (p[2] == 'Z' || p[2] == 'X');
	free(stat);
	return gone;
}

static int path_gone(const char *path)
{
	struct stat st;

	return lstat(path, &st) < 0 && errno == ENOENT;
}

static pid_t postmaster_pid(const struct harness_pg *pg)
{
	char *file = harness_strdup_printf("%s/postmaster.pid", pg->data_dir);
	char *text = harness_read_file(file, NULL);
	long pid;

	free(file);
	cr_assert_not_null(text, "no postmaster.pid in %s", pg->data_dir);
	pid = strtol(text, NULL, 10);
	free(text);
	cr_assert_gt(pid, 1);
	return (pid_t)pid;
}

static PGconn *connect_ok(const struct harness_pg *pg)
{
	PGconn *c = PQconnectdb(pg->conninfo);

	cr_assert_not_null(c);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect %s: %s", pg->conninfo,
	             PQerrorMessage(c));
	return c;
}

/* One row, one column: the value (malloc'd). */
static char *query1(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	char *v;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql,
	             PQresultErrorMessage(r));
	cr_assert_eq(PQntuples(r), 1);
	cr_assert_eq(PQnfields(r), 1);
	v = strdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	cr_assert_not_null(v);
	PQclear(r);
	return v;
}

static void command_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);

	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql,
	             PQresultErrorMessage(r));
	PQclear(r);
}

static void assert_query(PGconn *c, const char *sql, const char *want)
{
	char *v = query1(c, sql);

	cr_assert_str_eq(v, want, "%s", sql);
	free(v);
}

/* ---------------------------------------------------------------------
 * Helper mode: the test binary run again with TEST_HARNESS_HELPER set
 * starts a cluster or attaches a device, prints what it made, then exits
 * or dies. A fresh process rather than fork(): a forked Criterion worker
 * would run the worker's own exit handlers too. */

static pid_t pid_of_postmaster(const char *data_dir)
{
	char *file = harness_strdup_printf("%s/postmaster.pid", data_dir);
	char *text = harness_read_file(file, NULL);
	long pid = text ? strtol(text, NULL, 10) : 0;

	free(file);
	free(text);
	return (pid_t)pid;
}

static void finish_helper(const char *how)
{
	fflush(stdout);
	if (strcmp(how, "exit") == 0)
		exit(0);
	raise(SIGKILL);
	_exit(3);
}

__attribute__((constructor)) static void helper_mode(void)
{
	const char *mode = getenv("TEST_HARNESS_HELPER");
	const char *arg = getenv("TEST_HARNESS_HELPER_ARG");
	struct harness_pg pg;
	char *dev;

	if (!mode || !arg)
		return;
	if (strncmp(mode, "pg-", 3) == 0) {
		if (harness_pg_start(&pg, arg) != 0)
			_exit(2);
		printf("%ld %s", (long)pid_of_postmaster(pg.data_dir), pg.dir);
		finish_helper(mode + 3);
	} else if (strncmp(mode, "loop-", 5) == 0) {
		if (harness_loop_attach(arg, 0, &dev) != 0)
			_exit(2);
		printf("%s", dev);
		finish_helper(mode + 5);
	}
	_exit(4);
}

/* Run this binary in helper mode MODE with ARG; its stdout (malloc'd). */
static char *run_helper(const char *mode, const char *arg, int want_status)
{
	char *self = realpath("/proc/self/exe", NULL);
	char *env_mode = harness_strdup_printf("TEST_HARNESS_HELPER=%s", mode);
	char *env_arg = harness_strdup_printf("TEST_HARNESS_HELPER_ARG=%s", arg);
	const char *envadd[] = { env_mode, env_arg, NULL };
	const char *argv[] = { self, NULL };
	char *out = NULL, *err = NULL;
	int rc;

	cr_assert_not_null(self);
	rc = harness_run(argv, envadd, &out, &err);
	cr_assert_eq(rc, want_status, "helper %s: exit %d\n%s", mode, rc, err);
	cr_assert_neq(out[0], '\0', "helper %s printed nothing", mode);
	free(err);
	free(env_arg);
	free(env_mode);
	free(self);
	return out;
}

/* ---------------------------------------------------------------------
 * PostgreSQL */

Test(pg, start_answers_libpq_and_keeps_rows)
{
	struct harness_pg pg;
	char *v, *sock;
	struct stat st;
	PGconn *c;

	cr_assert_eq(harness_pg_start(&pg, "solo"), 0);
	cr_assert_gt(pg.port, 0);
	cr_assert_str_eq(pg.user, "postgres");
	sock = harness_strdup_printf("%s/.s.PGSQL.%d", pg.socket_dir, pg.port);
	cr_assert_eq(stat(sock, &st), 0, "%s", sock);
	cr_assert(S_ISSOCK(st.st_mode));
	free(sock);

	c = connect_ok(&pg);
	v = query1(c, "SELECT version()");
	cr_assert_eq(strncmp(v, "PostgreSQL ", 11), 0, "version() = %s", v);
	free(v);
	assert_query(c, "SELECT current_user", "postgres");
	assert_query(c, "SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user", "true");
	assert_query(c, "SELECT current_database()", pg.dbname);
	assert_query(c, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace", "0");
	assert_query(c, "SHOW listen_addresses", "");
	assert_query(c, "SHOW fsync", "off");
	command_ok(c, "CREATE TABLE feed (id int PRIMARY KEY, name text NOT NULL)");
	command_ok(c, "INSERT INTO feed VALUES (1, 'nvd'), (2, 'ghsa'), (3, 'debian')");
	assert_query(c, "SELECT string_agg(name, ',' ORDER BY id) FROM feed", "nvd,ghsa,debian");
	PQfinish(c);

	cr_assert_eq(harness_pg_exec(&pg, "SELECT count(*) FROM feed", &v), 0);
	cr_assert_str_eq(v, "3");
	free(v);
	harness_pg_stop(&pg);
	cr_assert_null(pg.dir);
}

Test(pg, two_clusters_are_independent)
{
	struct harness_pg low, high;
	PGconn *cl, *ch;

	cr_assert_eq(harness_pg_start(&low, "low"), 0);
	cr_assert_eq(harness_pg_start(&high, "high"), 0);
	cr_assert_str_neq(low.dir, high.dir);
	cr_assert_str_neq(low.data_dir, high.data_dir);
	cr_assert_neq(low.port, high.port);

	cl = connect_ok(&low);
	ch = connect_ok(&high);
	command_ok(cl, "CREATE TABLE only_low (a int)");
	command_ok(cl, "INSERT INTO only_low VALUES (7)");
	assert_query(ch, "SELECT to_regclass('only_low') IS NULL", "t");
	command_ok(ch, "CREATE TABLE only_low (a int)");
	assert_query(ch, "SELECT count(*) FROM only_low", "0");
	assert_query(cl, "SELECT sum(a) FROM only_low", "7");
	PQfinish(cl);
	PQfinish(ch);

	harness_pg_stop(&low);
	/* Stopping one leaves the other running. */
	ch = connect_ok(&high);
	assert_query(ch, "SELECT 1", "1");
	PQfinish(ch);
	harness_pg_stop(&high);
}

Test(pg, kill_makes_it_unreachable_and_restart_brings_data_back)
{
	struct harness_pg pg;
	PGconn *c;
	char *v;
	int port;

	cr_assert_eq(harness_pg_start(&pg, "crash"), 0);
	port = pg.port;
	cr_assert_eq(harness_pg_exec(&pg, "CREATE TABLE t (a int); "
	                             "INSERT INTO t SELECT generate_series(1, 100)", NULL), 0);

	cr_assert_eq(harness_pg_kill(&pg), 0);
	c = PQconnectdb(pg.conninfo);
	cr_assert_eq(PQstatus(c), CONNECTION_BAD);
	PQfinish(c);
	cr_assert_neq(harness_pg_exec(&pg, "SELECT 1", NULL), 0);

	cr_assert_eq(harness_pg_restart(&pg), 0);
	cr_assert_eq(pg.port, port);
	cr_assert_eq(harness_pg_exec(&pg, "SELECT sum(a) FROM t", &v), 0);
	cr_assert_str_eq(v, "5050");
	free(v);
	/* restart on a running server restarts it */
	cr_assert_eq(harness_pg_restart(&pg), 0);
	c = connect_ok(&pg);
	assert_query(c, "SELECT count(*) FROM t", "100");
	PQfinish(c);
	harness_pg_stop(&pg);
}

Test(pg, stop_removes_the_directory_and_the_server)
{
	struct harness_pg pg;
	char *dir;
	pid_t pid;
	int i;

	cr_assert_eq(harness_pg_start(&pg, "gone"), 0);
	dir = strdup(pg.dir);
	cr_assert_not_null(dir);
	pid = postmaster_pid(&pg);
	cr_assert_str_eq(getenv("AIRLOCK_PG_GONE"), dir);
	harness_pg_stop(&pg);
	cr_assert(path_gone(dir), "%s still exists", dir);
	cr_assert_null(getenv("AIRLOCK_PG_GONE"));
	for (i = 0; i < REAP_WAIT_S * 10 && !pid_gone(pid); i++)
		sleep_ms(100);
	cr_assert(pid_gone(pid), "postmaster %ld still runs", (long)pid);
	free(dir);
	/* A second stop (or a stop of a zeroed struct) does nothing. */
	harness_pg_stop(&pg);
}

Test(pg, exec_returns_psql_status_on_sql_errors)
{
	struct harness_pg pg;
	char *v;

	cr_assert_eq(harness_pg_start(&pg, "sqlerr"), 0);
	cr_assert_neq(harness_pg_exec(&pg, "SELEC 1", &v), 0);
	cr_assert_str_eq(v, "");
	free(v);
	/* ON_ERROR_STOP: nothing after the failing statement runs */
	cr_assert_neq(harness_pg_exec(&pg, "CREATE TABLE a (x int); SELECT nope; "
	                              "CREATE TABLE b (x int)", NULL), 0);
	cr_assert_eq(harness_pg_exec(&pg, "SELECT to_regclass('b') IS NULL", &v), 0);
	cr_assert_str_eq(v, "t");
	free(v);
	harness_pg_stop(&pg);
}

Test(pg, bad_names_are_refused)
{
	struct harness_pg pg;

	cr_assert_eq(harness_pg_start(&pg, "../x"), -EINVAL);
	cr_assert_eq(harness_pg_start(&pg, ""), -EINVAL);
	cr_assert_eq(harness_pg_start(&pg, "1st"), -EINVAL);
	cr_assert_eq(harness_pg_shared(&pg, "a b"), -EINVAL);
	cr_assert_null(pg.dir);
}

/* A process that exits normally stops its clusters (atexit); one that dies
 * leaves them to the watcher. */
static void orphan_cluster(const char *how)
{
	char *mode = harness_strdup_printf("pg-%s", how);
	char *out, *dir;
	pid_t pm;
	int i;

	out = run_helper(mode, how, strcmp(how, "exit") == 0 ? 0 : 128 + SIGKILL);
	pm = (pid_t)strtol(out, &dir, 10);
	cr_assert_gt(pm, 1, "%s", out);
	cr_assert_eq(*dir, ' ');
	dir++;
	if (strcmp(how, "exit") == 0)
		cr_assert(path_gone(dir), "atexit left %s", dir);
	for (i = 0; i < REAP_WAIT_S * 10 && !(path_gone(dir) && pid_gone(pm)); i++)
		sleep_ms(100);
	cr_assert(path_gone(dir), "%s left behind", dir);
	cr_assert(pid_gone(pm), "postmaster %ld left running", (long)pm);
	free(out);
	free(mode);
}

Test(pg, cluster_is_stopped_when_its_process_exits)
{
	orphan_cluster("exit");
}

Test(pg, cluster_is_stopped_when_its_process_dies)
{
	orphan_cluster("kill");
}

/* A cluster per Test: .init starts it, .fini stops it. */
static struct harness_pg per_test;

static void per_test_init(void)
{
	cr_assert_eq(harness_pg_start(&per_test, "pertest"), 0);
}

static void per_test_fini(void)
{
	harness_pg_stop(&per_test);
}

TestSuite(pg_per_test, .init = per_test_init, .fini = per_test_fini);

Test(pg_per_test, first_test_has_its_own_cluster)
{
	cr_assert_eq(harness_pg_exec(&per_test, "CREATE TABLE mine (a int)", NULL), 0);
}

Test(pg_per_test, second_test_has_its_own_cluster)
{
	char *v;

	cr_assert_eq(harness_pg_exec(&per_test, "SELECT to_regclass('mine') IS NULL", &v), 0);
	cr_assert_str_eq(v, "t");
	free(v);
	cr_assert_eq(harness_pg_exec(&per_test, "CREATE TABLE mine (a int)", NULL), 0);
}

/* A cluster for the whole binary, started in the runner process. */
static struct harness_pg shared;

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (harness_pg_start(&shared, "shared") != 0)
		fprintf(stderr, "test-harness: the shared cluster did not start\n");
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	harness_pg_stop(&shared);
}

Test(pg_shared, tests_reach_the_runners_cluster)
{
	struct harness_pg pg;
	PGconn *c;
	char *v;

	cr_assert_eq(harness_pg_shared(&pg, "shared"), 0);
	cr_assert_eq(pg.owner, 0);
	c = connect_ok(&pg);
	assert_query(c, "SELECT current_database()", "airlock_test");
	PQfinish(c);
	/* stop in a Test only forgets the shared cluster */
	harness_pg_stop(&pg);
	cr_assert_eq(harness_pg_shared(&pg, "shared"), 0);
	cr_assert_eq(harness_pg_exec(&pg, "SELECT 40 + 2", &v), 0);
	cr_assert_str_eq(v, "42");
	free(v);
	harness_pg_setenv(&pg);
	cr_assert_str_eq(getenv("PGHOST"), pg.socket_dir);
	cr_assert_str_eq(getenv("PGDATABASE"), "airlock_test");
	harness_pg_stop(&pg);
}

Test(pg_shared, unknown_name_is_enoent)
{
	struct harness_pg pg;

	cr_assert_eq(harness_pg_shared(&pg, "nosuchcluster"), -ENOENT);
}

/* ---------------------------------------------------------------------
 * Loop devices */

/* A new 4 MiB image of zeros in the scratch directory (malloc'd path). */
static char *make_image(const char *tag)
{
	char *path = harness_strdup_printf("%s/%s.XXXXXX.img", harness_scratch(), tag);
	int fd;

	fd = mkstemps(path, 4);
	cr_assert_geq(fd, 0, "mkstemps %s: %s", path, strerror(errno));
	cr_assert_eq(ftruncate(fd, IMAGE_SIZE), 0);
	cr_assert_eq(close(fd), 0);
	return path;
}

/* The devices losetup associates with image ("" when none). */
static char *losetup_j(const char *image)
{
	const char *argv[] = { "losetup", "-j", image, NULL };
	char *out = NULL;

	cr_assert_eq(harness_run(argv, NULL, &out, NULL), 0);
	return out;
}

static void fill_pattern(unsigned char *buf, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 31u + seed) ^ (i >> 8));
}

Test(loop, pattern_written_through_the_device_reaches_the_image)
{
	enum { OFF = (1 << 20) + 4096, LEN = 256 * 1024 };
	unsigned char *pat;
	char *image, *dev, *data, *j;
	uint64_t size = 0;
	size_t len, i;
	int fd;

	harness_loop_require();
	image = make_image("rw");
	cr_assert_eq(harness_loop_attach(image, 0, &dev), 0);
	cr_assert_eq(strncmp(dev, "/dev/loop", 9), 0, "%s", dev);
	j = losetup_j(image);
	cr_assert_not_null(strstr(j, dev), "losetup -j: %s", j);
	free(j);

	fd = open(dev, O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", dev, strerror(errno));
	cr_assert_eq(ioctl(fd, BLKGETSIZE64, &size), 0);
	cr_assert_eq(size, IMAGE_SIZE);
	pat = malloc(LEN);
	cr_assert_not_null(pat);
	fill_pattern(pat, LEN, 0x5a);
	cr_assert_eq(pwrite(fd, pat, LEN, OFF), (ssize_t)LEN);
	cr_assert_eq(fsync(fd), 0);
	cr_assert_eq(close(fd), 0);
	harness_loop_detach(dev);
	j = losetup_j(image);
	cr_assert_str_eq(j, "");
	free(j);

	data = harness_read_file(image, &len);
	cr_assert_not_null(data);
	cr_assert_eq(len, IMAGE_SIZE);
	cr_assert_eq(memcmp(data + OFF, pat, LEN), 0, "pattern differs in the image");
	for (i = 0; i < len; i++)
		if ((i < OFF || i >= OFF + LEN) && data[i] != 0)
			break;
	cr_assert_eq(i, len, "byte %zu outside the pattern changed", i);
	free(data);
	free(pat);
	free(dev);
	free(image);
}

Test(loop, read_only_attach_refuses_writes)
{
	unsigned char buf[4096];
	char *image, *dev, *data;
	int fd, ro = 0;
	size_t len, i;
	ssize_t n;

	harness_loop_require();
	image = make_image("ro");
	cr_assert_eq(harness_loop_attach(image, 1, &dev), 0);
	fd = open(dev, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ioctl(fd, BLKROGET, &ro), 0);
	cr_assert_eq(ro, 1);
	close(fd);

	memset(buf, 0xa5, sizeof(buf));
	fd = open(dev, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		cr_assert(errno == EROFS || errno == EPERM || errno == EACCES,
		          "open for writing: %s", strerror(errno));
	} else {
		n = pwrite(fd, buf, sizeof(buf), 0);
		cr_assert_eq(n, -1, "a read-only loop device took a write");
		cr_assert(errno == EROFS || errno == EPERM, "pwrite: %s", strerror(errno));
		close(fd);
	}
	harness_loop_detach(dev);
	data = harness_read_file(image, &len);
	cr_assert_not_null(data);
	for (i = 0; i < len && data[i] == 0; i++)
		;
	cr_assert_eq(i, len, "the image changed");
	free(data);
	free(dev);
	free(image);
}

Test(loop, ten_devices_at_once_each_get_a_node)
{
	enum { N = 10 };
	char *images[N], *devs[N], *j;
	struct stat st;
	int i, k;

	harness_loop_require();
	for (i = 0; i < N; i++) {
		images[i] = make_image("many");
		cr_assert_eq(harness_loop_attach(images[i], 0, &devs[i]), 0, "image %d", i);
		cr_assert_eq(stat(devs[i], &st), 0, "%s: %s", devs[i], strerror(errno));
		cr_assert(S_ISBLK(st.st_mode), "%s is not a block device", devs[i]);
		for (k = 0; k < i; k++)
			cr_assert_str_neq(devs[i], devs[k]);
	}
	for (i = 0; i < N; i++) {
		harness_loop_detach(devs[i]);
		j = losetup_j(images[i]);
		cr_assert_str_eq(j, "", "%s still attached: %s", images[i], j);
		free(j);
		free(devs[i]);
		free(images[i]);
	}
}

static void orphan_device(const char *how)
{
	char *mode = harness_strdup_printf("loop-%s", how);
	char *image, *dev, *j;
	int i;

	image = make_image(how);
	dev = run_helper(mode, image, strcmp(how, "exit") == 0 ? 0 : 128 + SIGKILL);
	cr_assert_eq(strncmp(dev, "/dev/loop", 9), 0, "%s", dev);
	j = losetup_j(image);
	if (strcmp(how, "exit") == 0)
		cr_assert_str_eq(j, "", "atexit left %s", j);
	for (i = 0; i < REAP_WAIT_S * 10 && *j; i++) {
		free(j);
		sleep_ms(100);
		j = losetup_j(image);
	}
	cr_assert_str_eq(j, "", "left attached: %s", j);
	free(j);
	free(dev);
	free(image);
	free(mode);
}

Test(loop, device_is_detached_when_its_process_exits)
{
	harness_loop_require();
	orphan_device("exit");
}

Test(loop, device_is_detached_when_its_process_dies)
{
	harness_loop_require();
	orphan_device("kill");
}
