/*
 * token.h - secrets handed to publishers and API clients.
 *
 * A token is a prefix ("pub_", "api_") and 32 random bytes in hex. Only its
 * SHA-256 is stored (computed by PostgreSQL's sha256() in the same query
 * that looks it up, so no plain token is ever written to a table). Refused
 * credentials are counted here for every service, and PII values (alias
 * phone numbers, openids) get their keyed hash here (docs/security.md).
 */
#ifndef POND_TOKEN_H
#define POND_TOKEN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "metrics.h"

#define POND_TOKEN_MAX 80

/* POND_TOKEN_HASH_SQL is the SQL expression hashing text parameter $N. */
#define POND_TOKEN_HASH_SQL(n) "sha256(convert_to(" n ", 'UTF8'))"

/* pond_token_generate writes prefix + 64 hex digits into buf. */
int pond_token_generate(const char *prefix, char *buf,
                        size_t len) POND_MUSTCHECK;

/* pond_role is what an API token may do. */
typedef enum pond_role {
	POND_ROLE_NONE = 0,
	POND_ROLE_READ = 1,
	POND_ROLE_ADMIN = 2,
} pond_role;

/* pond_publisher_lookup finds the live publisher of token: *id and its
 * name (into name, namelen); POND_EAUTH when unknown or revoked. */
int pond_publisher_lookup(PGconn *conn, const char *token, int64_t *id,
                          char *name, size_t namelen) POND_MUSTCHECK;

/* pond_api_token_role returns the role of a live API token, or
 * POND_ROLE_NONE. Store errors also give POND_ROLE_NONE and are logged. */
pond_role pond_api_token_role(PGconn *conn, const char *token);

/* pond_auth_failure is why a presented credential was refused. */
typedef enum pond_auth_failure {
	POND_AUTH_MISSING = 0, /* no token at all */
	POND_AUTH_UNKNOWN,     /* malformed, unknown or revoked */
	POND_AUTH_ROLE,        /* a live token without the role needed */
	POND_AUTH_NFAILURES,
} pond_auth_failure;

/* pond_auth_refused counts a refused credential of this process; the
 * lookups above count their own refusals (an empty token is "missing"),
 * callers count what only they can tell (a missing header, a role). */
void pond_auth_refused(pond_auth_failure why);

/* pond_auth_register_metrics registers pond_auth_failures_total{reason}
 * (process-wide counters) in m; a service does it once. */
int pond_auth_register_metrics(pond_metrics *m) POND_MUSTCHECK;

/* POND_PII_HASH_LEN is the length of a keyed PII hash in hex. */
#define POND_PII_HASH_LEN 64

/* pond_pii_hash writes into out (POND_PII_HASH_LEN + 1 bytes) the keyed
 * hash of a PII value (a phone number, an openid): lowercase hex of
 * HMAC-SHA256(key, value). Ingest stores aliases only in this form, and a
 * gateway holding the same key (POND_PII_KEY) computes the same string to
 * match a touch's alias to its own contacts. */
int pond_pii_hash(const char *key, size_t keylen, const char *value,
                  size_t len, char *out) POND_MUSTCHECK;

#endif
