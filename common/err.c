/*
 * err.c - descriptions and conversions for pond_err.
 */
#include "err.h"

#include <errno.h>
#include <nng/nng.h>

const char *
pond_strerror(int err)
{
	switch ((pond_err)err) {
	case POND_OK:
		return "ok";
	case POND_ENOMEM:
		return "out of memory";
	case POND_EINVAL:
		return "invalid argument";
	case POND_ENOENT:
		return "not found";
	case POND_EEXIST:
		return "already exists";
	case POND_EDB:
		return "store error";
	case POND_ECONFLICT:
		return "transaction conflict";
	case POND_EBUS:
		return "bus error";
	case POND_EIO:
		return "i/o error";
	case POND_ETIMEDOUT:
		return "timed out";
	case POND_ECLOSED:
		return "closed";
	case POND_ETOOBIG:
		return "too big";
	case POND_EAUTH:
		return "not authorized";
	}
	return "unknown error";
}

int
pond_err_from_errno(int errnum)
{
	switch (errnum) {
	case 0:
		return POND_OK;
	case ENOMEM:
		return POND_ENOMEM;
	case EINVAL:
		return POND_EINVAL;
	case ENOENT:
		return POND_ENOENT;
	case EEXIST:
		return POND_EEXIST;
	case ETIMEDOUT:
		return POND_ETIMEDOUT;
	default:
		return POND_EIO;
	}
}

int
pond_err_from_nng(int nng_rv)
{
	switch (nng_rv) {
	case 0:
		return POND_OK;
	case NNG_ENOMEM:
		return POND_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return POND_EINVAL;
	case NNG_ETIMEDOUT:
		return POND_ETIMEDOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return POND_ECLOSED;
	case NNG_EMSGSIZE:
		return POND_ETOOBIG;
	default:
		return POND_EBUS;
	}
}
