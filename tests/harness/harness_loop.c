#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_loop.h"

/* Devices this process attached, for the atexit handler. */
struct loop_live {
	struct loop_live *next;
	char *dev;
	pid_t owner;
};

static struct loop_live *loop_live;
static int loop_atexit_registered;

static char *loop_script(void)
{
	const char *h = getenv("AIRLOCK_HARNESS");
	char *path;

	if (h && *h)
		path = harness_strdup_printf("%s/loop.sh", h);
	else
		path = harness_strdup_printf("%s/tests/harness/loop.sh", harness_srcdir());
	if (access(path, R_OK) < 0)
		fprintf(stderr, "harness: %s: %s (set AIRLOCK_HARNESS to the "
		        "tests/harness directory, or run through make check)\n",
		        path, strerror(errno));
	return path;
}

/* Run "sh loop.sh ARGS..." (at most 4 arguments, NULL-terminated). */
static int loop_script_run(const char *const args[], char **out, char **err)
{
	char *script = loop_script();
	const char *argv[7] = { "sh", script, NULL };
	size_t i;
	int rc;

	for (i = 0; i < 4 && args[i]; i++)
		argv[2 + i] = args[i];
	rc = harness_run(argv, NULL, out, err);
	free(script);
	return rc;
}

static void loop_live_remove(const char *dev)
{
	struct loop_live **pp = &loop_live;

	while (*pp) {
		struct loop_live *l = *pp;

		if (strcmp(l->dev, dev) == 0) {
			*pp = l->next;
			free(l->dev);
			free(l);
			return;
		}
		pp = &l->next;
	}
}

static void loop_detach_run(const char *dev)
{
	const char *args[] = { "detach", dev, NULL };
	char *err = NULL;
	int rc;

	rc = loop_script_run(args, NULL, &err);
	if (rc != 0)
		fprintf(stderr, "harness_loop: loop.sh detach %s: exit %d\n%s",
		        dev, rc, err ? err : "");
	free(err);
}

static void loop_atexit(void)
{
	while (loop_live) {
		struct loop_live *l = loop_live;

		loop_live = l->next;
		/* A fork()ed child inherits the list: only the owner detaches. */
		if (l->owner == getpid())
			loop_detach_run(l->dev);
		free(l->dev);
		free(l);
	}
}

void harness_loop_require(void)
{
	const char *args[] = { "require", NULL };
	char *err = NULL;
	int rc;

	rc = loop_script_run(args, NULL, &err);
	if (err) {
		size_t n = strlen(err);

		while (n > 0 && err[n - 1] == '\n')
			err[--n] = '\0';
	}
	if (rc == 77) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", err ? err : "loop devices unavailable");
		free(err);
		cr_skip_test("%s", msg);
	}
	if (rc != 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s (exit %d)", err ? err : "loop.sh require", rc);
		free(err);
		cr_assert_fail("%s", msg);
	}
	free(err);
}

int harness_loop_attach(const char *image, int read_only, char **dev_out)
{
	char pid[32];
	const char *args[5];
	char *out = NULL, *err = NULL;
	struct loop_live *l;
	size_t n, i = 0;
	int rc;

	*dev_out = NULL;
	/* First, so that its own atexit cleanup runs after ours. */
	(void)harness_scratch();
	if (!loop_atexit_registered) {
		if (atexit(loop_atexit) != 0)
			return -ENOMEM;
		loop_atexit_registered = 1;
	}
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	args[i++] = "attach";
	if (read_only)
		args[i++] = "--read-only";
	args[i++] = image;
	args[i++] = pid;
	args[i] = NULL;
	rc = loop_script_run(args, &out, &err);
	if (rc != 0) {
		fprintf(stderr, "harness_loop_attach(%s): loop.sh attach: exit %d\n%s",
		        image, rc, err ? err : "");
		free(out);
		free(err);
		return -EIO;
	}
	free(err);
	n = strlen(out);
	while (n > 0 && out[n - 1] == '\n')
		out[--n] = '\0';
	if (strncmp(out, "/dev/loop", 9) != 0 || strchr(out, '\n')) {
		fprintf(stderr, "harness_loop_attach(%s): unexpected output '%s'\n",
		        image, out);
		free(out);
		return -EPROTO;
	}
	l = calloc(1, sizeof(*l));
	if (l)
		l->dev = strdup(out);
	if (!l || !l->dev) {
		loop_detach_run(out);
		free(l);
		free(out);
		return -ENOMEM;
	}
	l->owner = getpid();
	l->next = loop_live;
	loop_live = l;
	*dev_out = out;
	return 0;
}

void harness_loop_detach(const char *dev)
{
	loop_detach_run(dev);
	loop_live_remove(dev);
}
