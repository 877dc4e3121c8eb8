#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "sig_packet.h"

#define PKT_TAG_SIGNATURE 2u
#define SIGTYPE_BINARY    0x00u

static int fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -EBADMSG;
}

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Walk one subpacket area: each subpacket's length (RFC 4880 5.2.3.1)
 * must be non-zero and the subpackets must fill the area exactly. */
static int subpackets_ok(const uint8_t *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		size_t hlen, slen;
		uint8_t o = p[off];

		if (o < 192) {
			hlen = 1;
			slen = o;
		} else if (o < 255) {
			if (n - off < 2)
				return 0;
			hlen = 2;
			slen = ((size_t)(o - 192) << 8) + p[off + 1] + 192;
		} else {
			if (n - off < 5)
				return 0;
			hlen = 5;
			slen = be32(p + off + 1);
		}
		/* The length covers the type octet: at least 1. */
		if (slen == 0 || slen > n - off - hlen)
			return 0;
		off += hlen + slen;
	}
	return 1;
}

int sig_packet_check(const void *buf, size_t len, const char **why)
{
	const uint8_t *p = buf;
	size_t hdr, body_len, off, hashed, unhashed;
	const uint8_t *b;
	unsigned int tag;

	if (len == 0)
		return fail(why, "empty file");
	if (len > SIG_FILE_MAX_BYTES)
		return fail(why, "larger than a signature can be");
	if (!(p[0] & 0x80))
		return fail(why, "not a binary OpenPGP packet (armored or text?)");
	if (p[0] & 0x40) {
		/* New packet format. */
		tag = p[0] & 0x3fu;
		if (len < 2)
			return fail(why, "truncated packet header");
		if (p[1] < 192) {
			hdr = 2;
			body_len = p[1];
		} else if (p[1] < 224) {
			if (len < 3)
				return fail(why, "truncated packet header");
			hdr = 3;
			body_len = ((size_t)(p[1] - 192) << 8) + p[2] + 192;
		} else if (p[1] == 255) {
			if (len < 6)
				return fail(why, "truncated packet header");
			hdr = 6;
			body_len = be32(p + 2);
		} else {
			return fail(why, "partial body length in a signature packet");
		}
	} else {
		/* Old packet format. */
		tag = (p[0] >> 2) & 0x0fu;
		switch (p[0] & 0x03) {
		case 0:
			hdr = 2;
			break;
		case 1:
			hdr = 3;
			break;
		case 2:
			hdr = 5;
			break;
		default:
			return fail(why, "indeterminate packet length");
		}
		if (len < hdr)
			return fail(why, "truncated packet header");
		if (hdr == 2)
			body_len = p[1];
		else if (hdr == 3)
			body_len = be16(p + 1);
		else
			body_len = be32(p + 1);
	}
	if (tag != PKT_TAG_SIGNATURE)
		return fail(why, "first packet is not a signature packet");
	if (body_len > len - hdr)
		return fail(why, "truncated signature packet");
	if (body_len < len - hdr)
		return fail(why, "data after the signature packet");

	/* Version 4 body: version, type, public-key algorithm, hash
	 * algorithm, hashed subpackets, unhashed subpackets, the hash's
	 * left 16 bits, then the algorithm-specific values. */
	b = p + hdr;
	if (body_len < 1)
		return fail(why, "empty signature packet");
	if (b[0] != 4)
		return fail(why, "not a version 4 signature");
	if (body_len < 6)
		return fail(why, "truncated signature packet");
	if (b[1] != SIGTYPE_BINARY)
		return fail(why, "not a binary-document signature (type 0x00)");
	hashed = be16(b + 4);
	off = 6;
	if (hashed > body_len - off || !subpackets_ok(b + off, hashed))
		return fail(why, "bad hashed subpacket area");
	off += hashed;
	if (body_len - off < 2)
		return fail(why, "truncated signature packet");
	unhashed = be16(b + off);
	off += 2;
	if (unhashed > body_len - off || !subpackets_ok(b + off, unhashed))
		return fail(why, "bad unhashed subpacket area");
	off += unhashed;
	/* Left 16 bits of the hash and at least one value octet. */
	if (body_len - off < 3)
		return fail(why, "truncated signature packet");
	if (why)
		*why = NULL;
	return 0;
}
