#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "harness_gpg.h"

/* Set in the process that ran gpgkeys.sh: only it stops the agents. */
static pid_t generator_pid;
static char generated_dir[HARNESS_PATH_SIZE];

static int copy_field(char *dst, size_t size, const char *val)
{
	size_t n = strlen(val);

	if (n >= size)
		return -1;
	memcpy(dst, val, n + 1);
	return 0;
}

static int parse_env(struct harness_keys *k, const char *text)
{
	static const struct {
		const char *name;
		size_t off;
		size_t size;
	} fields[] = {
#define F(n, m) { n, offsetof(struct harness_keys, m), sizeof(((struct harness_keys *)0)->m) }
		F("GPGKEYS_SIGNER_HOME", signer_home),
		F("GPGKEYS_KEYRING_HOME", keyring_home),
		F("SIGNER1_FPR", signer1),
		F("SIGNER2_FPR", signer2),
		F("SIGNER3_FPR", signer3),
		F("SIGNER3_SUBKEY_FPR", signer3_subkey),
		F("SIGNER3_SUBKEY2_FPR", signer3_subkey2),
		F("REVOKED_FPR", revoked),
		F("EXPIRED_FPR", expired),
		F("UNTRUSTED_FPR", untrusted),
		F("UNKNOWN_FPR", unknown),
		F("ENCRONLY_FPR", encronly),
		F("ENCRONLY_SUBKEY_FPR", encronly_subkey),
#undef F
	};
	const size_t nf = sizeof(fields) / sizeof(fields[0]);
	unsigned int seen = 0;
	const char *line = text;
	size_t i;

	while (*line) {
		const char *eol = strchr(line, '\n');
		const char *eq = strchr(line, '=');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		char val[HARNESS_PATH_SIZE];

		if (eq && (size_t)(eq - line) < len &&
		    len - (size_t)(eq - line) - 1 < sizeof(val)) {
			size_t vlen = len - (size_t)(eq - line) - 1;

			/* Paths are single-quoted for sh. */
			if (vlen >= 2 && eq[1] == '\'' && eq[vlen] == '\'') {
				memcpy(val, eq + 2, vlen - 2);
				vlen -= 2;
			} else {
				memcpy(val, eq + 1, vlen);
			}
			val[vlen] = '\0';
			for (i = 0; i < nf; i++) {
				if (strlen(fields[i].name) != (size_t)(eq - line) ||
				    memcmp(fields[i].name, line, (size_t)(eq - line)) != 0)
					continue;
				if (copy_field((char *)k + fields[i].off, fields[i].size, val) < 0)
					return -1;
				seen |= 1u << i;
			}
		}
		line += len;
		if (*line == '\n')
			line++;
	}
	return seen == (1u << nf) - 1 ? 0 : -1;
}

static void kill_agents(const char *dir)
{
	static const char *const homes[] = { "signer", "keyring" };
	size_t i;

	for (i = 0; i < sizeof(homes) / sizeof(homes[0]); i++) {
		char *home = harness_strdup_printf("%s/%s", dir, homes[i]);
		const char *argv[] = { "gpgconf", "--homedir", home, "--kill", "all", NULL };

		harness_run(argv, NULL, NULL, NULL);
		free(home);
	}
}

void harness_gpg_cleanup(void)
{
	if (generator_pid != getpid() || !generated_dir[0])
		return;
	kill_agents(generated_dir);
}

static int script_path(struct harness_keys *k)
{
	const char *h = getenv("AIRLOCK_HARNESS");
	int n;

	if (h && *h)
		n = snprintf(k->script, sizeof(k->script), "%s/gpgkeys.sh", h);
	else
		n = snprintf(k->script, sizeof(k->script), "%s/tests/harness/gpgkeys.sh",
		             harness_srcdir());
	return n > 0 && (size_t)n < sizeof(k->script) ? 0 : -1;
}

int harness_gpg_keys(struct harness_keys *k)
{
	const char *scratch = harness_scratch();
	char *lock = NULL, *envf = NULL, *text = NULL, *err = NULL;
	int fd = -1, rc = -1, st;
	struct stat sb;

	memset(k, 0, sizeof(*k));
	/* Forked tests must find the keys of this run, not make their own. */
	if (setenv("AIRLOCK_SCRATCH", scratch, 0) < 0)
		return -1;
	if (script_path(k) < 0)
		return -1;
	if ((size_t)snprintf(k->dir, sizeof(k->dir), "%s/gpgkeys", scratch) >= sizeof(k->dir)) {
		fprintf(stderr, "harness_gpg: scratch path too long\n");
		return -1;
	}
	lock = harness_strdup_printf("%s/gpgkeys.lock", scratch);
	envf = harness_strdup_printf("%s/keys.env", k->dir);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		fprintf(stderr, "harness_gpg: %s: %s\n", lock, strerror(errno));
		goto out;
	}
	if (stat(envf, &sb) < 0) {
		const char *rm[] = { "rm", "-rf", k->dir, NULL };
		const char *gen[] = { "sh", k->script, k->dir, NULL };

		/* A half-made directory from an interrupted run goes. */
		harness_run(rm, NULL, NULL, NULL);
		st = harness_run(gen, NULL, NULL, &err);
		if (st != 0) {
			fprintf(stderr, "harness_gpg: %s %s failed (%d):\n%s", k->script,
			        k->dir, st, err ? err : "");
			goto out;
		}
		if (!generator_pid) {
			generator_pid = getpid();
			snprintf(generated_dir, sizeof(generated_dir), "%s", k->dir);
			atexit(harness_gpg_cleanup);
		}
	}
	text = harness_read_file(envf, NULL);
	if (!text || parse_env(k, text) < 0) {
		fprintf(stderr, "harness_gpg: %s is missing or incomplete\n", envf);
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(lock);
	free(envf);
	free(text);
	free(err);
	return rc;
}

int harness_gpg_fixture(const struct harness_keys *k, const char *kind,
                        const char *fpr, const char *in, const char *out)
{
	const char *argv[] = { "sh", k->script, "sign", k->dir, kind, fpr, in, out, NULL };
	char *err = NULL;
	int st;

	st = harness_run(argv, NULL, NULL, &err);
	if (st != 0)
		fprintf(stderr, "harness_gpg: fixture %s by %s failed (%d):\n%s",
		        kind, fpr, st, err ? err : "");
	free(err);
	return st == 0 ? 0 : -1;
}
