/*
 * err.h - the one error type of Pond.
 *
 * Every fallible function returns a pond_err: 0 is success, anything else
 * names what went wrong. Errors from errno, libpq and NNG are converted where
 * they enter (pond_err_from_errno, pond_err_from_nng); the detailed message
 * goes to the log at that point, the code travels up.
 */
#ifndef POND_ERR_H
#define POND_ERR_H

/* POND_MUSTCHECK marks results the caller must look at. */
#define POND_MUSTCHECK __attribute__((warn_unused_result))

typedef enum pond_err {
	POND_OK = 0,
	POND_ENOMEM,    /* out of memory */
	POND_EINVAL,    /* bad argument or bad input */
	POND_ENOENT,    /* no such thing */
	POND_EEXIST,    /* already exists */
	POND_EDB,       /* the store failed or is unreachable */
	POND_ECONFLICT, /* serialization failure or deadlock: retry */
	POND_EBUS,      /* NNG failed */
	POND_EIO,       /* system call failed */
	POND_ETIMEDOUT, /* timed out */
	POND_ECLOSED,   /* shutting down or closed */
	POND_ETOOBIG,   /* over a size or count limit */
	POND_EAUTH,     /* missing or unknown credentials */
} pond_err;

/* pond_strerror returns a static description of err. */
const char *pond_strerror(int err);

/* pond_err_from_errno converts an errno value. */
int pond_err_from_errno(int errnum);

/* pond_err_from_nng converts an NNG error code. */
int pond_err_from_nng(int nng_rv);

#endif
