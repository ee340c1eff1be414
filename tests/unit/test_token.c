/*
 * test_token.c - token generation: shape, uniqueness, buffer limits.
 *
 * Looking tokens up in the store is covered by the CLI tests
 * (tests/integration/test_cli.c), which add them the way operators do.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

#define NTOKENS 2000

/* is_lower_hex reports whether s is exactly n lowercase hex digits. */
static bool
is_lower_hex(const char *s, size_t n)
{
	if (strlen(s) != n) {
		return (false);
	}
	for (size_t i = 0; i < n; i++) {
		if (strchr("0123456789abcdef", s[i]) == NULL || s[i] == '\0') {
			return (false);
		}
	}
	return (true);
}

Test(token, generate_is_prefix_and_64_hex_digits)
{
	char buf[POND_TOKEN_MAX];

	cr_assert_eq(pond_token_generate("pub_", buf, sizeof(buf)), 0);
	cr_assert_eq(strncmp(buf, "pub_", 4), 0, "token %s", buf);
	cr_assert(is_lower_hex(buf + 4, 64), "token %s", buf);

	cr_assert_eq(pond_token_generate("api_", buf, sizeof(buf)), 0);
	cr_assert_eq(strncmp(buf, "api_", 4), 0, "token %s", buf);
	cr_assert(is_lower_hex(buf + 4, 64), "token %s", buf);

	cr_assert_eq(pond_token_generate("", buf, sizeof(buf)), 0);
	cr_assert(is_lower_hex(buf, 64), "token %s", buf);
}

static int
cmp_str(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

Test(token, generate_never_repeats)
{
	char **tokens = calloc(NTOKENS, sizeof(*tokens));
	int nibbles[16] = {0};

	cr_assert_not_null(tokens);
	for (int i = 0; i < NTOKENS; i++) {
		tokens[i] = malloc(POND_TOKEN_MAX);
		cr_assert_not_null(tokens[i]);
		cr_assert_eq(
		        pond_token_generate("pub_", tokens[i], POND_TOKEN_MAX),
		        0);
		for (const char *p = tokens[i] + 4; *p != '\0'; p++) {
			nibbles[*p <= '9' ? *p - '0' : *p - 'a' + 10]++;
		}
	}
	qsort(tokens, NTOKENS, sizeof(*tokens), cmp_str);
	for (int i = 1; i < NTOKENS; i++) {
		cr_assert_str_neq(tokens[i - 1], tokens[i]);
	}
	/* 128,000 random nibbles: each value is expected 8,000 times with a
	 * standard deviation near 87; a value outside 7,000..9,000 means the
	 * bytes are not random (or the hex encoding drops a digit). */
	for (int v = 0; v < 16; v++) {
		cr_assert(nibbles[v] > 7000 && nibbles[v] < 9000,
		          "nibble %x seen %d times", v, nibbles[v]);
	}
	for (int i = 0; i < NTOKENS; i++) {
		free(tokens[i]);
	}
	free(tokens);
}

Test(token, generate_refuses_a_short_buffer)
{
	char buf[POND_TOKEN_MAX];

	/* prefix 4 + 64 digits + NUL = 69 bytes exactly fits. */
	cr_assert_eq(pond_token_generate("pub_", buf, 69), 0);
	cr_assert_eq(strlen(buf), 68);
	cr_assert_eq(pond_token_generate("pub_", buf, 68), POND_EINVAL);
	cr_assert_eq(pond_token_generate("pub_", buf, 0), POND_EINVAL);
}

Test(token, hash_sql_names_its_parameter)
{
	cr_assert_str_eq(POND_TOKEN_HASH_SQL("$2"),
	                 "sha256(convert_to($2, 'UTF8'))");
}

Test(token, implausible_tokens_never_reach_the_store)
{
	char long_token[POND_TOKEN_MAX + 10];
	int64_t id = -1;
	char name[32];

	memset(long_token, 'a', sizeof(long_token) - 1);
	long_token[sizeof(long_token) - 1] = '\0';
	/* A NULL connection would crash if any of these were sent: bad input
	 * from a peer is answered "unknown" without a query. */
	const char *bad[] = {NULL,           "",     "pub_ab cd",
	                     "pub_\xff\xfe", "x'--", long_token};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(pond_publisher_lookup(NULL, bad[i], &id, name,
		                                   sizeof(name)),
		             POND_EAUTH, "case %zu", i);
		cr_assert_eq(pond_api_token_role(NULL, bad[i]), POND_ROLE_NONE,
		             "case %zu", i);
	}
	cr_assert_eq(id, -1);
}
