/* The error, exit-code, log and text helpers every module uses. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sysexits.h>

#include "alerr.h"
#include "log.h"
#include "text.h"

Test(alerr, maps_every_class_to_its_sysexits_code)
{
	cr_assert_eq(alerr_exit_code(ALERR_NONE), 0);
	cr_assert_eq(alerr_exit_code(ALERR_USAGE), 64);
	cr_assert_eq(alerr_exit_code(ALERR_REJECT), 65);
	cr_assert_eq(alerr_exit_code(ALERR_NOINPUT), 66);
	cr_assert_eq(alerr_exit_code(ALERR_UNAVAILABLE), 69);
	cr_assert_eq(alerr_exit_code(ALERR_SOFTWARE), 70);
	cr_assert_eq(alerr_exit_code(ALERR_OSERR), 71);
	cr_assert_eq(alerr_exit_code(ALERR_CANTCREAT), 73);
	cr_assert_eq(alerr_exit_code(ALERR_IOERR), 74);
	cr_assert_eq(alerr_exit_code(ALERR_TEMPFAIL), 75);
	cr_assert_eq(alerr_exit_code(ALERR_CONFIG), 78);
	/* The design's table is sysexits.h itself. */
	cr_assert_eq(alerr_exit_code(ALERR_REJECT), EX_DATAERR);
	cr_assert_eq(alerr_exit_code(ALERR_TEMPFAIL), EX_TEMPFAIL);
}

Test(alerr, first_failure_wins_and_returns_negative_errno)
{
	struct alerr e;
	int r;

	alerr_clear(&e);
	cr_assert_not(alerr_failed(&e));
	r = alerr_set(&e, ALERR_REJECT, EBADMSG, "checksum.mismatch",
	              "payload/%06u.chunk: SHA-256 differs", 3u);
	cr_assert_eq(r, -EBADMSG);
	cr_assert(alerr_failed(&e));
	r = alerr_set(&e, ALERR_IOERR, -EIO, "media.io", "later failure");
	cr_assert_eq(r, -EIO);
	cr_assert_eq(e.cls, ALERR_REJECT);
	cr_assert_str_eq(e.reason, "checksum.mismatch");
	cr_assert_str_eq(e.message, "payload/000003.chunk: SHA-256 differs");
	alerr_prefix(&e, "%s: ", "bundle");
	cr_assert_str_eq(e.message, "bundle: payload/000003.chunk: SHA-256 differs");
	cr_assert_str_eq(alerr_class_name(e.cls), "rejected");
}

Test(alerr, null_is_allowed_and_zero_errno_becomes_einval)
{
	cr_assert_eq(alerr_set(NULL, ALERR_USAGE, 0, "usage", "x"), -EINVAL);
}

Test(text, utf8_validation_rejects_overlong_surrogates_and_controls)
{
	cr_assert(text_is_printable_utf8("Grüße, 東京", strlen("Grüße, 東京")));
	cr_assert_not(text_is_printable_utf8("\xc0\xaf", 2));         /* overlong '/' */
	cr_assert_not(text_is_printable_utf8("\xed\xa0\x80", 3));     /* surrogate */
	cr_assert_not(text_is_printable_utf8("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	cr_assert_not(text_is_printable_utf8("a\tb", 3));
	cr_assert_not(text_is_printable_utf8("a\x7f", 2));
	cr_assert_not(text_is_printable_utf8("\xc2\x85", 2));         /* C1 NEL */
	cr_assert_not(text_is_printable_utf8("\xe2\x82", 2));         /* truncated */
}

Test(text, hex_round_trip_and_strictness)
{
	uint8_t in[4] = { 0x00, 0xab, 0x7f, 0xff }, out[4];
	char hex[9];

	text_hex_encode(hex, in, sizeof(in));
	cr_assert_str_eq(hex, "00ab7fff");
	cr_assert_eq(text_hex_decode(out, 4, hex, 8, 0), 0);
	cr_assert_eq(memcmp(in, out, 4), 0);
	cr_assert_eq(text_hex_decode(out, 4, "00AB7FFF", 8, 0), -EINVAL);
	cr_assert_eq(text_hex_decode(out, 4, "00AB7FFF", 8, 1), 0);
	cr_assert_eq(text_hex_decode(out, 4, "00ab7ff", 7, 0), -EINVAL);
	cr_assert_eq(text_hex_decode(out, 4, "00ab7fgf", 8, 0), -EINVAL);
}

Test(text, u64_parse_is_strict)
{
	uint64_t v;

	cr_assert_eq(text_parse_u64("0", 1, UINT64_MAX, &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(text_parse_u64("18446744073709551615", 20, UINT64_MAX, &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(text_parse_u64("18446744073709551616", 20, UINT64_MAX, &v), -ERANGE);
	cr_assert_eq(text_parse_u64("99999999999999999999", 20, UINT64_MAX, &v), -ERANGE);
	cr_assert_eq(text_parse_u64("42", 2, 41, &v), -ERANGE);
	cr_assert_eq(text_parse_u64("007", 3, UINT64_MAX, &v), -EINVAL);
	cr_assert_eq(text_parse_u64("+7", 2, UINT64_MAX, &v), -EINVAL);
	cr_assert_eq(text_parse_u64("-1", 2, UINT64_MAX, &v), -EINVAL);
	cr_assert_eq(text_parse_u64(" 1", 2, UINT64_MAX, &v), -EINVAL);
	cr_assert_eq(text_parse_u64("", 0, UINT64_MAX, &v), -EINVAL);
}

Test(log, sanitize_escapes_controls_and_bad_utf8)
{
	char out[64];

	log_sanitize(out, sizeof(out), "ok\x1b[31m\xff\\ é", 12);
	cr_assert_str_eq(out, "ok\\x1b[31m\\xff\\x5c é");
	log_sanitize(out, 6, "abcdefgh", 8);
	cr_assert_str_eq(out, "abcde");
}

/* Under a systemd unit stderr is the journal already: the log lines are
 * not sent to syslog a second time (JOURNAL_STREAM, systemd.exec(5)). */
Test(log, no_syslog_copy_when_stderr_is_the_journal)
{
	struct stat st;
	char js[64];

	cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
	unsetenv("JOURNAL_STREAM");
	log_init("t", LOG_TO_STDERR | LOG_TO_SYSLOG, LOG_LEVEL_NOTICE);
	cr_assert_eq(log_get_targets(), LOG_TO_STDERR | LOG_TO_SYSLOG);
	log_close();
	/* another stream is the journal: both stay */
	snprintf(js, sizeof(js), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino + 1);
	setenv("JOURNAL_STREAM", js, 1);
	log_init("t", LOG_TO_STDERR | LOG_TO_SYSLOG, LOG_LEVEL_NOTICE);
	cr_assert_eq(log_get_targets(), LOG_TO_STDERR | LOG_TO_SYSLOG);
	log_close();
	setenv("JOURNAL_STREAM", "garbage", 1);
	log_init("t", LOG_TO_STDERR | LOG_TO_SYSLOG, LOG_LEVEL_NOTICE);
	cr_assert_eq(log_get_targets(), LOG_TO_STDERR | LOG_TO_SYSLOG);
	log_close();
	snprintf(js, sizeof(js), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_init("t", LOG_TO_STDERR | LOG_TO_SYSLOG, LOG_LEVEL_NOTICE);
	cr_assert_eq(log_get_targets(), LOG_TO_STDERR);
	/* syslog alone stays syslog */
	log_init("t", LOG_TO_SYSLOG, LOG_LEVEL_NOTICE);
	cr_assert_eq(log_get_targets(), LOG_TO_SYSLOG);
	log_close();
}

Test(text, buf_grows_and_keeps_one_failure_flag)
{
	struct text_buf b = { 0 };
	size_t i;

	for (i = 0; i < 1000; i++)
		text_buf_add(&b, "abc");
	text_buf_printf(&b, "%d-%s", 42, "x");
	text_buf_addn(&b, "yz!", 2);
	cr_assert_eq(b.bad, 0);
	cr_assert_eq(b.len, 3000 + 4 + 2);
	cr_assert_eq(strlen(b.s), b.len);
	cr_assert_str_eq(b.s + 3000, "42-xyz");
	/* a formatted piece over 255 bytes fails, and so does all after it */
	text_buf_printf(&b, "%300s", "");
	cr_assert_eq(b.bad, 1);
	text_buf_add(&b, "more");
	cr_assert_eq(b.len, 3006);
	free(b.s);
}
