/* digest: SHA-256 known answers, streaming, fds, files, limits, hex. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alerr.h"
#include "bounds.h"
#include "digest.h"
#include "harness.h"

/* FIPS 180-2 appendix B and the NIST example vectors. */
static const char msg448[] =
	"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char msg896[] =
	"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
	"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

static const struct {
	const char *msg;
	const char *hex;
} kat[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ msg448, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	{ msg896, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
};
static const char million_a_hex[] =
	"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

static void init(void)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(digest_library_init(&e), 0, "%s", e.message);
}

TestSuite(digest, .init = init);

static void assert_hex(const uint8_t md[DIGEST_SHA256_LEN], const char *want)
{
	char hex[DIGEST_SHA256_HEX_LEN + 1];

	digest_hex(hex, md);
	cr_assert_str_eq(hex, want);
}

/* Deterministic filler so failures reproduce. */
static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

static char *scratch_path(const char *name)
{
	return harness_strdup_printf("%s/%s", harness_scratch(), name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	unlink(path);
	harness_write_file(path, data, len);
}

Test(digest, library_init_is_idempotent)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(digest_library_init(&e), 0);
	cr_assert_eq(digest_library_init(&e), 0);
	cr_assert_not(alerr_failed(&e));
}

Test(digest, known_answers_one_buffer)
{
	uint8_t md[DIGEST_SHA256_LEN];
	size_t i;

	for (i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		cr_assert_eq(digest_buffer(kat[i].msg, strlen(kat[i].msg), md), 0);
		assert_hex(md, kat[i].hex);
	}
	cr_assert_eq(digest_buffer(NULL, 0, md), 0);
	assert_hex(md, kat[0].hex);
}

Test(digest, known_answers_streamed)
{
	struct digest *d;
	uint8_t md[DIGEST_SHA256_LEN];
	size_t i, j;

	cr_assert_eq(digest_new(&d, NULL), 0);
	for (i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		for (j = 0; kat[i].msg[j]; j++)
			digest_update(d, kat[i].msg + j, 1);
		digest_final(d, md);
		assert_hex(md, kat[i].hex);
		digest_reset(d);
	}
	digest_free(d);
}

Test(digest, known_answer_one_million_a)
{
	struct digest *d;
	uint8_t md[DIGEST_SHA256_LEN];
	char *buf;
	int i;

	buf = malloc(1000000);
	cr_assert_not_null(buf);
	memset(buf, 'a', 1000000);
	cr_assert_eq(digest_buffer(buf, 1000000, md), 0);
	assert_hex(md, million_a_hex);

	cr_assert_eq(digest_new(&d, NULL), 0);
	for (i = 0; i < 1000; i++)
		digest_update(d, buf, 1000);
	digest_final(d, md);
	assert_hex(md, million_a_hex);
	digest_free(d);
	free(buf);
}

Test(digest, any_split_gives_the_same_digest)
{
	static const size_t splits[] = { 1, 2, 3, 7, 55, 56, 63, 64, 65, 127, 128,
	                                 1000, 4096, 65535, 65537, 200003 };
	const size_t len = 300007;
	uint8_t whole[DIGEST_SHA256_LEN], md[DIGEST_SHA256_LEN];
	struct digest *d;
	uint8_t *buf;
	size_t s, off;

	buf = malloc(len);
	cr_assert_not_null(buf);
	fill(buf, len, 42);
	cr_assert_eq(digest_buffer(buf, len, whole), 0);
	cr_assert_eq(digest_new(&d, NULL), 0);
	for (s = 0; s < sizeof(splits) / sizeof(splits[0]); s++) {
		for (off = 0; off < len; off += splits[s]) {
			size_t n = len - off < splits[s] ? len - off : splits[s];

			digest_update(d, buf + off, 0);
			digest_update(d, buf + off, n);
		}
		digest_update(d, buf, 0);
		digest_final(d, md);
		cr_assert(digest_equal(md, whole), "split %zu differs", splits[s]);
		digest_reset(d);
	}
	/* Growing, irregular pieces. */
	for (off = 0, s = 1; off < len; off += s, s = s * 3 + 1) {
		size_t n = len - off < s ? len - off : s;

		digest_update(d, buf + off, n);
	}
	digest_final(d, md);
	cr_assert(digest_equal(md, whole));
	digest_free(d);
	free(buf);
}

Test(digest, fd_on_a_file_from_its_current_position)
{
	const size_t len = 2 * IO_BUFFER_SIZE + 12345;
	uint8_t want[DIGEST_SHA256_LEN], md[DIGEST_SHA256_LEN];
	char *path = scratch_path("fd-file");
	struct alerr e;
	uint64_t nread;
	uint8_t *buf;
	int fd;

	buf = malloc(len);
	cr_assert_not_null(buf);
	fill(buf, len, 7);
	write_file(path, buf, len);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);

	alerr_clear(&e);
	cr_assert_eq(digest_fd(fd, UINT64_MAX, md, &nread, &e), 0, "%s", e.message);
	cr_assert_eq(nread, len);
	cr_assert_eq(digest_buffer(buf, len, want), 0);
	cr_assert(digest_equal(md, want));

	cr_assert_eq(lseek(fd, 1000, SEEK_SET), 1000);
	cr_assert_eq(digest_fd(fd, UINT64_MAX, md, &nread, &e), 0, "%s", e.message);
	cr_assert_eq(nread, len - 1000);
	cr_assert_eq(digest_buffer(buf + 1000, len - 1000, want), 0);
	cr_assert(digest_equal(md, want));
	close(fd);
	free(buf);
	free(path);
}

/* A child writes len bytes of fill(seed) into the pipe in odd pieces. */
static pid_t pipe_writer(int fds[2], size_t len, uint32_t seed)
{
	pid_t pid;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		uint8_t *buf = malloc(len);
		size_t off = 0, piece = 1;

		close(fds[0]);
		if (!buf)
			_exit(1);
		fill(buf, len, seed);
		while (off < len) {
			size_t n = len - off < piece ? len - off : piece;
			ssize_t w = write(fds[1], buf + off, n);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				_exit(1);
			off += (size_t)w;
			piece = piece * 2 + 3;
			if (piece > 300000)
				piece = 1;
		}
		_exit(0);
	}
	close(fds[1]);
	return pid;
}

Test(digest, fd_on_a_pipe)
{
	const size_t len = 3 * IO_BUFFER_SIZE / 2 + 77;
	uint8_t want[DIGEST_SHA256_LEN], md[DIGEST_SHA256_LEN];
	struct alerr e;
	uint64_t nread;
	uint8_t *buf;
	int fds[2], status;
	pid_t pid;

	pid = pipe_writer(fds, len, 99);
	alerr_clear(&e);
	cr_assert_eq(digest_fd(fds[0], len, md, &nread, &e), 0, "%s", e.message);
	cr_assert_eq(nread, len);
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	buf = malloc(len);
	cr_assert_not_null(buf);
	fill(buf, len, 99);
	cr_assert_eq(digest_buffer(buf, len, want), 0);
	cr_assert(digest_equal(md, want));
	free(buf);
}

Test(digest, pipe_over_the_limit_is_refused)
{
	uint8_t md[DIGEST_SHA256_LEN];
	struct alerr e;
	uint64_t nread;
	int fds[2];
	pid_t pid;

	pid = pipe_writer(fds, 100000, 5);
	alerr_clear(&e);
	cr_assert_eq(digest_fd(fds[0], 99999, md, &nread, &e), -EFBIG);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_assert_str_eq(e.reason, "size.limit");
	cr_assert_eq(nread, 100000);
	close(fds[0]);
	waitpid(pid, NULL, 0);
}

Test(digest, file_exactly_at_the_limit_passes)
{
	const size_t len = IO_BUFFER_SIZE + 1;
	uint8_t want[DIGEST_SHA256_LEN], md[DIGEST_SHA256_LEN];
	char *path = scratch_path("at-limit");
	struct alerr e;
	uint64_t nread;
	uint8_t *buf;

	buf = malloc(len);
	cr_assert_not_null(buf);
	fill(buf, len, 3);
	write_file(path, buf, len);
	alerr_clear(&e);
	cr_assert_eq(digest_file(path, len, md, &nread, &e), 0, "%s", e.message);
	cr_assert_eq(nread, len);
	cr_assert_eq(digest_buffer(buf, len, want), 0);
	cr_assert(digest_equal(md, want));
	free(buf);
	free(path);
}

Test(digest, file_one_byte_over_the_limit_is_refused)
{
	const size_t len = IO_BUFFER_SIZE + 1;
	uint8_t md[DIGEST_SHA256_LEN];
	char *path = scratch_path("over-limit");
	struct alerr e;
	uint64_t nread;
	uint8_t *buf;

	buf = calloc(1, len);
	cr_assert_not_null(buf);
	write_file(path, buf, len);
	alerr_clear(&e);
	cr_assert_eq(digest_file(path, len - 1, md, &nread, &e), -EFBIG);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_assert_str_eq(e.reason, "size.limit");
	cr_assert(strstr(e.message, path), "%s", e.message);
	cr_assert(strstr(e.message, "1048576 bytes"), "%s", e.message);
	cr_assert_eq(nread, len);
	free(buf);
	free(path);
}

Test(digest, empty_file_with_a_zero_limit)
{
	uint8_t md[DIGEST_SHA256_LEN];
	char *path = scratch_path("empty");
	uint64_t nread = 99;

	write_file(path, "", 0);
	cr_assert_eq(digest_file(path, 0, md, &nread, NULL), 0);
	cr_assert_eq(nread, 0);
	assert_hex(md, kat[0].hex);
	free(path);
}

Test(digest, file_refuses_a_symlink)
{
	uint8_t md[DIGEST_SHA256_LEN];
	char *target = scratch_path("link-target");
	char *link = scratch_path("link");
	struct alerr e;

	write_file(target, "abc", 3);
	unlink(link);
	cr_assert_eq(symlink(target, link), 0);
	alerr_clear(&e);
	cr_assert_eq(digest_file(link, 100, md, NULL, &e), -ELOOP);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_assert_str_eq(e.reason, "file.symlink");
	cr_assert(strstr(e.message, link), "%s", e.message);
	free(target);
	free(link);
}

Test(digest, file_refuses_a_directory)
{
	uint8_t md[DIGEST_SHA256_LEN];
	char *dir = harness_mkdir("a-directory", 0755);
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(digest_file(dir, 100, md, NULL, &e), -EINVAL);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_assert_str_eq(e.reason, "file.not_regular");
	cr_assert(strstr(e.message, dir), "%s", e.message);
	free(dir);
}

Test(digest, file_refuses_a_fifo_without_blocking)
{
	uint8_t md[DIGEST_SHA256_LEN];
	char *path = scratch_path("a-fifo");
	struct alerr e;

	unlink(path);
	cr_assert_eq(mkfifo(path, 0600), 0);
	alerr_clear(&e);
	cr_assert_eq(digest_file(path, 100, md, NULL, &e), -EINVAL);
	cr_assert_str_eq(e.reason, "file.not_regular");
	free(path);
}

Test(digest, file_missing)
{
	uint8_t md[DIGEST_SHA256_LEN];
	char *path = scratch_path("does-not-exist");
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(digest_file(path, 100, md, NULL, &e), -ENOENT);
	cr_assert_eq(e.cls, ALERR_NOINPUT);
	cr_assert_str_eq(e.reason, "file.missing");
	cr_assert(strstr(e.message, path), "%s", e.message);
	free(path);
}

Test(digest, fd_read_error)
{
	uint8_t md[DIGEST_SHA256_LEN];
	struct alerr e;
	int fd;

	/* A write-only descriptor cannot be read: EBADF. */
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	alerr_clear(&e);
	cr_assert_eq(digest_fd(fd, 100, md, NULL, &e), -EBADF);
	cr_assert_eq(e.cls, ALERR_IOERR);
	cr_assert_str_eq(e.reason, "io.read");
	close(fd);
}

Test(digest, hex_round_trip)
{
	uint8_t in[DIGEST_SHA256_LEN], out[DIGEST_SHA256_LEN];
	char hex[DIGEST_SHA256_HEX_LEN + 1];

	fill(in, sizeof(in), 11);
	digest_hex(hex, in);
	cr_assert_eq(strlen(hex), DIGEST_SHA256_HEX_LEN);
	cr_assert_eq(digest_from_hex(out, hex, strlen(hex)), 0);
	cr_assert_eq(memcmp(in, out, sizeof(in)), 0);
	cr_assert_eq(digest_from_hex(out, kat[1].hex, 64), 0);
	digest_hex(hex, out);
	cr_assert_str_eq(hex, kat[1].hex);
}

Test(digest, hex_rejects_upper_case)
{
	uint8_t out[DIGEST_SHA256_LEN];
	const char *upper =
		"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";

	cr_assert_eq(digest_from_hex(out, upper, strlen(upper)), -EINVAL);
	/* One upper-case digit is enough. */
	cr_assert_eq(digest_from_hex(out,
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015aD", 64),
		-EINVAL);
}

Test(digest, hex_rejects_wrong_lengths_and_non_hex)
{
	uint8_t out[DIGEST_SHA256_LEN];
	char buf[80];

	cr_assert_eq(digest_from_hex(out, kat[1].hex, 63), -EINVAL);
	cr_assert_eq(digest_from_hex(out, "", 0), -EINVAL);
	snprintf(buf, sizeof(buf), "%s0", kat[1].hex);
	cr_assert_eq(digest_from_hex(out, buf, strlen(buf)), -EINVAL);
	snprintf(buf, sizeof(buf), "%s", kat[1].hex);
	buf[10] = 'g';
	cr_assert_eq(digest_from_hex(out, buf, 64), -EINVAL);
	buf[10] = ' ';
	cr_assert_eq(digest_from_hex(out, buf, 64), -EINVAL);
}

Test(digest, equal_compares_every_byte)
{
	uint8_t a[DIGEST_SHA256_LEN], b[DIGEST_SHA256_LEN];
	size_t i;

	fill(a, sizeof(a), 1);
	memcpy(b, a, sizeof(b));
	cr_assert(digest_equal(a, b));
	for (i = 0; i < DIGEST_SHA256_LEN; i++) {
		b[i] ^= 0x80;
		cr_assert_not(digest_equal(a, b), "byte %zu", i);
		b[i] ^= 0x80;
	}
	cr_assert(digest_equal(a, b));
}

/* Hash path with sha256sum(1) and return its hex. */
static void sha256sum_of(const char *path, char hex[DIGEST_SHA256_HEX_LEN + 1])
{
	const char *argv[] = { "sha256sum", "--", path, NULL };
	char *out = NULL, *err = NULL;
	int rc;

	rc = harness_run(argv, NULL, &out, &err);
	cr_assert_eq(rc, 0, "sha256sum: %s", err ? err : "");
	cr_assert_geq(strlen(out), DIGEST_SHA256_HEX_LEN);
	memcpy(hex, out, DIGEST_SHA256_HEX_LEN);
	hex[DIGEST_SHA256_HEX_LEN] = '\0';
	free(out);
	free(err);
}

Test(digest, agrees_with_sha256sum_on_3_mib)
{
	const size_t len = 3u * 1024u * 1024u;
	char want[DIGEST_SHA256_HEX_LEN + 1], hex[DIGEST_SHA256_HEX_LEN + 1];
	uint8_t md[DIGEST_SHA256_LEN];
	char *path = scratch_path("three-mib");
	struct digest *d;
	struct alerr e;
	uint64_t nread;
	uint8_t *buf;
	size_t off;
	int fd;

	buf = malloc(len);
	cr_assert_not_null(buf);
	fill(buf, len, 2024);
	write_file(path, buf, len);
	sha256sum_of(path, want);

	alerr_clear(&e);
	cr_assert_eq(digest_file(path, len, md, &nread, &e), 0, "%s", e.message);
	cr_assert_eq(nread, len);
	digest_hex(hex, md);
	cr_assert_str_eq(hex, want);

	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(digest_fd(fd, UINT64_MAX, md, NULL, &e), 0, "%s", e.message);
	close(fd);
	digest_hex(hex, md);
	cr_assert_str_eq(hex, want);

	cr_assert_eq(digest_buffer(buf, len, md), 0);
	digest_hex(hex, md);
	cr_assert_str_eq(hex, want);

	cr_assert_eq(digest_new(&d, &e), 0);
	for (off = 0; off < len; off += 65521)
		digest_update(d, buf + off, len - off < 65521 ? len - off : 65521);
	digest_final(d, md);
	digest_free(d);
	digest_hex(hex, md);
	cr_assert_str_eq(hex, want);
	free(buf);
	free(path);
}

Test(digest, known_answers_agree_with_sha256sum)
{
	char want[DIGEST_SHA256_HEX_LEN + 1], hex[DIGEST_SHA256_HEX_LEN + 1];
	uint8_t md[DIGEST_SHA256_LEN];
	size_t i;

	for (i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
		char *path = harness_strdup_printf("%s/kat-%zu", harness_scratch(), i);

		write_file(path, kat[i].msg, strlen(kat[i].msg));
		sha256sum_of(path, want);
		cr_assert_str_eq(want, kat[i].hex);
		cr_assert_eq(digest_file(path, 1000, md, NULL, NULL), 0);
		digest_hex(hex, md);
		cr_assert_str_eq(hex, want);
		free(path);
	}
}
