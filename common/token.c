/*
 * token.c - publisher and API tokens (see token.h).
 *
 * A token is generated from getrandom(2) and shown once; the tables hold
 * only sha256 of it, computed by PostgreSQL inside the statement that
 * stores or looks it up, so the plain token travels only as a query
 * parameter and is never written to a table or a log line. A token from a
 * peer is checked for shape before it reaches the store: anything that
 * could not have come from pond_token_generate is simply unknown.
 */
#include "token.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "db.h"
#include "log.h"

#define TOKEN_RANDOM_BYTES 32

/* token_refusals are the process's refused credentials by reason: one set
 * per process, since a process is one service (they are atomic: the store
 * threads count too). */
static pond_counter token_refusals[POND_AUTH_NFAILURES];

void
pond_auth_refused(pond_auth_failure why)
{
	if ((unsigned)why < POND_AUTH_NFAILURES) {
		pond_counter_inc(&token_refusals[why]);
	}
}

int
pond_auth_register_metrics(pond_metrics *m)
{
	static const char *const labels[POND_AUTH_NFAILURES] = {
	        [POND_AUTH_MISSING] = "reason=\"missing\"",
	        [POND_AUTH_UNKNOWN] = "reason=\"unknown\"",
	        [POND_AUTH_ROLE] = "reason=\"role\"",
	};
	int rv;

	for (int i = 0; i < POND_AUTH_NFAILURES; i++) {
		if ((rv = pond_metrics_counter(
		             m, "pond_auth_failures_total",
		             "Refused tokens (HTTP bearer and NNG token), by "
		             "reason: missing, unknown (or revoked), role.",
		             labels[i], &token_refusals[i])) != 0) {
			return (rv);
		}
	}
	return (POND_OK);
}

int
pond_pii_hash(const char *key, size_t keylen, const char *value, size_t len,
              char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;

	/* HMAC() with a NULL md buffer would use a static one: not here. */
	if (HMAC(EVP_sha256(), key, (int)keylen, (const uint8_t *)value, len,
	         mac, &maclen) == NULL ||
	    maclen * 2 != POND_PII_HASH_LEN) {
		return (POND_EIO);
	}
	for (unsigned i = 0; i < maclen; i++) {
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 0xf];
	}
	out[POND_PII_HASH_LEN] = '\0';
	return (POND_OK);
}

/* token_refuse counts why token was refused and returns rv. */
static int
token_refuse(const char *token, int rv)
{
	pond_auth_refused(token == NULL || *token == '\0' ? POND_AUTH_MISSING
	                                                  : POND_AUTH_UNKNOWN);
	return (rv);
}

int
pond_token_generate(const char *prefix, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t raw[TOKEN_RANDOM_BYTES];
	size_t plen = strlen(prefix);
	size_t got = 0;

	if (plen + 2 * sizeof(raw) + 1 > len) {
		return (POND_EINVAL);
	}
	while (got < sizeof(raw)) {
		/* getrandom may return fewer bytes or be interrupted by a
		 * signal; it blocks only until the pool is first seeded. */
		ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			int rv = pond_err_from_errno(errno);
			pond_log_error("token_random_failed", "errno=%d",
			               errno);
			return (rv);
		}
		got += (size_t)n;
	}
	memcpy(buf, prefix, plen);
	for (size_t i = 0; i < sizeof(raw); i++) {
		buf[plen + 2 * i] = hex[raw[i] >> 4];
		buf[plen + 2 * i + 1] = hex[raw[i] & 0xf];
	}
	buf[plen + 2 * sizeof(raw)] = '\0';
	/* The secret is in buf now; do not leave a copy on the stack. */
	explicit_bzero(raw, sizeof(raw));
	return (POND_OK);
}

/* token_plausible reports whether token could be one of ours: short, and
 * only letters, digits and '_'. Anything else (empty, huge, invalid UTF-8,
 * a NUL-free binary blob) is unknown without asking the store, so a peer
 * cannot make the lookup fail with a store error. */
static bool
token_plausible(const char *token)
{
	size_t n = 0;

	if (token == NULL) {
		return (false);
	}
	for (const char *p = token; *p != '\0'; p++, n++) {
		char c = *p;
		if (n >= POND_TOKEN_MAX) {
			return (false);
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_')) {
			return (false);
		}
	}
	return (n > 0);
}

int
pond_publisher_lookup(PGconn *conn, const char *token, int64_t *id, char *name,
                      size_t namelen)
{
	const char *params[1] = {token};
	PGresult *res;
	int rv;

	if (!token_plausible(token)) {
		return (token_refuse(token, POND_EAUTH));
	}
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT id, name FROM publishers WHERE token_hash "
	             "= " POND_TOKEN_HASH_SQL("$1") " AND revoked_at IS NULL",
	             1, params)) != 0) {
		return (rv);
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return (token_refuse(token, POND_EAUTH));
	}
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (name != NULL && namelen > 0) {
		snprintf(name, namelen, "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return (POND_OK);
}

pond_role
pond_api_token_role(PGconn *conn, const char *token)
{
	const char *params[1] = {token};
	pond_role role = POND_ROLE_NONE;
	PGresult *res;

	if (!token_plausible(token)) {
		(void)token_refuse(token, 0);
		return (POND_ROLE_NONE);
	}
	/* pond_pq_query logs a store failure (without the parameter). */
	if (pond_pq_query(
	            conn, &res,
	            "SELECT role FROM api_tokens WHERE token_hash "
	            "= " POND_TOKEN_HASH_SQL("$1") " AND revoked_at IS NULL",
	            1, params) != 0) {
		return (POND_ROLE_NONE);
	}
	if (PQntuples(res) == 1) {
		const char *r = PQgetvalue(res, 0, 0);
		if (strcmp(r, "admin") == 0) {
			role = POND_ROLE_ADMIN;
		} else if (strcmp(r, "read") == 0) {
			role = POND_ROLE_READ;
		}
	}
	PQclear(res);
	if (role == POND_ROLE_NONE) {
		(void)token_refuse(token, 0);
	}
	return (role);
}
