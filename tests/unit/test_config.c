/* config: the INI file, its strictness, file safety, command-line
 * overrides and the value parsers. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerr.h"
#include "bounds.h"
#include "conf.h"
#include "harness.h"

#define FPR40 "0123456789abcdef0123456789abcdef01234567"
#define FPR40_UP "0123456789ABCDEF0123456789ABCDEF01234567"
#define FPR64 "89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567"
#define FPR64_UP "89ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF01234567"
#define FPR_B "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static char *conf_path(const char *name)
{
	return harness_strdup_printf("%s/%s.conf", harness_scratch(), name);
}

/* Write a config file (mode 0600, owned by us) of len bytes. */
static char *write_conf_len(const char *name, const char *text, size_t len)
{
	char *path = conf_path(name);

	unlink(path);
	harness_write_file(path, text, len);
	cr_assert_eq(chmod(path, 0600), 0);
	return path;
}

static char *write_conf(const char *name, const char *text)
{
	return write_conf_len(name, text, strlen(text));
}

static void init_config(struct config *c)
{
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(config_init(c, &e), 0, "%s", e.message);
}

/* Load text as a file, expecting success. */
static void load_ok(struct config *c, const char *name, const char *text)
{
	char *path = write_conf(name, text);
	struct alerr e;

	alerr_clear(&e);
	cr_assert_eq(config_load(c, path, 0, &e), 0, "%s [%s]", e.message, e.reason);
	cr_assert_str_eq(c->path, path);
	free(path);
}

/* Load a file, expecting a refusal with reason at line (0: no line). */
static void expect_fail_file(const char *path, int missing_ok, const char *reason,
                             unsigned int line, const char *needle)
{
	struct config c;
	struct alerr e;
	char *where;

	init_config(&c);
	alerr_clear(&e);
	cr_assert_lt(config_load(&c, path, missing_ok, &e), 0, "loaded %s", path);
	cr_assert_eq(e.cls, ALERR_CONFIG, "class %d: %s", e.cls, e.message);
	cr_assert_str_eq(e.reason, reason, "%s", e.message);
	if (line)
		where = harness_strdup_printf("%s:%u: ", path, line);
	else
		where = harness_strdup_printf("%s: ", path);
	cr_assert(strncmp(e.message, where, strlen(where)) == 0,
	          "message '%s' does not start with '%s'", e.message, where);
	if (needle)
		cr_assert(strstr(e.message, needle), "'%s' not in '%s'", needle, e.message);
	cr_assert_null(c.path);
	free(where);
	config_free(&c);
}

static void expect_fail(const char *name, const char *text, const char *reason,
                        unsigned int line, const char *needle)
{
	char *path = write_conf(name, text);

	expect_fail_file(path, 0, reason, line, needle);
	free(path);
}

static const char full_file[] =
	"# airlock configuration\n"
	"; both comment styles\n"
	"[common]\n"
	"custody-log = /srv/log/custody.log\n"
	"state-dir = /srv/airlock\n"
	"syslog = no\n"
	"\n"
	"[write]\n"
	"source = host=db.example port=5432 dbname=feeds\n"
	"schema = feeds\n"
	"schema = _Extra_2\n"
	"channel = nvd.mirror-1\n"
	"signer = " FPR40 "\n"
	"signer = " FPR64 "\n"
	"gnupghome = /root/.gnupg\n"
	"workdir = /var/tmp/airlock\n"
	"valid-for = 2w\n"
	"courier = Sgt. Jane Doe, Grüße\n"
	"chunk-size = 512M\n"
	"jobs = 4\n"
	"\n"
	"[import]\n"
	"target = postgresql://airlock@localhost/feeds\n"
	"channel = nvd\n"
	"channel = ghsa\n"
	"keyring = /etc/airlock/keyring\n"
	"trust = " FPR40 "\n"
	"trust = " FPR_B "\n"
	"threshold = 2\n"
	"require-media-serial = yes\n"
	"quarantine = /srv/quarantine\n"
	"max-bytes = 3G\n"
	"max-files = 5000\n"
	"max-path = 200\n"
	"lock-timeout = 90s\n"
	"retention = 45d\n"
	"jobs = 8\n";

Test(config, full_file_with_every_key)
{
	struct config c;

	init_config(&c);
	load_ok(&c, "full", full_file);
	cr_assert_str_eq(c.custody_log, "/srv/log/custody.log");
	cr_assert_str_eq(c.state_dir, "/srv/airlock");
	cr_assert_eq(c.syslog, 0);

	cr_assert_str_eq(c.write.source, "host=db.example port=5432 dbname=feeds");
	cr_assert_eq(c.write.schemas.n, 2);
	cr_assert_str_eq(c.write.schemas.v[0], "feeds");
	cr_assert_str_eq(c.write.schemas.v[1], "_Extra_2");
	cr_assert_str_eq(c.write.channel, "nvd.mirror-1");
	cr_assert_eq(c.write.signers.n, 2);
	cr_assert_str_eq(c.write.signers.v[0], FPR40_UP);
	cr_assert_str_eq(c.write.signers.v[1], FPR64_UP);
	cr_assert_str_eq(c.write.gnupghome, "/root/.gnupg");
	cr_assert_str_eq(c.write.workdir, "/var/tmp/airlock");
	cr_assert_eq(c.write.valid_for, 14u * 86400u);
	cr_assert_str_eq(c.write.courier, "Sgt. Jane Doe, Grüße");
	cr_assert_eq(c.write.chunk_size, UINT64_C(512) << 20);
	cr_assert_eq(c.write.jobs, 4);

	cr_assert_str_eq(c.import.target, "postgresql://airlock@localhost/feeds");
	cr_assert_eq(c.import.channels.n, 2);
	cr_assert_str_eq(c.import.channels.v[0], "nvd");
	cr_assert_str_eq(c.import.channels.v[1], "ghsa");
	cr_assert_str_eq(c.import.keyring, "/etc/airlock/keyring");
	cr_assert_eq(c.import.trust.n, 2);
	cr_assert_str_eq(c.import.trust.v[0], FPR40_UP);
	cr_assert_str_eq(c.import.trust.v[1], FPR_B);
	cr_assert_eq(c.import.threshold, 2);
	cr_assert_eq(c.import.require_media_serial, 1);
	cr_assert_str_eq(c.import.quarantine, "/srv/quarantine");
	cr_assert_eq(c.import.max_bytes, UINT64_C(3) << 30);
	cr_assert_eq(c.import.max_files, 5000);
	cr_assert_eq(c.import.max_path, 200);
	cr_assert_eq(c.import.lock_timeout, 90);
	cr_assert_eq(c.import.retention, 45u * 86400u);
	cr_assert_eq(c.import.jobs, 8);
	config_free(&c);
}

static void assert_defaults(const struct config *c)
{
	cr_assert_str_eq(c->custody_log, LOCALSTATEDIR "/log/airlock/custody.log");
	cr_assert_str_eq(c->state_dir, LOCALSTATEDIR "/lib/airlock");
	cr_assert_eq(c->syslog, 1);
	cr_assert_str_eq(c->write.source, "dbname=feeds");
	cr_assert_eq(c->write.schemas.n, 0);
	cr_assert_null(c->write.channel);   /* no default: a feed goes where it is told */
	cr_assert_eq(c->write.signers.n, 0);
	cr_assert_null(c->write.gnupghome);
	cr_assert_str_eq(c->write.workdir, "/var/tmp");
	cr_assert_eq(c->write.valid_for, 14u * 86400u);
	cr_assert_null(c->write.courier);
	cr_assert_eq(c->write.chunk_size, CHUNK_SIZE_DEFAULT);
	cr_assert_eq(c->write.jobs, 2);
	cr_assert_str_eq(c->import.target, "dbname=feeds");
	cr_assert_eq(c->import.channels.n, 0);
	cr_assert_str_eq(c->import.keyring, SYSCONFDIR "/airlock/keyring");
	cr_assert_eq(c->import.trust.n, 0);
	cr_assert_eq(c->import.threshold, 2);
	cr_assert_eq(c->import.require_media_serial, 0);
	cr_assert_str_eq(c->import.quarantine, LOCALSTATEDIR "/lib/airlock/quarantine");
	cr_assert_eq(c->import.max_bytes, UINT64_C(64) << 30);
	cr_assert_eq(c->import.max_files, 10000);
	cr_assert_eq(c->import.max_path, 255);
	cr_assert_eq(c->import.lock_timeout, 30);
	cr_assert_eq(c->import.retention, 30u * 86400u);
	cr_assert_eq(c->import.jobs, 2);
}

Test(config, defaults)
{
	struct config c;

	init_config(&c);
	assert_defaults(&c);
	cr_assert_null(c.path);
	cr_assert_str_eq(config_default_path(), SYSCONFDIR "/airlock/airlock.conf");
	config_free(&c);
}

Test(config, defaults_stay_when_a_key_is_absent)
{
	struct config c;

	init_config(&c);
	load_ok(&c, "sparse", "[write]\njobs = 3\n[import]\n");
	cr_assert_eq(c.write.jobs, 3);
	c.write.jobs = 2;
	assert_defaults(&c);
	config_free(&c);
}

Test(config, empty_file_changes_nothing)
{
	struct config c;

	init_config(&c);
	load_ok(&c, "empty", "");
	assert_defaults(&c);
	config_free(&c);
}

Test(config, repeatable_keys_accumulate)
{
	struct config c;

	init_config(&c);
	load_ok(&c, "repeat",
	        "[write]\nschema = a\nschema = b\n"
	        "[import]\ntrust = " FPR40 "\nchannel = x\n"
	        "[write]\nschema = c\n"
	        "[import]\ntrust = " FPR_B "\nchannel = y\n");
	cr_assert_eq(c.write.schemas.n, 3);
	cr_assert_str_eq(c.write.schemas.v[0], "a");
	cr_assert_str_eq(c.write.schemas.v[1], "b");
	cr_assert_str_eq(c.write.schemas.v[2], "c");
	cr_assert_eq(c.import.trust.n, 2);
	cr_assert_str_eq(c.import.trust.v[1], FPR_B);
	cr_assert_eq(c.import.channels.n, 2);
	config_free(&c);
}

Test(config, a_second_file_replaces_the_lists_it_sets)
{
	struct config c;

	init_config(&c);
	load_ok(&c, "first", "[write]\nschema = a\nschema = b\njobs = 5\n[import]\ntrust = " FPR_B "\n");
	load_ok(&c, "second", "[write]\nschema = c\n");
	cr_assert_eq(c.write.schemas.n, 1);
	cr_assert_str_eq(c.write.schemas.v[0], "c");
	cr_assert_eq(c.write.jobs, 5);
	cr_assert_eq(c.import.trust.n, 1);
	config_free(&c);
}

Test(config, layout_variants_are_accepted)
{
	static const char text[] =
		"\xef\xbb\xbf# a byte-order mark, CRLF, tabs and no final newline\r\n"
		"[import]\r\n"
		"  # an indented comment\r\n"
		"\t; another\r\n"
		"threshold\t=\t3\t\r\n"
		"retention=1w\r\n"
		"trust =  " FPR40 "  \r\n"
		"require-media-serial = On";
	struct config c;

	init_config(&c);
	load_ok(&c, "layout", text);
	cr_assert_eq(c.import.threshold, 3);
	cr_assert_eq(c.import.retention, 7u * 86400u);
	cr_assert_eq(c.import.trust.n, 1);
	cr_assert_str_eq(c.import.trust.v[0], FPR40_UP);
	cr_assert_eq(c.import.require_media_serial, 1);
	config_free(&c);
}

Test(config, value_may_hold_equals_colon_and_semicolon)
{
	struct config c;

	init_config(&c);
	load_ok(&c, "punct",
	        "[write]\nsource = host=h password=a;b options='-c x=y'\n"
	        "[import]\ntarget = postgresql://u@h:5432/feeds?sslmode=verify-full\n");
	cr_assert_str_eq(c.write.source, "host=h password=a;b options='-c x=y'");
	cr_assert_str_eq(c.import.target, "postgresql://u@h:5432/feeds?sslmode=verify-full");
	config_free(&c);
}

Test(config, line_at_the_limit_is_accepted)
{
	char text[CONFIG_MAX_LINE + 64];
	struct config c;
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "[write]\ncourier = ");
	/* "courier = " plus the text: exactly CONFIG_MAX_LINE bytes. */
	memset(text + n, 'x', CONFIG_MAX_LINE - strlen("courier = "));
	n += CONFIG_MAX_LINE - strlen("courier = ");
	memcpy(text + n, "\r\n", 3);
	init_config(&c);
	load_ok(&c, "maxline", text);
	cr_assert_eq(strlen(c.write.courier), CONFIG_MAX_LINE - strlen("courier = "));
	config_free(&c);
}

Test(config, file_at_the_size_limit_is_accepted)
{
	char *text = malloc(CONFIG_MAX_BYTES);
	struct config c;
	size_t i;
	char *path;

	cr_assert_not_null(text);
	memset(text, '#', CONFIG_MAX_BYTES);
	for (i = 99; i < CONFIG_MAX_BYTES; i += 100)
		text[i] = '\n';
	path = write_conf_len("at-size-limit", text, CONFIG_MAX_BYTES);
	init_config(&c);
	cr_assert_eq(config_load(&c, path, 0, NULL), 0);
	config_free(&c);
	free(text);
	free(path);
}

Test(config, failed_load_changes_nothing)
{
	struct config c;
	char *path;

	init_config(&c);
	path = write_conf("atomic", "[write]\njobs = 7\nschema = a\n[import]\nbogus = 1\n");
	cr_assert_lt(config_load(&c, path, 0, NULL), 0);
	assert_defaults(&c);
	cr_assert_null(c.path);
	config_free(&c);
	free(path);
}

/* ---- command-line options ----------------------------------------------- */

Test(config, options_override_the_file)
{
	struct config c;
	struct alerr e;

	init_config(&c);
	load_ok(&c, "override", full_file);
	alerr_clear(&e);
	cr_assert_eq(config_set(&c, "import", "threshold", "1", "--threshold", &e), 0, "%s", e.message);
	cr_assert_eq(config_set(&c, "write", "channel", "other", "--channel", &e), 0);
	cr_assert_eq(config_set(&c, "import", "quarantine", "/q", "--quarantine", &e), 0);
	cr_assert_eq(config_set(&c, "common", "custody-log", "/c.log", "--custody-log", &e), 0);
	cr_assert_eq(c.import.threshold, 1);
	cr_assert_str_eq(c.write.channel, "other");
	cr_assert_str_eq(c.import.quarantine, "/q");
	cr_assert_str_eq(c.custody_log, "/c.log");
	/* Untouched keys keep the file's value. */
	cr_assert_eq(c.import.jobs, 8);
	config_free(&c);
}

Test(config, first_list_option_replaces_the_file_list_later_ones_append)
{
	struct config c;
	struct alerr e;

	init_config(&c);
	load_ok(&c, "override-list", full_file);
	cr_assert_eq(c.import.trust.n, 2);
	alerr_clear(&e);
	cr_assert_eq(config_set(&c, "import", "trust", FPR64, "--trust", &e), 0, "%s", e.message);
	cr_assert_eq(c.import.trust.n, 1);
	cr_assert_str_eq(c.import.trust.v[0], FPR64_UP);
	cr_assert_eq(config_set(&c, "import", "trust", FPR_B, "--trust", &e), 0, "%s", e.message);
	cr_assert_eq(c.import.trust.n, 2);
	cr_assert_str_eq(c.import.trust.v[1], FPR_B);
	/* Other lists keep the file's values. */
	cr_assert_eq(c.write.schemas.n, 2);
	cr_assert_eq(config_set(&c, "write", "schema", "s1", "--schema", &e), 0);
	cr_assert_eq(c.write.schemas.n, 1);
	config_free(&c);
}

Test(config, option_given_twice_is_refused)
{
	struct config c;
	struct alerr e;

	init_config(&c);
	alerr_clear(&e);
	cr_assert_eq(config_set(&c, "import", "threshold", "1", "--threshold", &e), 0);
	cr_assert_lt(config_set(&c, "import", "threshold", "2", "--threshold", &e), 0);
	cr_assert_eq(e.cls, ALERR_USAGE);
	cr_assert_str_eq(e.reason, "config.duplicate_key");
	cr_assert(strstr(e.message, "--threshold"), "%s", e.message);
	cr_assert_eq(c.import.threshold, 1);
	config_free(&c);
}

Test(config, option_bad_value_names_the_option)
{
	struct config c;
	struct alerr e;

	init_config(&c);
	alerr_clear(&e);
	cr_assert_lt(config_set(&c, "import", "trust", "ABCD", "--trust", &e), 0);
	cr_assert_eq(e.cls, ALERR_USAGE);
	cr_assert_str_eq(e.reason, "config.bad_value");
	cr_assert(strncmp(e.message, "--trust ABCD: ", 14) == 0, "%s", e.message);
	cr_assert(strstr(e.message, "40 or 64 hex digits"), "%s", e.message);
	cr_assert_eq(c.import.trust.n, 0);
	config_free(&c);
}

Test(config, option_duplicate_list_value_is_refused)
{
	struct config c;
	struct alerr e;

	init_config(&c);
	alerr_clear(&e);
	cr_assert_eq(config_set(&c, "import", "trust", FPR40, "--trust", &e), 0);
	cr_assert_lt(config_set(&c, "import", "trust", FPR40_UP, "--trust", &e), 0);
	cr_assert_str_eq(e.reason, "config.bad_value");
	cr_assert(strstr(e.message, "duplicate value"), "%s", e.message);
	config_free(&c);
}

Test(config, option_unknown_key_is_a_programming_error)
{
	struct config c;
	struct alerr e;

	init_config(&c);
	alerr_clear(&e);
	cr_assert_lt(config_set(&c, "import", "nosuch", "1", "--nosuch", &e), 0);
	cr_assert_eq(e.cls, ALERR_SOFTWARE);
	cr_assert_str_eq(e.reason, "config.unknown_key");
	cr_assert_lt(config_set(&c, "write", "threshold", "1", "--threshold", NULL), 0);
	config_free(&c);
}

Test(config, options_without_a_file)
{
	struct config c;
	int i;

	init_config(&c);
	for (i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "s%d", i);
		cr_assert_eq(config_set(&c, "write", "schema", name, "--schema", NULL), 0);
	}
	cr_assert_eq(c.write.schemas.n, 3);
	cr_assert_str_eq(c.write.schemas.v[2], "s2");
	cr_assert_eq(config_set(&c, "write", "valid-for", "36h", "--valid-for", NULL), 0);
	cr_assert_eq(c.write.valid_for, 36u * 3600u);
	cr_assert_eq(config_set(&c, "write", "gnupghome", "/g", "--gnupghome", NULL), 0);
	cr_assert_str_eq(c.write.gnupghome, "/g");
	config_free(&c);
}

/* ---- rejections: structure ---------------------------------------------- */

Test(config, unknown_section)
{
	expect_fail("unknown-section", "[common]\nsyslog = no\n\n[exports]\nx = 1\n",
	            "config.unknown_section", 4, "[exports]");
}

Test(config, unknown_section_even_without_keys)
{
	expect_fail("unknown-empty-section", "[import]\n[Import]\n",
	            "config.unknown_section", 2, "[Import]");
}

Test(config, unknown_key)
{
	expect_fail("unknown-key", "[import]\nthreshold = 1\ntrusted = " FPR40 "\n",
	            "config.unknown_key", 3, "'trusted'");
}

Test(config, key_of_another_section)
{
	expect_fail("wrong-section", "[write]\nthreshold = 1\n",
	            "config.unknown_key", 2, "'threshold' in [write]");
}

Test(config, key_outside_a_section)
{
	expect_fail("no-section", "# top\nthreshold = 1\n[import]\n",
	            "config.syntax", 2, "outside any section");
}

Test(config, duplicate_key)
{
	expect_fail("duplicate", "[import]\nthreshold = 1\njobs = 2\nthreshold = 1\n",
	            "config.duplicate_key", 4, "first on line 2");
}

Test(config, duplicate_key_across_reopened_section)
{
	expect_fail("duplicate-reopened", "[write]\njobs = 2\n[import]\njobs = 2\n[write]\njobs = 3\n",
	            "config.duplicate_key", 6, "'jobs' in [write]");
}

Test(config, syntax_error_no_equals)
{
	expect_fail("no-equals", "[import]\nthreshold = 1\nthreshold 2\njobs = 1\n",
	            "config.syntax", 3, "expected 'key = value'");
}

Test(config, syntax_error_on_the_last_line)
{
	expect_fail("no-equals-last", "[import]\nthreshold", "config.syntax", 2, NULL);
}

Test(config, colon_separator_is_refused)
{
	expect_fail("colon", "[import]\nthreshold: 1\n", "config.syntax", 2,
	            "expected '=' after 'threshold'");
}

Test(config, section_header_without_bracket)
{
	expect_fail("no-bracket", "[import\nthreshold = 1\n", "config.syntax", 1, "']'");
}

Test(config, text_after_section_header)
{
	expect_fail("header-text", "[import] ; policy\n", "config.syntax", 1,
	            "after the section header");
}

Test(config, empty_value)
{
	expect_fail("empty-value", "[write]\nsource =\n", "config.bad_value", 2, "empty value");
}

Test(config, line_too_long)
{
	char text[CONFIG_MAX_LINE + 64];
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "[write]\n# ok\ncourier = ");
	memset(text + n, 'x', CONFIG_MAX_LINE + 1 - strlen("courier = "));
	n += CONFIG_MAX_LINE + 1 - strlen("courier = ");
	memcpy(text + n, "\n", 2);
	expect_fail("long-line", text, "config.line_too_long", 3, "line too long");
}

/* Without the check, inih would cut the line at its buffer and read the
 * tail as a line of its own: "trust = FPR" here. */
Test(config, long_line_cannot_smuggle_a_second_line)
{
	char text[512];
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "[import]\ncourier = ");
	memset(text + n, 'x', 199 - strlen("courier = "));
	n += 199 - strlen("courier = ");
	snprintf(text + n, sizeof(text) - n, "trust = %s\n", FPR_B);
	expect_fail("smuggle-long", text, "config.line_too_long", 2, NULL);
}

Test(config, continuation_line_cannot_add_a_trusted_key)
{
	expect_fail("continuation",
	            "[import]\ntrust = " FPR40 "\n    " FPR_B "\n",
	            "config.syntax", 3, "continuation");
}

Test(config, indented_key_is_refused)
{
	expect_fail("indented", "[import]\n  threshold = 1\n", "config.syntax", 2, "indented");
}

Test(config, inline_comment_cannot_shorten_a_value)
{
	/* inih would read "Sgt." and drop the rest as a comment. */
	expect_fail("inline-comment", "[write]\ncourier = Sgt. ;Jane Doe\n",
	            "config.syntax", 2, "inline comment");
}

Test(config, inline_comment_after_a_fingerprint)
{
	expect_fail("inline-comment-fpr", "[import]\ntrust = " FPR40 " ; old key\n",
	            "config.syntax", 2, "inline comment");
}

Test(config, nul_byte)
{
	static const char text[] = "[import]\nthreshold = 1\0 2\njobs = 1\n";
	char *path = write_conf_len("nul", text, sizeof(text) - 1);

	expect_fail_file(path, 0, "config.syntax", 2, "NUL byte at column 14");
	free(path);
}

Test(config, control_character)
{
	expect_fail("control", "[write]\ncourier = Jane\x1b[2JDoe\n", "config.syntax", 2,
	            "control character 0x1b at column 15");
}

Test(config, invalid_utf8)
{
	expect_fail("latin1", "[write]\ncourier = Gr\xfc\xdf" "e\n", "config.syntax", 2,
	            "invalid UTF-8 at column 13");
}

Test(config, list_over_the_limit)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	unsigned int i;

	cr_assert_not_null(f);
	fprintf(f, "[write]\n");
	for (i = 0; i <= CONFIG_MAX_LIST; i++)
		fprintf(f, "schema = s%u\n", i);
	cr_assert_eq(fclose(f), 0);
	expect_fail("list-limit", text, "config.list_too_long", CONFIG_MAX_LIST + 2, NULL);
	free(text);
}

Test(config, duplicate_list_value)
{
	expect_fail("dup-value", "[import]\ntrust = " FPR40 "\ntrust = " FPR40_UP "\n",
	            "config.bad_value", 3, "duplicate value");
}

/* ---- rejections: values ------------------------------------------------- */

Test(config, bad_bool)
{
	expect_fail("bad-bool", "[common]\nsyslog = maybe\n", "config.bad_value", 2,
	            "expected yes or no");
}

Test(config, duration_without_unit)
{
	expect_fail("dur-nounit", "[write]\nvalid-for = 86400\n", "config.bad_value", 2,
	            "unit");
}

Test(config, duration_unknown_unit)
{
	expect_fail("dur-unit", "[write]\nvalid-for = 3y\n", "config.bad_value", 2, "unit");
}

Test(config, duration_overflow)
{
	expect_fail("dur-overflow", "[import]\nretention = 99999999999999999w\n",
	            "config.bad_value", 2, "at most");
}

Test(config, duration_zero)
{
	expect_fail("dur-zero", "[import]\nlock-timeout = 0s\n", "config.bad_value", 2,
	            "more than 0");
}

Test(config, size_overflow)
{
	expect_fail("size-overflow", "[import]\nmax-bytes = 99999999999T\n",
	            "config.bad_value", 2, "too large");
}

Test(config, size_bad_suffix)
{
	expect_fail("size-suffix", "[import]\nmax-bytes = 64GB\n", "config.bad_value", 2,
	            "K, M, G or T");
}

Test(config, size_out_of_range)
{
	expect_fail("chunk-small", "[write]\nchunk-size = 4K\n", "config.bad_value", 2,
	            "between 1048576 and 2147483648 bytes");
}

Test(config, fingerprint_39_hex)
{
	expect_fail("fpr-39", "[write]\nsigner = 0123456789abcdef0123456789abcdef0123456\n",
	            "config.bad_value", 2, "not 39");
}

Test(config, fingerprint_non_hex)
{
	expect_fail("fpr-nonhex", "[import]\ntrust = 0123456789abcdef0123456789abcdef0123456g\n",
	            "config.bad_value", 2, "hex digits only");
}

Test(config, bad_identifier)
{
	expect_fail("ident", "[write]\nschema = feeds;drop\n", "config.bad_value", 2,
	            "identifier");
}

Test(config, identifier_starting_with_a_digit)
{
	expect_fail("ident-digit", "[write]\nschema = 1feeds\n", "config.bad_value", 2,
	            "starts with");
}

Test(config, identifier_too_long)
{
	expect_fail("ident-long",
	            "[write]\nschema = a123456789012345678901234567890123456789012345678901234567890123\n",
	            "config.bad_value", 2, "at most 63 bytes");
}

Test(config, bad_channel)
{
	expect_fail("channel", "[write]\nchannel = NVD\n", "config.bad_value", 2, "channel");
}

Test(config, bad_channel_in_import_list)
{
	expect_fail("channel-import", "[import]\nchannel = nvd\nchannel = -nvd\n",
	            "config.bad_value", 3, "channel");
}

Test(config, threshold_zero)
{
	expect_fail("threshold-0", "[import]\nthreshold = 0\n", "config.bad_value", 2,
	            "between 1 and 32");
}

Test(config, threshold_33)
{
	expect_fail("threshold-33", "[import]\nthreshold = 33\n", "config.bad_value", 2,
	            "between 1 and 32");
}

Test(config, jobs_zero)
{
	expect_fail("jobs-0", "[write]\njobs = 0\n", "config.bad_value", 2, "between 1 and 64");
}

Test(config, number_with_sign)
{
	expect_fail("jobs-sign", "[import]\njobs = +2\n", "config.bad_value", 2,
	            "decimal number");
}

Test(config, relative_path)
{
	expect_fail("relative", "[import]\nquarantine = var/quarantine\n", "config.bad_value", 2,
	            "absolute path");
}

/* ---- rejections: the file itself ---------------------------------------- */

Test(config, file_too_large)
{
	char *text = malloc(CONFIG_MAX_BYTES + 1);
	char *path;

	cr_assert_not_null(text);
	memset(text, '\n', CONFIG_MAX_BYTES + 1);
	path = write_conf_len("too-large", text, CONFIG_MAX_BYTES + 1);
	expect_fail_file(path, 0, "config.too_large", 0, "larger than 262144 bytes");
	free(text);
	free(path);
}

Test(config, symlink_is_refused)
{
	char *target = write_conf("link-target", "[import]\nthreshold = 1\n");
	char *link = conf_path("link");

	unlink(link);
	cr_assert_eq(symlink(target, link), 0);
	expect_fail_file(link, 0, "config.unsafe_file", 0, "symbolic link");
	expect_fail_file(link, 1, "config.unsafe_file", 0, "symbolic link");
	free(target);
	free(link);
}

Test(config, directory_is_refused)
{
	char *dir = harness_mkdir("conf-dir", 0755);

	expect_fail_file(dir, 0, "config.unsafe_file", 0, "not a regular file");
	free(dir);
}

Test(config, fifo_is_refused_without_blocking)
{
	char *path = conf_path("fifo");

	unlink(path);
	cr_assert_eq(mkfifo(path, 0600), 0);
	expect_fail_file(path, 0, "config.unsafe_file", 0, "not a regular file");
	free(path);
}

Test(config, group_writable_is_refused)
{
	char *path = write_conf("group-writable", "[import]\nthreshold = 1\n");

	cr_assert_eq(chmod(path, 0620), 0);
	expect_fail_file(path, 0, "config.unsafe_file", 0, "writable by group or others");
	free(path);
}

Test(config, world_writable_is_refused)
{
	char *path = write_conf("world-writable", "[import]\nthreshold = 1\n");

	cr_assert_eq(chmod(path, 0646), 0);
	expect_fail_file(path, 0, "config.unsafe_file", 0, "(mode 0646)");
	free(path);
}

Test(config, file_of_another_owner_is_refused)
{
	char *path = write_conf("other-owner", "[import]\nthreshold = 1\n");

	if (geteuid() != 0)
		cr_skip_test("chown needs root");
	cr_assert_eq(chown(path, 65534, 65534), 0);
	expect_fail_file(path, 0, "config.unsafe_file", 0, "owned by uid 65534");
	free(path);
}

Test(config, missing_file_is_an_error)
{
	char *path = conf_path("missing");

	unlink(path);
	expect_fail_file(path, 0, "config.missing_file", 0, "no such file");
	free(path);
}

Test(config, missing_file_with_missing_ok)
{
	char *path = conf_path("missing-ok");
	struct config c;
	struct alerr e;

	unlink(path);
	init_config(&c);
	alerr_clear(&e);
	cr_assert_eq(config_load(&c, path, 1, &e), 0);
	cr_assert_not(alerr_failed(&e));
	cr_assert_null(c.path);
	assert_defaults(&c);
	config_free(&c);
	free(path);
}

/* ---- the value parsers -------------------------------------------------- */

Test(config_parse, durations)
{
	uint64_t s;

	cr_assert_eq(config_parse_duration("90s", &s), 0);
	cr_assert_eq(s, 90);
	cr_assert_eq(config_parse_duration("15m", &s), 0);
	cr_assert_eq(s, 900);
	cr_assert_eq(config_parse_duration("2h", &s), 0);
	cr_assert_eq(s, 7200);
	cr_assert_eq(config_parse_duration("14d", &s), 0);
	cr_assert_eq(s, 14u * 86400u);
	cr_assert_eq(config_parse_duration("1w", &s), 0);
	cr_assert_eq(s, 604800);
	cr_assert_eq(config_parse_duration("5200w", &s), 0);
	cr_assert_eq(s, UINT64_C(5200) * 604800u);

	cr_assert_eq(config_parse_duration("90", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("s", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("3y", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("1.5h", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("-5s", &s), -EINVAL);
	cr_assert_eq(config_parse_duration(" 5s", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("5 s", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("05s", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("10ms", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("5S", &s), -EINVAL);
	cr_assert_eq(config_parse_duration("0s", &s), -ERANGE);
	cr_assert_eq(config_parse_duration("5300w", &s), -ERANGE);
	cr_assert_eq(config_parse_duration("99999999999999999w", &s), -ERANGE);
	cr_assert_eq(config_parse_duration("18446744073709551616s", &s), -ERANGE);
	cr_assert_eq(config_parse_duration("999999999999999999999999s", &s), -ERANGE);
}

Test(config_parse, sizes)
{
	uint64_t b;

	cr_assert_eq(config_parse_size("0", &b), 0);
	cr_assert_eq(b, 0);
	cr_assert_eq(config_parse_size("4096", &b), 0);
	cr_assert_eq(b, 4096);
	cr_assert_eq(config_parse_size("1K", &b), 0);
	cr_assert_eq(b, 1024);
	cr_assert_eq(config_parse_size("256M", &b), 0);
	cr_assert_eq(b, UINT64_C(256) << 20);
	cr_assert_eq(config_parse_size("64G", &b), 0);
	cr_assert_eq(b, UINT64_C(64) << 30);
	cr_assert_eq(config_parse_size("16777215T", &b), 0);
	cr_assert_eq(b, UINT64_C(16777215) << 40);
	cr_assert_eq(config_parse_size("18446744073709551615", &b), 0);
	cr_assert_eq(b, UINT64_MAX);

	cr_assert_eq(config_parse_size("16777216T", &b), -ERANGE);
	cr_assert_eq(config_parse_size("99999999999T", &b), -ERANGE);
	cr_assert_eq(config_parse_size("18446744073709551616", &b), -ERANGE);
	cr_assert_eq(config_parse_size("", &b), -EINVAL);
	cr_assert_eq(config_parse_size("K", &b), -EINVAL);
	cr_assert_eq(config_parse_size("10X", &b), -EINVAL);
	cr_assert_eq(config_parse_size("10KB", &b), -EINVAL);
	cr_assert_eq(config_parse_size("10k", &b), -EINVAL);
	cr_assert_eq(config_parse_size("1.5G", &b), -EINVAL);
	cr_assert_eq(config_parse_size("-1", &b), -EINVAL);
	cr_assert_eq(config_parse_size("010", &b), -EINVAL);
}

Test(config_parse, booleans)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES", "True" };
	static const char *const no[] = { "no", "false", "off", "0", "No", "OFF" };
	static const char *const bad[] = { "", "y", "n", "2", "enable", "yes ", "nope" };
	size_t i;
	int v;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		v = -1;
		cr_assert_eq(config_parse_bool(yes[i], &v), 0, "%s", yes[i]);
		cr_assert_eq(v, 1);
		cr_assert_eq(config_parse_bool(no[i], &v), 0, "%s", no[i]);
		cr_assert_eq(v, 0);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(config_parse_bool(bad[i], &v), -EINVAL, "'%s'", bad[i]);
}
