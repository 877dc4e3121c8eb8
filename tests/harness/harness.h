/* Test harness shared by the Criterion tests: scratch directories, paths
 * into the source and build trees, and running real programs. The
 * services (PostgreSQL, GnuPG keys, loop devices) have their own headers:
 * harness_pg.h, harness_gpg.h, harness_loop.h. */
#ifndef AIRLOCK_HARNESS_H
#define AIRLOCK_HARNESS_H

#include <stddef.h>

/* The test's scratch directory ($AIRLOCK_SCRATCH, set by run-test, or a
 * new directory under /tmp removed at exit). Never NULL. */
const char *harness_scratch(void);

/* A new directory inside the scratch directory, with the given mode.
 * Returns a malloc'd path; aborts the test on failure. */
char *harness_mkdir(const char *name, unsigned int mode);

/* Absolute paths to the source and build trees ($AIRLOCK_SRCDIR and
 * $AIRLOCK_BUILDDIR, falling back to the current directory). */
const char *harness_srcdir(void);
const char *harness_builddir(void);

/* malloc'd printf; aborts the test on failure. */
char *harness_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run argv (argv[0] looked up in PATH) with an optional environment
 * addition ("NAME=value" strings, NULL-terminated, may be NULL). Captures
 * stdout into *out and stderr into *err when those are not NULL
 * (malloc'd, NUL-terminated). Returns the exit status, 128+signal for a
 * signal, or -1 when it could not be run. */
int harness_run(const char *const argv[], const char *const envadd[],
                char **out, char **err);

/* Write len bytes to a new file (mode 0644). Aborts the test on failure. */
void harness_write_file(const char *path, const void *data, size_t len);

/* Read a whole file into a malloc'd buffer (NUL-terminated; *len without
 * the NUL). Returns NULL when it cannot be read. */
char *harness_read_file(const char *path, size_t *len);

#endif
