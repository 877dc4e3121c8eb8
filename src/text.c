#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

size_t text_utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned int cp;
	size_t len, i;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1fu;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0fu;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07u;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int text_is_printable_utf8(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, len;

	while (i < n) {
		len = text_utf8_seq_len(s + i, n - i);
		if (len == 0)
			return 0;
		if (len == 1 && (s[i] < 0x20 || s[i] == 0x7f))
			return 0;
		/* C1 controls U+0080..U+009F are encoded as C2 80..C2 9F. */
		if (len == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0)
			return 0;
		i += len;
	}
	return 1;
}

void text_hex_encode(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

static int hex_value(char c, int allow_upper)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (allow_upper && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int text_hex_decode(uint8_t *out, size_t n, const char *hex, size_t hexlen, int allow_upper)
{
	size_t i;
	int hi, lo;

	if (n > SIZE_MAX / 2 || hexlen != 2 * n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		hi = hex_value(hex[2 * i], allow_upper);
		lo = hex_value(hex[2 * i + 1], allow_upper);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)((hi << 4) | lo);
	}
	return 0;
}

int text_parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -EINVAL;
	if (s[0] == '0' && n > 1)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		unsigned int d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned int)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

char *text_memdup(const char *s, size_t n)
{
	char *copy;

	if (n == SIZE_MAX)
		return NULL;
	copy = malloc(n + 1);
	if (!copy)
		return NULL;
	memcpy(copy, s, n);
	copy[n] = '\0';
	return copy;
}

void text_buf_addn(struct text_buf *b, const char *s, size_t n)
{
	if (b->bad)
		return;
	if (n > SIZE_MAX / 4) {
		b->bad = 1;
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1) {
			if (cap > SIZE_MAX / 2) {
				b->bad = 1;
				return;
			}
			cap *= 2;
		}
		p = realloc(b->s, cap);
		if (!p) {
			b->bad = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void text_buf_add(struct text_buf *b, const char *s)
{
	text_buf_addn(b, s, strlen(s));
}

void text_buf_printf(struct text_buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		b->bad = 1;
	else
		text_buf_addn(b, tmp, (size_t)n);
}
