#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "alerr.h"

void alerr_clear(struct alerr *e)
{
	if (e)
		memset(e, 0, sizeof(*e));
}

int alerr_vset(struct alerr *e, enum alerr_class cls, int errnum,
               const char *reason, const char *fmt, va_list ap)
{
	if (errnum > 0)
		errnum = -errnum;
	if (errnum == 0)
		errnum = -EINVAL;
	if (!e || e->cls != ALERR_NONE)
		return errnum;
	e->cls = cls;
	e->errnum = errnum;
	snprintf(e->reason, sizeof(e->reason), "%s", reason ? reason : "internal");
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	return errnum;
}

int alerr_set(struct alerr *e, enum alerr_class cls, int errnum,
              const char *reason, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = alerr_vset(e, cls, errnum, reason, fmt, ap);
	va_end(ap);
	return r;
}

void alerr_prefix(struct alerr *e, const char *fmt, ...)
{
	char head[ALERR_MESSAGE_MAX];
	size_t hlen, mlen;
	va_list ap;
	int n;

	if (!e || e->cls == ALERR_NONE)
		return;
	va_start(ap, fmt);
	n = vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	hlen = strlen(head);
	mlen = strnlen(e->message, sizeof(e->message) - 1);
	if (hlen > sizeof(e->message) - 1)
		hlen = sizeof(e->message) - 1;
	if (hlen + mlen > sizeof(e->message) - 1)
		mlen = sizeof(e->message) - 1 - hlen;
	memmove(e->message + hlen, e->message, mlen);
	memcpy(e->message, head, hlen);
	e->message[hlen + mlen] = '\0';
}

int alerr_failed(const struct alerr *e)
{
	return e && e->cls != ALERR_NONE;
}

int alerr_exit_code(enum alerr_class cls)
{
	switch (cls) {
	case ALERR_NONE:        return EX_OK;
	case ALERR_USAGE:       return EX_USAGE;
	case ALERR_REJECT:      return EX_DATAERR;
	case ALERR_NOINPUT:     return EX_NOINPUT;
	case ALERR_UNAVAILABLE: return EX_UNAVAILABLE;
	case ALERR_SOFTWARE:    return EX_SOFTWARE;
	case ALERR_OSERR:       return EX_OSERR;
	case ALERR_CANTCREAT:   return EX_CANTCREAT;
	case ALERR_IOERR:       return EX_IOERR;
	case ALERR_TEMPFAIL:    return EX_TEMPFAIL;
	case ALERR_CONFIG:      return EX_CONFIG;
	}
	return EX_SOFTWARE;
}

const char *alerr_class_name(enum alerr_class cls)
{
	switch (cls) {
	case ALERR_NONE:        return "ok";
	case ALERR_USAGE:       return "usage";
	case ALERR_REJECT:      return "rejected";
	case ALERR_NOINPUT:     return "no-input";
	case ALERR_UNAVAILABLE: return "unavailable";
	case ALERR_SOFTWARE:    return "internal";
	case ALERR_OSERR:       return "system";
	case ALERR_CANTCREAT:   return "cannot-create";
	case ALERR_IOERR:       return "io-error";
	case ALERR_TEMPFAIL:    return "try-again";
	case ALERR_CONFIG:      return "config";
	}
	return "internal";
}
