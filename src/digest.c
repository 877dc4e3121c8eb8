#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gcrypt.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "digest.h"
#include "text.h"

/* The oldest libgcrypt configure accepts. */
#define DIGEST_GCRYPT_MIN "1.9.0"

struct digest {
	gcry_md_hd_t h;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result;

static void library_init_once(void)
{
	if (!gcry_check_version(DIGEST_GCRYPT_MIN)) {
		init_result = -ENOTSUP;
		return;
	}
	/* Someone else in the process (a library) may have finished it. */
	if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P))
		return;
	gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
	gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
}

int digest_library_init(struct alerr *e)
{
	int r = pthread_once(&init_once, library_init_once);

	if (r != 0)
		return alerr_set(e, ALERR_SOFTWARE, -r, "digest.library",
		                 "cannot initialise libgcrypt: %s", strerror(r));
	if (init_result < 0)
		return alerr_set(e, ALERR_SOFTWARE, init_result, "digest.library",
		                 "libgcrypt %s is older than the %s airlock needs",
		                 gcry_check_version(NULL), DIGEST_GCRYPT_MIN);
	return 0;
}

int digest_new(struct digest **out, struct alerr *e)
{
	struct digest *d;
	gcry_error_t err;
	int r;

	*out = NULL;
	r = digest_library_init(e);
	if (r < 0)
		return r;
	d = calloc(1, sizeof(*d));
	if (!d)
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "digest.memory",
		                 "SHA-256: out of memory");
	err = gcry_md_open(&d->h, GCRY_MD_SHA256, 0);
	if (err) {
		free(d);
		return alerr_set(e, ALERR_OSERR, -ENOMEM, "digest.library",
		                 "SHA-256: %s", gcry_strerror(err));
	}
	*out = d;
	return 0;
}

void digest_update(struct digest *d, const void *buf, size_t len)
{
	if (len > 0)
		gcry_md_write(d->h, buf, len);
}

void digest_final(struct digest *d, uint8_t out[DIGEST_SHA256_LEN])
{
	const unsigned char *md;

	gcry_md_final(d->h);
	md = gcry_md_read(d->h, GCRY_MD_SHA256);
	memcpy(out, md, DIGEST_SHA256_LEN);
}

void digest_reset(struct digest *d)
{
	gcry_md_reset(d->h);
}

void digest_free(struct digest *d)
{
	if (!d)
		return;
	gcry_md_close(d->h);
	free(d);
}

int digest_buffer(const void *buf, size_t len, uint8_t out[DIGEST_SHA256_LEN])
{
	int r = digest_library_init(NULL);

	if (r < 0)
		return r;
	gcry_md_hash_buffer(GCRY_MD_SHA256, out, len > 0 ? buf : "", len);
	return 0;
}

/* A non-blocking pipe may have nothing yet: wait for it. */
static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (poll(&p, 1, -1) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int digest_fd(int fd, uint64_t max_bytes, uint8_t out[DIGEST_SHA256_LEN],
              uint64_t *nread, struct alerr *e)
{
	struct digest *d = NULL;
	unsigned char *buf = NULL;
	uint64_t total = 0;
	int r;

	if (nread)
		*nread = 0;
	r = digest_new(&d, e);
	if (r < 0)
		return r;
	buf = malloc(IO_BUFFER_SIZE);
	if (!buf) {
		r = alerr_set(e, ALERR_OSERR, -ENOMEM, "digest.memory",
		              "SHA-256: out of memory");
		goto out;
	}
	for (;;) {
		uint64_t left = max_bytes - total;
		size_t want;
		ssize_t n;

		/* Ask for one byte past the limit at most, to see it crossed. */
		want = left >= IO_BUFFER_SIZE ? IO_BUFFER_SIZE : (size_t)left + 1;
		n = read(fd, buf, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				r = wait_readable(fd);
				if (r == 0)
					continue;
			} else {
				r = -errno;
			}
			r = alerr_set(e, ALERR_IOERR, r, "io.read",
			              "read failed after %llu bytes: %s",
			              (unsigned long long)total, strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > max_bytes) {
			r = alerr_set(e, ALERR_REJECT, -EFBIG, "size.limit",
			              "more than the limit of %llu bytes",
			              (unsigned long long)max_bytes);
			goto out;
		}
		digest_update(d, buf, (size_t)n);
	}
	digest_final(d, out);
	r = 0;
out:
	if (nread)
		*nread = total;
	free(buf);
	digest_free(d);
	return r;
}

int digest_file(const char *path, uint64_t max_bytes, uint8_t out[DIGEST_SHA256_LEN],
                uint64_t *nread, struct alerr *e)
{
	struct stat st;
	int fd, r;

	if (nread)
		*nread = 0;
	/* O_NONBLOCK: opening a FIFO must not hang; it is refused below. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			return alerr_set(e, ALERR_NOINPUT, r, "file.missing",
			                 "%s: no such file", path);
		if (r == -ELOOP)
			return alerr_set(e, ALERR_REJECT, r, "file.symlink",
			                 "%s: is a symbolic link, refused", path);
		return alerr_set(e, ALERR_IOERR, r, "io.open", "%s: cannot open: %s",
		                 path, strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		alerr_set(e, ALERR_IOERR, r, "io.open", "%s: cannot stat: %s",
		          path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = alerr_set(e, ALERR_REJECT, -EINVAL, "file.not_regular",
		              "%s: not a regular file, refused", path);
		goto out;
	}
	r = digest_fd(fd, max_bytes, out, nread, e);
	if (r < 0)
		alerr_prefix(e, "%s: ", path);
out:
	close(fd);
	return r;
}

void digest_hex(char out[DIGEST_SHA256_HEX_LEN + 1], const uint8_t in[DIGEST_SHA256_LEN])
{
	text_hex_encode(out, in, DIGEST_SHA256_LEN);
}

int digest_from_hex(uint8_t out[DIGEST_SHA256_LEN], const char *hex, size_t len)
{
	if (len != DIGEST_SHA256_HEX_LEN)
		return -EINVAL;
	return text_hex_decode(out, DIGEST_SHA256_LEN, hex, len, 0);
}

int digest_equal(const uint8_t a[DIGEST_SHA256_LEN], const uint8_t b[DIGEST_SHA256_LEN])
{
	volatile uint8_t diff = 0;
	size_t i;

	for (i = 0; i < DIGEST_SHA256_LEN; i++)
		diff |= (uint8_t)(a[i] ^ b[i]);
	return diff == 0;
}
