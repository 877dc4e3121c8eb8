/* A strict check of a detached-signature file's OpenPGP framing, run
 * before GnuPG sees the bytes: exactly one binary v4 signature packet over
 * a binary document, nothing before or after it. */
#ifndef AIRLOCK_SIG_PACKET_H
#define AIRLOCK_SIG_PACKET_H

#include <stddef.h>

/* 0 when buf holds exactly one well-framed v4 binary-document signature
 * packet of at most SIG_FILE_MAX_BYTES; else -EBADMSG and *why (if not
 * NULL) points to a static phrase saying what is wrong. */
int sig_packet_check(const void *buf, size_t len, const char **why);

#endif
