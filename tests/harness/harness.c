#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

static char *scratch_dir;
static int scratch_owned;

static void harness_die(const char *what)
{
	fprintf(stderr, "harness: %s: %s\n", what, strerror(errno));
	abort();
}

static void scratch_cleanup(void)
{
	const char *argv[] = { "rm", "-rf", scratch_dir, NULL };

	if (scratch_owned && scratch_dir && !getenv("AIRLOCK_KEEP_SCRATCH"))
		harness_run(argv, NULL, NULL, NULL);
}

const char *harness_scratch(void)
{
	const char *env;
	char tmpl[] = "/tmp/airlock-test.XXXXXX";

	if (scratch_dir)
		return scratch_dir;
	env = getenv("AIRLOCK_SCRATCH");
	if (env && *env) {
		scratch_dir = strdup(env);
		if (!scratch_dir)
			harness_die("strdup");
		return scratch_dir;
	}
	if (!mkdtemp(tmpl))
		harness_die("mkdtemp");
	if (chmod(tmpl, 0711) < 0)
		harness_die("chmod");
	scratch_dir = strdup(tmpl);
	if (!scratch_dir)
		harness_die("strdup");
	scratch_owned = 1;
	atexit(scratch_cleanup);
	return scratch_dir;
}

char *harness_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		harness_die("vasprintf");
	return s;
}

char *harness_mkdir(const char *name, unsigned int mode)
{
	char *path = harness_strdup_printf("%s/%s", harness_scratch(), name);

	if (mkdir(path, (mode_t)mode) < 0 && errno != EEXIST)
		harness_die(path);
	if (chmod(path, (mode_t)mode) < 0)
		harness_die(path);
	return path;
}

static const char *env_or_cwd(const char *name, char **cache)
{
	const char *env = getenv(name);

	if (*cache)
		return *cache;
	if (env && *env)
		*cache = strdup(env);
	else
		*cache = getcwd(NULL, 0);
	if (!*cache)
		harness_die(name);
	return *cache;
}

const char *harness_srcdir(void)
{
	static char *cache;

	return env_or_cwd("AIRLOCK_SRCDIR", &cache);
}

const char *harness_builddir(void)
{
	static char *cache;

	return env_or_cwd("AIRLOCK_BUILDDIR", &cache);
}

struct capture {
	int fd;
	char *buf;
	size_t len, cap;
};

static void capture_read(struct capture *c)
{
	char tmp[8192];
	ssize_t n;

	n = read(c->fd, tmp, sizeof(tmp));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	if (c->len + (size_t)n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16384;
		char *nb;

		while (cap < c->len + (size_t)n + 1)
			cap *= 2;
		nb = realloc(c->buf, cap);
		if (!nb)
			harness_die("realloc");
		c->buf = nb;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, tmp, (size_t)n);
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
}

static char **build_env(const char *const envadd[])
{
	size_t n = 0, k = 0, i;
	char **env;

	while (environ[n])
		n++;
	while (envadd && envadd[k])
		k++;
	env = calloc(n + k + 1, sizeof(*env));
	if (!env)
		harness_die("calloc");
	for (i = 0; i < k; i++)
		env[i] = (char *)(uintptr_t)envadd[i];
	for (i = 0; i < n; i++)
		env[k + i] = environ[i];
	return env;
}

int harness_run(const char *const argv[], const char *const envadd[],
                char **out, char **err)
{
	posix_spawn_file_actions_t fa;
	int pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	struct capture cap[2];
	char **env;
	pid_t pid;
	int status, rc;

	memset(cap, 0, sizeof(cap));
	if (pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)
		harness_die("pipe2");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pout[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, perr[1], STDERR_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	env = build_env(envadd);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)(uintptr_t)argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	close(pout[1]);
	close(perr[1]);
	if (rc != 0) {
		close(pout[0]);
		close(perr[0]);
		return -1;
	}
	cap[0].fd = pout[0];
	cap[1].fd = perr[0];
	while (cap[0].fd >= 0 || cap[1].fd >= 0) {
		struct pollfd pfd[2];
		int i;

		for (i = 0; i < 2; i++) {
			pfd[i].fd = cap[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			harness_die("poll");
		}
		for (i = 0; i < 2; i++)
			if (cap[i].fd >= 0 && pfd[i].revents)
				capture_read(&cap[i]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			harness_die("waitpid");
	if (out)
		*out = cap[0].buf ? cap[0].buf : strdup("");
	else
		free(cap[0].buf);
	if (err)
		*err = cap[1].buf ? cap[1].buf : strdup("");
	else
		free(cap[1].buf);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

void harness_write_file(const char *path, const void *data, size_t len)
{
	const char *p = data;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		harness_die(path);
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			harness_die(path);
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0)
		harness_die(path);
}

char *harness_read_file(const char *path, size_t *len)
{
	struct capture c;
	int fd;

	memset(&c, 0, sizeof(c));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	c.fd = fd;
	while (c.fd >= 0)
		capture_read(&c);
	if (!c.buf) {
		c.buf = strdup("");
		if (!c.buf)
			harness_die("strdup");
	}
	if (len)
		*len = c.len;
	return c.buf;
}
