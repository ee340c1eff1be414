/*
 * demo_setup.c - what `pond demo` defines besides its events: tag rules on
 * the tagging service (PUT /v1/tag-rules/TAG, API.md section 5) and a few
 * campaigns on the scheduler (POST /v1/campaigns, section 3), both with an
 * admin token, through the services' own HTTP APIs as an operator would.
 *
 * It also sets three SMART goals on reporting (PUT /v1/goals/ID, section
 * 4), measured against the first month of the demo's window.
 *
 * All are safe to repeat: a PUT replaces a rule or a goal with the same
 * one, and a campaign whose name the scheduler already lists is not
 * created again.
 * Requests go through the CLI's HTTP client (pond_cli_http, cli/http.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "demo.h"

/* setup_call is pond_cli_http that prints what went wrong when the answer is
 * not 2xx; returns 0, 1 (answered, but no), 2 (409: it exists already) or
 * -1 (no answer). */
static int
setup_call(const char *base_url, const char *method, const char *path,
           const char *token, const char *body, char **reply)
{
	char *text = NULL;
	int status = 0;

	if (pond_cli_http(base_url, method, path, token, body, &status,
	                  &text) != 0) {
		return (-1);
	}
	if (status == 409) {
		free(text);
		return (2);
	}
	if (status / 100 != 2) {
		fprintf(stderr, "pond: %s %s%s: HTTP %d: %.300s\n", method,
		        base_url, path, status, text);
		free(text);
		return (1);
	}
	if (reply != NULL) {
		*reply = text;
	} else {
		free(text);
	}
	return (0);
}

/* setup_put PUTs body (freed here; NULL: out of memory) at PREFIX/ID and
 * counts a refusal in *failed; returns -1 when there was no answer (or no
 * memory), else 0. */
static int
setup_put(const char *base_url, const char *token, const char *prefix,
          const char *id, char *body, int *failed)
{
	char path[128];
	int rv;

	if (body == NULL) {
		return (-1);
	}
	snprintf(path, sizeof(path), "%s/%s", prefix, id);
	rv = setup_call(base_url, "PUT", path, token, body, NULL);
	free(body);
	if (rv < 0) {
		return (-1);
	}
	*failed += rv != 0;
	return (0);
}

/* The demo's tag rules: conditions of API.md section 5 an operator of
 * this brand would write. */
static const struct {
	const char *tag, *condition;
} setup_rules[] = {
        {"coupon_hunter",
         "{\"all\": [{\"field\": \"rewards_fen\", \"op\": \">\", \"value\": "
         "0}, {\"field\": \"orders\", \"op\": \"=\", \"value\": 0}, "
         "{\"field\": \"days_since_added\", \"op\": \">=\", \"value\": 14}]}"},
        {"high_value", "{\"field\": \"net_revenue_fen\", \"op\": \">=\", "
                       "\"value\": 100000}"},
        {"vip_candidate",
         "{\"all\": [{\"field\": \"orders\", \"op\": \">=\", \"value\": 3}, "
         "{\"field\": \"lifecycle\", \"op\": \"!=\", \"value\": "
         "\"member\"}]}"},
        {"dormant",
         "{\"all\": [{\"field\": \"orders\", \"op\": \">=\", \"value\": 1}, "
         "{\"field\": \"days_since_last_order\", \"op\": \">=\", \"value\": "
         "60}]}"},
        {"east_china",
         "{\"field\": \"region\", \"op\": \"in\", \"value\": [\"Shanghai\", "
         "\"Hangzhou\", \"Nanjing\", \"Suzhou\"]}"},
        {"super_inviter",
         "{\"field\": \"invitees\", \"op\": \">=\", \"value\": 3}"},
        {"tea_lover", "{\"field\": \"attributes.interest\", \"op\": \"=\", "
                      "\"value\": \"tea\"}"},
};

int
demo_setup_rules(const char *base_url, const char *token)
{
	int failed = 0;

	for (size_t i = 0; i < POND_CLI_NELEM(setup_rules); i++) {
		char *body = NULL;
		if (asprintf(&body, "{\"condition\": %s}",
		             setup_rules[i].condition) < 0) {
			body = NULL;
		}
		if (setup_put(base_url, token, "/v1/tag-rules",
		              setup_rules[i].tag, body, &failed) != 0) {
			return (-1);
		}
	}
	return (failed);
}

/* setup_listed reports whether the answer of GET /v1/campaigns (an array,
 * or an object holding one) has a campaign called name. */
static bool
setup_listed(const json_t *answer, const char *name)
{
	const char *key;
	json_t *list, *c;
	size_t i;

	if (json_is_object(answer)) {
		json_object_foreach((json_t *)answer, key, list)
		{
			if (json_is_array(list) && setup_listed(list, name)) {
				return (true);
			}
		}
		return (false);
	}
	json_array_foreach(answer, i, c)
	{
		const char *n = json_string_value(json_object_get(c, "name"));
		if (n != NULL && strcmp(n, name) == 0) {
			return (true);
		}
	}
	return (false);
}

static const char *const setup_campaign_ids[] = {
        "welcome-red-packet", "repurchase-reminder", "dormant-win-back",
        "festival-offer", "invite-3"};

/* setup_campaigns returns the demo's campaigns (API.md section 3) as a
 * JSON array; festival is the RFC 3339 time of the festival offer and
 * festival_end the end of its window. */
static json_t *
setup_campaigns(const char *festival, const char *festival_end)
{
	return (json_pack(
	        "[{s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s}, s:i, s:i, s:i, "
	        "s:{s:s, s:i}},"
	        " {s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:i}, s:i, s:i, s:i},"
	        " {s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:i}, s:i, s:i, s:i, "
	        "s:{s:s, s:i}},"
	        " {s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:i}, s:s, s:s, s:i, "
	        "s:i, s:i, s:i},"
	        " {s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:i}, s:i, s:i, "
	        "s:{s:i, s:{s:s, s:i}}}]",
	        /* A red packet to every new contact but the package card
	         * ones, whose card already carried one. */
	        "name", "welcome-red-packet", "channel", "wecom_message",
	        "template", "welcome_red_packet", "trigger", "event",
	        "contact_added", "audience", "field", "channel", "op",
	        "!=", "value", "package_card", "delay_s", 300, "holdout_pct",
	        10, "cost_per_touch_fen", 0, "reward", "kind", "red_packet",
	        "amount_fen", 300,
	        /* The reminder when a category's repurchase cycle has run. */
	        "name", "repurchase-reminder", "channel", "wecom_message",
	        "template", "repurchase_reminder", "trigger", "tag_added",
	        "repurchase_due", "audience", "field", "orders", "op",
	        ">=", "value", 1, "delay_s", 3600, "holdout_pct", 10,
	        "cost_per_touch_fen", 0,
	        /* Win back who has not bought for 60 days: an SMS coupon. */
	        "name", "dormant-win-back", "channel", "sms", "template",
	        "win_back_coupon", "trigger", "tag_added", "dormant",
	        "audience", "field", "orders", "op", ">=", "value", 1,
	        "delay_s", 0, "holdout_pct", 20, "cost_per_touch_fen", 5,
	        "reward", "kind", "coupon", "amount_fen", 1000,
	        /* Limited time and quantity: 100 coupons to buyers. */
	        "name", "festival-offer", "channel", "coupon", "template",
	        "festival_offer", "trigger", "at", festival, "audience",
	        "field", "orders", "op", ">=", "value", 1, "starts_at",
	        festival, "ends_at", festival_end, "quota", 100, "delay_s", 0,
	        "holdout_pct", 10, "cost_per_touch_fen", 10,
	        /* Fission: invite 3 friends, get a gift. */
	        "name", "invite-3-friends", "channel", "wecom_message",
	        "template", "invite_3_friends", "trigger", "tag_added",
	        "lifecycle:repurchase", "audience", "field", "orders", "op",
	        ">=", "value", 2, "delay_s", 600, "cost_per_touch_fen", 0,
	        "fission", "invitees_needed", 3, "reward", "kind", "gift",
	        "amount_fen", 2000));
}

int
demo_setup_campaigns(const char *base_url, const char *token,
                     pond_time festival_at)
{
	char at[32], end[32], *text = NULL;
	json_t *have, *list, *c;
	size_t i;
	int rv, failed = 0;

	if ((rv = setup_call(base_url, "GET", "/v1/campaigns", token, NULL,
	                     &text)) != 0) {
		return (rv < 0 ? -1 : 1);
	}
	have = json_loads(text, 0, NULL);
	free(text);
	pond_time_format_rfc3339(festival_at, at, sizeof(at));
	pond_time_format_rfc3339(festival_at + 3 * POND_USEC_PER_DAY, end,
	                         sizeof(end));
	if ((list = setup_campaigns(at, end)) == NULL) {
		json_decref(have);
		return (-1);
	}
	json_array_foreach(list, i, c)
	{
		const char *name =
		        json_string_value(json_object_get(c, "name"));
		char *body;
		/* The ids are the campaign_id the demo's events carry. */
		json_object_set_new(c, "id",
		                    json_string(setup_campaign_ids[i]));
		if (setup_listed(have, name)) {
			fprintf(stderr, "demo: campaign %s is already there\n",
			        name);
			continue;
		}
		if ((body = json_dumps(c, JSON_COMPACT)) == NULL) {
			failed++;
			continue;
		}
		rv = setup_call(base_url, "POST", "/v1/campaigns", token, body,
		                NULL);
		free(body);
		if (rv < 0) {
			failed = -1;
			break;
		}
		failed += rv == 1;
		fprintf(stderr, "demo: campaign %s %s\n", name,
		        rv == 0   ? "created"
		        : rv == 2 ? "is already there"
		                  : "refused");
	}
	json_decref(list);
	json_decref(have);
	return (failed);
}

int
demo_setup_goals(const char *base_url, const char *token, pond_time start,
                 pond_time end)
{
	char b_from[40], b_to[40], from[40], deadline[40];
	int failed = 0;

	/* Baseline: the window's first 30 days; the goals run from its last
	 * 30 days to 30 days after it. */
	pond_time_format_rfc3339(start, b_from, sizeof(b_from));
	pond_time_format_rfc3339(start + 30 * POND_USEC_PER_DAY, b_to,
	                         sizeof(b_to));
	pond_time_format_rfc3339(end - 30 * POND_USEC_PER_DAY, from,
	                         sizeof(from));
	pond_time_format_rfc3339(end + 30 * POND_USEC_PER_DAY, deadline,
	                         sizeof(deadline));
	static const struct {
		const char *id, *spec;
	} goals[] = {
	        {"more-customers",
	         "\"metric\": \"acquisition.new_customers\", \"params\": "
	         "{}, \"target_change\": 0.2"},
	        {"repurchase",
	         "\"metric\": \"repurchase.repurchase_rate\", \"params\": "
	         "{}, \"target_change\": 0.25"},
	        {"cheaper-douyin",
	         "\"metric\": \"acquisition.full_cac_fen\", \"params\": "
	         "{\"channel\": \"douyin\"}, \"target_change\": -0.2"},
	};
	for (size_t i = 0; i < POND_CLI_NELEM(goals); i++) {
		char *body = NULL;
		if (asprintf(&body,
		             "{%s, \"baseline_from\": \"%s\", "
		             "\"baseline_to\": \"%s\", \"from\": \"%s\", "
		             "\"deadline\": \"%s\"}",
		             goals[i].spec, b_from, b_to, from,
		             deadline) < 0) {
			body = NULL;
		}
		if (setup_put(base_url, token, "/v1/goals", goals[i].id, body,
		              &failed) != 0) {
			return (-1);
		}
	}
	return (failed);
}
