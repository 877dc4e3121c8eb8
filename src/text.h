/* Small text helpers shared by the parsers: UTF-8 validation, hex. */
#ifndef AIRLOCK_TEXT_H
#define AIRLOCK_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s (at most n > 0 bytes), or 0 when
 * it is invalid: overlong forms, surrogates and code points above
 * U+10FFFF are invalid. */
size_t text_utf8_seq_len(const unsigned char *s, size_t n);

/* 1 when s[0..n) is valid UTF-8 without C0/C1 control characters or DEL
 * (printable text for human fields), else 0. */
int text_is_printable_utf8(const char *s, size_t n);

/* Lower-case hex of n bytes into out, which must hold 2n+1 bytes. */
void text_hex_encode(char *out, const uint8_t *in, size_t n);

/* Decode exactly 2n hex digits (either case if allow_upper, else lower
 * case only) into n bytes. Returns 0, or -EINVAL. */
int text_hex_decode(uint8_t *out, size_t n, const char *hex, size_t hexlen, int allow_upper);

/* A NUL-terminated malloc'd copy of exactly n bytes of s (which need not
 * be NUL-terminated: parsers copy out of the middle of untrusted buffers,
 * where strndup's "stop at NUL" is not the contract). NULL when out of
 * memory. */
char *text_memdup(const char *s, size_t n);

/* Parse a decimal uint64 with no sign, no leading zeros (but "0"), no
 * spaces, at most max. Returns 0, -EINVAL or -ERANGE. */
int text_parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out);

/* A growing NUL-terminated string. Zero-initialize; append; a failed
 * allocation or an overflow sets bad (later appends do nothing), so one
 * check after the last append is enough. free(b.s) when done. */
struct text_buf {
	char *s;
	size_t len, cap;
	int bad;
};

void text_buf_addn(struct text_buf *b, const char *s, size_t n);
void text_buf_add(struct text_buf *b, const char *s);
/* At most 255 bytes of formatted text per call (more sets bad). */
void text_buf_printf(struct text_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
