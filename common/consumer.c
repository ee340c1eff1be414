/*
 * consumer.c - the stream consumer (see consumer.h and docs/streams.md).
 *
 * Consumer state machine, per partition this instance owns:
 *
 *   cursor   last seq applied (known after the first job on the partition);
 *   live     records heard on SUB that follow the cursor without a gap;
 *   busy     a job is running for the partition (at most one at a time, so
 *            records of a partition are applied strictly in order);
 *   stale    the table must be read (start, gap, quiet-spell poll, error).
 *
 * A job locks the partition's cursor row (FOR UPDATE), so even two instances
 * that both think they own a partition apply each record once: the second
 * waits, then sees the advanced cursor. Live records are used only when the
 * first one is exactly cursor + 1; anything else reads the table.
 *
 * Ownership: a separate one-connection pool holds session advisory locks,
 * key (consumer hash, partition) per owned partition and (consumer hash,
 * MEMBER_BASE + slot) per live instance. Every rebalance tick counts the
 * instances and each keeps ceil(P / instances) partitions, releasing idle
 * extras and taking free ones. A dead instance's session ends, its locks go,
 * and the others take its partitions on their next tick.
 */
#include "consumer.h"

#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pond/stream.pb-c.h"

#define MEMBER_BASE 1000000
#define MAX_MEMBERS 64

typedef struct live_rec {
	int64_t seq;
	uint8_t *payload;
	size_t len;
} live_rec;

typedef struct consumer_part {
	uint32_t partition;
	bool owned;
	bool busy;
	bool stale;
	int64_t cursor; /* -1 until known */
	int64_t head;   /* highest seq known to exist */
	live_rec *live;
	size_t nlive;
	size_t caplive;

} consumer_part;

typedef struct consumer_counters {
	pond_counter applied;
	pond_counter batches_live;
	pond_counter batches_table;
	pond_counter apply_errors;
	pond_counter announcements;
	pond_counter gaps;
} consumer_counters;

struct pond_consumer {
	pond_consumer_config conf;
	char table[64];
	uv_loop_t *loop;
	pond_bus *bus;
	pond_db *db;
	pond_db *lockdb;
	pond_sub *sub;
	uv_timer_t timer;
	int32_t lock_key;
	uint32_t nparts; /* 0 until the first lock job */
	consumer_part *parts;
	int member_slot; /* -1 until registered */
	int jobs;        /* jobs in flight, all kinds */
	bool lock_busy;
	bool poll_busy;
	pond_time last_rebalance;
	pond_time last_poll;
	bool stopping;
	bool timer_closed;
	bool closing_locks; /* the last step of stopping has begun */
	void (*stopped)(void *);
	void *stopped_arg;
	consumer_counters counters;
};

static void consumer_kick(pond_consumer *c, consumer_part *part);
static void consumer_maybe_done(pond_consumer *c);

static void
part_clear_live(consumer_part *part)
{
	for (size_t i = 0; i < part->nlive; i++) {
		free(part->live[i].payload);
	}
	part->nlive = 0;
}

/* part_drop_applied forgets live records at or below the cursor, and all of
 * them when what is left does not follow the cursor. */
static void
part_drop_applied(consumer_part *part)
{
	size_t skip = 0;

	if (part->nlive == 0) {
		return;
	}
	while (skip < part->nlive && part->live[skip].seq <= part->cursor) {
		free(part->live[skip].payload);
		skip++;
	}
	memmove(part->live, part->live + skip,
	        (part->nlive - skip) * sizeof(live_rec));
	part->nlive -= skip;
	if (part->nlive > 0 && part->live[0].seq != part->cursor + 1) {
		part_clear_live(part);
		part->stale = true;
	}
}

/* --- apply job
 * ---------------------------------------------------------------- */

typedef struct apply_job {
	pond_consumer *c;
	uint32_t partition;
	live_rec *live; /* taken from the partition, freed by the job's done */
	size_t nlive;
	int64_t cursor; /* out: cursor after the job */
	bool more;      /* out: a full batch was read; read again */
	bool from_table;
	size_t applied;
} apply_job;

static int64_t
be64_at(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return ((int64_t)be64toh(v));
}

static int
apply_lock_cursor(PGconn *conn, pond_consumer *c, const char *part,
                  int64_t *cursor)
{
	const char *params[] = {c->conf.name, c->conf.stream, part};
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(conn, NULL,
	                        "INSERT INTO consumer_cursors (consumer, "
	                        "stream, partition) "
	                        "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
	                        3, params)) != 0) {
		return (rv);
	}
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT seq FROM consumer_cursors WHERE consumer = $1 "
	             "AND stream = $2 AND partition = $3 FOR UPDATE",
	             3, params)) != 0) {
		return (rv);
	}
	*cursor = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return (POND_OK);
}

static int
apply_read_table(PGconn *conn, pond_consumer *c, const char *part,
                 int64_t cursor, PGresult **resp)
{
	char sql[256], from[24], limit[16];
	const char *params[] = {part, from, limit};

	snprintf(from, sizeof(from), "%" PRId64, cursor);
	snprintf(limit, sizeof(limit), "%" PRIu32, c->conf.batch);
	/* The table name comes from the service's own config, never from
	 * input; it is checked to be an identifier at start.
	 * sql-check: ok */
	snprintf(sql, sizeof(sql),
	         "SELECT seq, payload FROM %s WHERE partition = $1 AND seq > "
	         "$2 "
	         "ORDER BY seq LIMIT $3",
	         c->table);
	PGresult *res =
	        PQexecParams(conn, sql, 3, NULL, params, NULL, NULL, 1);
	int rv = pond_pq_check(conn, res, "consumer_read");
	if (rv != 0) {
		PQclear(res);
		return (rv);
	}
	*resp = res;
	return (POND_OK);
}

static int
apply_work(PGconn *conn, void *arg)
{
	apply_job *job = arg;
	pond_consumer *c = job->c;
	char part[16], seqbuf[24];
	pond_record *recs = NULL;
	PGresult *res = NULL;
	size_t n = 0;
	int64_t cursor;
	int rv;

	snprintf(part, sizeof(part), "%" PRIu32, job->partition);
	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0 ||
	    (rv = apply_lock_cursor(conn, c, part, &cursor)) != 0) {
		goto out;
	}
	job->cursor = cursor;
	if (job->nlive > 0 && job->live[0].seq == cursor + 1) {
		if ((recs = calloc(job->nlive, sizeof(*recs))) == NULL) {
			rv = POND_ENOMEM;
			goto out;
		}
		for (; n < job->nlive; n++) {
			recs[n] = (pond_record){
			        job->partition, job->live[n].seq,
			        job->live[n].payload, job->live[n].len};
		}
	} else {
		job->from_table = true;
		if ((rv = apply_read_table(conn, c, part, cursor, &res)) !=
		    0) {
			goto out;
		}
		int rows = PQntuples(res);
		if (rows > 0 &&
		    (recs = calloc((size_t)rows, sizeof(*recs))) == NULL) {
			rv = POND_ENOMEM;
			goto out;
		}
		/* Seqs are gap-free by construction; stop at a hole anyway
		 * rather than apply past it. */
		for (int i = 0; i < rows; i++) {
			int64_t seq = be64_at(PQgetvalue(res, i, 0));
			if (seq != cursor + 1 + (int64_t)n) {
				pond_log_error("consumer_gap_in_table",
				               "consumer=%s partition=%s "
				               "expected=%" PRId64
				               " got=%" PRId64,
				               c->conf.name, part,
				               cursor + 1 + (int64_t)n, seq);
				break;
			}
			recs[n++] = (pond_record){
			        job->partition, seq,
			        (const uint8_t *)PQgetvalue(res, i, 1),
			        (size_t)PQgetlength(res, i, 1)};
		}
		job->more = rows == (int)c->conf.batch;
	}
	if (n == 0) {
		rv = pond_pq_exec(conn, "COMMIT");
		goto out;
	}
	if ((rv = c->conf.apply(conn, recs, n, c->conf.arg)) != 0) {
		goto out;
	}
	snprintf(seqbuf, sizeof(seqbuf), "%" PRId64, recs[n - 1].seq);
	const char *params[] = {c->conf.name, c->conf.stream, part, seqbuf};
	if ((rv = pond_pq_query(
	             conn, NULL,
	             "UPDATE consumer_cursors SET seq = $4, updated_at = "
	             "now() "
	             "WHERE consumer = $1 AND stream = $2 AND partition = $3",
	             4, params)) != 0 ||
	    (rv = pond_pq_exec(conn, "COMMIT")) != 0) {
		goto out;
	}
	job->cursor = recs[n - 1].seq;
	job->applied = n;
out:
	if (rv != 0) {
		pond_pq_rollback(conn);
	}
	free(recs);
	PQclear(res);
	return (rv);
}

static void
apply_done(int rv, void *arg)
{
	apply_job *job = arg;
	pond_consumer *c = job->c;
	consumer_part *part = &c->parts[job->partition];

	for (size_t i = 0; i < job->nlive; i++) {
		free(job->live[i].payload);
	}
	free(job->live);
	part->busy = false;
	c->jobs--;
	if (rv == 0) {
		part->cursor = job->cursor;
		if (part->head < part->cursor) {
			part->head = part->cursor;
		}
		pond_counter_add(&c->counters.applied, job->applied);
		if (job->applied > 0) {
			pond_counter_inc(job->from_table
			                         ? &c->counters.batches_table
			                         : &c->counters.batches_live);
		}
		part->stale = job->more;
		part_drop_applied(part);
		if (job->applied > 0 && c->conf.committed != NULL) {
			c->conf.committed(job->partition, c->conf.arg);
		}
	} else {
		/* Leave it to the next poll: retrying at once would spin on
		 * a store that is down. */
		pond_counter_inc(&c->counters.apply_errors);
		pond_log_warn("consumer_apply_failed",
		              "consumer=%s partition=%" PRIu32 " error=\"%s\"",
		              c->conf.name, job->partition, pond_strerror(rv));
		part_clear_live(part);
		part->stale = false;
	}
	free(job);
	if (c->stopping) {
		consumer_maybe_done(c);
		return;
	}
	if (rv == 0) {
		consumer_kick(c, part);
	}
}

/* consumer_kick starts a job on part when there is something to do. */
static void
consumer_kick(pond_consumer *c, consumer_part *part)
{
	apply_job *job;

	if (c->stopping || !part->owned || part->busy ||
	    (!part->stale && part->nlive == 0)) {
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		return;
	}
	job->c = c;
	job->partition = part->partition;
	/* Hand the live records to the job only when they follow the known
	 * cursor; otherwise the job reads the table. */
	if (!part->stale && part->cursor >= 0 && part->nlive > 0) {
		job->live = part->live;
		job->nlive = part->nlive;
		part->live = NULL;
		part->nlive = part->caplive = 0;
	}
	if (pond_db_submit(c->db, apply_work, apply_done, job) != 0) {
		for (size_t i = 0; i < job->nlive; i++) {
			free(job->live[i].payload);
		}
		free(job->live);
		free(job);
		return;
	}
	part->busy = true;
	part->stale = false;

	c->jobs++;
}

/* --- live records from SUB
 * ------------------------------------------------------ */

static void
consumer_heard(const uint8_t *msg, size_t len, void *arg)
{
	pond_consumer *c = arg;
	const uint8_t *nl = memchr(msg, '\n', len < 96 ? len : 96);
	Pond__StreamRecord *rec;
	consumer_part *part;
	live_rec *lr;

	pond_counter_inc(&c->counters.announcements);
	if (nl == NULL || c->nparts == 0) {
		return;
	}
	nl++;
	rec = pond__stream_record__unpack(NULL, len - (size_t)(nl - msg), nl);
	if (rec == NULL) {
		pond_log_warn("consumer_bad_announcement",
		              "consumer=%s len=%zu", c->conf.name, len);
		return;
	}
	if (rec->partition >= c->nparts ||
	    strcmp(rec->stream, c->conf.stream) != 0) {
		goto out;
	}
	part = &c->parts[rec->partition];
	if ((int64_t)rec->seq > part->head) {
		part->head = (int64_t)rec->seq;
	}
	if (!part->owned || part->cursor < 0 ||
	    (int64_t)rec->seq <= part->cursor) {
		goto out;
	}
	int64_t expect = part->nlive > 0 ? part->live[part->nlive - 1].seq + 1
	                                 : part->cursor + 1;
	if ((int64_t)rec->seq != expect || part->nlive >= c->conf.batch) {
		/* A gap (a dropped announcement) or a backlog: the table has
		 * everything, in order. */
		if ((int64_t)rec->seq > expect) {
			pond_counter_inc(&c->counters.gaps);
		}
		part_clear_live(part);
		part->stale = true;
		consumer_kick(c, part);
		goto out;
	}
	if (part->nlive == part->caplive) {
		size_t cap = part->caplive ? part->caplive * 2 : 16;
		live_rec *grown = realloc(part->live, cap * sizeof(*grown));
		if (grown == NULL) {
			part->stale = true;
			goto out;
		}
		part->live = grown;
		part->caplive = cap;
	}
	lr = &part->live[part->nlive];
	if ((lr->payload = malloc(rec->payload.len + 1)) == NULL) {
		part->stale = true;
		goto out;
	}
	memcpy(lr->payload, rec->payload.data, rec->payload.len);
	lr->len = rec->payload.len;
	lr->seq = (int64_t)rec->seq;
	part->nlive++;
	consumer_kick(c, part);
out:
	pond__stream_record__free_unpacked(rec, NULL);
}

/* --- ownership
 * -------------------------------------------------------------------- */

typedef struct lock_job {
	pond_consumer *c;
	uint32_t nparts; /* in: known count (0: read it); out: the count */
	int slot;        /* out: this instance's member slot, -1 if none */
	int members;
	bool busy[POND_MAX_PARTITIONS];  /* in: partitions with a job */
	bool owned[POND_MAX_PARTITIONS]; /* out */
} lock_job;

static int
lock_try(PGconn *conn, const char *key, int64_t sub, bool *got)
{
	char subbuf[24];
	const char *params[] = {key, subbuf};
	PGresult *res;
	int rv;

	snprintf(subbuf, sizeof(subbuf), "%" PRId64, sub);
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT pg_try_advisory_lock($1::int, $2::int)", 2,
	             params)) != 0) {
		return (rv);
	}
	*got = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return (POND_OK);
}

static int
lock_unlock(PGconn *conn, const char *key, int64_t sub)
{
	char subbuf[24];
	const char *params[] = {key, subbuf};

	snprintf(subbuf, sizeof(subbuf), "%" PRId64, sub);
	return (pond_pq_query(conn, NULL,
	                      "SELECT pg_advisory_unlock($1::int, $2::int)", 2,
	                      params));
}

/* lock_read_held fills the partitions and member slot this session holds.
 * pg_locks spans the whole cluster; the pid keeps this to our session. */
static int
lock_read_held(PGconn *conn, lock_job *job, const char *key, uint32_t *nowned)
{
	const char *params[] = {key};
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT objid::bigint FROM pg_locks WHERE "
	             "locktype = 'advisory' AND pid = pg_backend_pid() AND "
	             "classid = $1::bigint::oid AND objsubid = 2 AND granted",
	             1, params)) != 0) {
		return (rv);
	}
	job->slot = -1;
	*nowned = 0;
	memset(job->owned, 0, sizeof(job->owned));
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		if (id >= MEMBER_BASE) {
			job->slot = (int)(id - MEMBER_BASE);
		} else if (id < job->nparts) {
			job->owned[id] = true;
			(*nowned)++;
		}
	}
	PQclear(res);
	return (POND_OK);
}

/* lock_count_members counts live instances of this consumer. Advisory locks
 * are per database, but pg_locks shows every database's: another install
 * on the same cluster must not count. */
static int
lock_count_members(PGconn *conn, const char *key, int *members)
{
	char base[24];
	const char *params[] = {key, base};
	PGresult *res;
	int rv;

	snprintf(base, sizeof(base), "%d", MEMBER_BASE);
	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT count(*) FROM pg_locks WHERE locktype "
	                        "= 'advisory' "
	                        "AND database = (SELECT oid FROM pg_database "
	                        "WHERE datname = current_database()) "
	                        "AND classid = $1::bigint::oid AND objsubid = "
	                        "2 AND granted "
	                        "AND objid >= $2::bigint::oid",
	                        2, params)) != 0) {
		return (rv);
	}
	*members = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return (POND_OK);
}

static int
lock_work(PGconn *conn, void *arg)
{
	lock_job *job = arg;
	pond_consumer *c = job->c;
	char key[16];
	uint32_t nowned, target;
	bool got;
	int rv;

	snprintf(key, sizeof(key), "%" PRId32, c->lock_key);
	if (job->nparts == 0 &&
	    (rv = pond_stream_partitions(conn, c->conf.stream,
	                                 &job->nparts)) != 0) {
		return (rv);
	}
	if (job->nparts > POND_MAX_PARTITIONS) {
		return (POND_EINVAL);
	}
	if ((rv = lock_read_held(conn, job, key, &nowned)) != 0) {
		return (rv);
	}
	for (int s = 0; job->slot < 0 && s < MAX_MEMBERS; s++) {
		if ((rv = lock_try(conn, key, MEMBER_BASE + s, &got)) != 0) {
			return (rv);
		}
		if (got) {
			job->slot = s;
		}
	}
	if (job->slot < 0 ||
	    (rv = lock_count_members(conn, key, &job->members)) != 0) {
		return (rv != 0 ? rv : POND_EBUS);
	}
	target = (job->nparts + (uint32_t)job->members - 1) /
	         (uint32_t)job->members;
	/* Give back idle extras from the top, so instances settle on
	 * disjoint ranges; busy ones are released on a later tick. */
	for (uint32_t p = job->nparts; p-- > 0 && nowned > target;) {
		if (job->owned[p] && !job->busy[p]) {
			if ((rv = lock_unlock(conn, key, p)) != 0) {
				return (rv);
			}
			job->owned[p] = false;
			nowned--;
		}
	}
	/* Start looking at this slot's share, so instances starting
	 * together do not all fight over partition 0. */
	uint32_t start = (uint32_t)job->slot * target % job->nparts;
	for (uint32_t i = 0; i < job->nparts && nowned < target; i++) {
		uint32_t p = (start + i) % job->nparts;
		if (job->owned[p]) {
			continue;
		}
		if ((rv = lock_try(conn, key, p, &got)) != 0) {
			return (rv);
		}
		if (got) {
			job->owned[p] = true;
			nowned++;
		}
	}
	return (POND_OK);
}

static int
consumer_alloc_parts(pond_consumer *c, uint32_t nparts)
{
	if ((c->parts = calloc(nparts, sizeof(*c->parts))) == NULL) {
		return (POND_ENOMEM);
	}
	for (uint32_t p = 0; p < nparts; p++) {
		c->parts[p].partition = p;
		c->parts[p].cursor = -1;
	}
	c->nparts = nparts;
	return (POND_OK);
}

static void
lock_done(int rv, void *arg)
{
	lock_job *job = arg;
	pond_consumer *c = job->c;

	c->jobs--;
	c->lock_busy = false;
	if (rv != 0 || c->stopping ||
	    (c->nparts == 0 && consumer_alloc_parts(c, job->nparts) != 0)) {
		if (rv != 0) {
			pond_log_warn("consumer_rebalance_failed",
			              "consumer=%s error=\"%s\"", c->conf.name,
			              pond_strerror(rv));
		}
		free(job);
		consumer_maybe_done(c);
		return;
	}
	c->member_slot = job->slot;
	pond_log_debug("rebalanced",
	               "consumer=%s stream=%s slot=%d members=%d",
	               c->conf.name, c->conf.stream, job->slot, job->members);
	for (uint32_t p = 0; p < c->nparts; p++) {
		consumer_part *part = &c->parts[p];
		if (job->owned[p] && !part->owned) {
			pond_log_info(
			        "partition_taken",
			        "consumer=%s stream=%s partition=%" PRIu32
			        " members=%d",
			        c->conf.name, c->conf.stream, p, job->members);
			part->owned = true;
			part->cursor = -1; /* someone else may have moved it */
			part->stale = true;
			consumer_kick(c, part);
		} else if (!job->owned[p] && part->owned) {
			pond_log_info(
			        "partition_released",
			        "consumer=%s stream=%s partition=%" PRIu32
			        " members=%d",
			        c->conf.name, c->conf.stream, p, job->members);
			part->owned = false;
			part_clear_live(part);
		}
	}
	free(job);
}

static void
consumer_rebalance(pond_consumer *c)
{
	lock_job *job;

	if (c->lock_busy || (job = calloc(1, sizeof(*job))) == NULL) {
		return;
	}
	job->c = c;
	job->nparts = c->nparts;
	for (uint32_t p = 0; p < c->nparts; p++) {
		job->busy[p] = c->parts[p].busy;
	}
	if (pond_db_submit(c->lockdb, lock_work, lock_done, job) != 0) {
		free(job);
		return;
	}
	c->lock_busy = true;
	c->jobs++;
}

/* --- quiet-spell poll
 * ---------------------------------------------------------- */

typedef struct poll_job {
	pond_consumer *c;
	int64_t heads[POND_MAX_PARTITIONS];
} poll_job;

static int
poll_work(PGconn *conn, void *arg)
{
	poll_job *job = arg;
	const char *params[] = {job->c->conf.stream};
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT partition, head FROM stream_heads "
	                        "WHERE stream = $1",
	                        1, params)) != 0) {
		return (rv);
	}
	for (int i = 0; i < PQntuples(res); i++) {
		long p = strtol(PQgetvalue(res, i, 0), NULL, 10);
		if (p >= 0 && p < POND_MAX_PARTITIONS) {
			job->heads[p] =
			        strtoll(PQgetvalue(res, i, 1), NULL, 10);
		}
	}
	PQclear(res);
	return (POND_OK);
}

static void
poll_done(int rv, void *arg)
{
	poll_job *job = arg;
	pond_consumer *c = job->c;

	c->jobs--;
	c->poll_busy = false;
	for (uint32_t p = 0; rv == 0 && !c->stopping && p < c->nparts; p++) {
		consumer_part *part = &c->parts[p];
		if (job->heads[p] > part->head) {
			part->head = job->heads[p];
		}
		if (part->owned &&
		    (part->cursor < 0 || part->head > part->cursor)) {
			part->stale = true;
			consumer_kick(c, part);
		}
	}
	free(job);
	consumer_maybe_done(c);
}

static void
consumer_poll(pond_consumer *c)
{
	poll_job *job;

	if (c->poll_busy || c->nparts == 0 ||
	    (job = calloc(1, sizeof(*job))) == NULL) {
		return;
	}
	job->c = c;
	if (pond_db_submit(c->db, poll_work, poll_done, job) != 0) {
		free(job);
		return;
	}
	c->poll_busy = true;
	c->jobs++;
}

static void
consumer_tick(uv_timer_t *timer)
{
	pond_consumer *c = timer->data;
	uint64_t now = uv_now(c->loop);

	/* Loop time, not pond_now(): a test clock frozen in the past must not
	 * stop the consumer from polling. */
	if (now - (uint64_t)c->last_rebalance >=
	    (uint64_t)c->conf.rebalance_ms) {
		c->last_rebalance = (pond_time)now;
		consumer_rebalance(c);
	}
	if (now - (uint64_t)c->last_poll >= (uint64_t)c->conf.poll_ms) {
		c->last_poll = (pond_time)now;
		consumer_poll(c);
	}
}

/* --- metrics
 * ------------------------------------------------------------------- */

static void
consumer_collect_lag(pond_metrics_writer *w, void *arg)
{
	pond_consumer *c = arg;
	char labels[160];

	for (uint32_t p = 0; p < c->nparts; p++) {
		const consumer_part *part = &c->parts[p];
		if (!part->owned || part->cursor < 0) {
			continue;
		}
		snprintf(labels, sizeof(labels),
		         "consumer=\"%s\",stream=\"%s\",partition=\"%" PRIu32
		         "\"",
		         c->conf.name, c->conf.stream, p);
		pond_metrics_emit(w, labels,
		                  (double)(part->head - part->cursor));
	}
}

static void
consumer_collect_owned(pond_metrics_writer *w, void *arg)
{
	pond_consumer *c = arg;
	char labels[128];

	snprintf(labels, sizeof(labels), "consumer=\"%s\",stream=\"%s\"",
	         c->conf.name, c->conf.stream);
	pond_metrics_emit(w, labels, (double)pond_consumer_owned(c));
}

static int
consumer_register_metrics(pond_consumer *c, pond_metrics *m)
{
	static char labels[8][128]; /* one consumer per stream per process */
	static int nlabels;
	char *l;
	int rv;

	if (m == NULL) {
		return (POND_OK);
	}
	if (nlabels == 8) {
		return (POND_ETOOBIG);
	}
	l = labels[nlabels++];
	snprintf(l, 128, "consumer=\"%s\",stream=\"%s\"", c->conf.name,
	         c->conf.stream);
	if ((rv = pond_metrics_counter(
	             m, "pond_consumer_records_applied_total",
	             "Stream records applied by this consumer.", l,
	             &c->counters.applied)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_consumer_batches_live_total",
	             "Transactions applying records heard on SUB.", l,
	             &c->counters.batches_live)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_consumer_batches_table_total",
	             "Transactions applying records read from the table.", l,
	             &c->counters.batches_table)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_consumer_apply_errors_total",
	             "Transactions that failed and were rolled back.", l,
	             &c->counters.apply_errors)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_consumer_announcements_total",
	                               "Announcements heard on SUB.", l,
	                               &c->counters.announcements)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_consumer_gaps_total",
	             "Announcements that skipped a seq (read the table).", l,
	             &c->counters.gaps)) != 0 ||
	    (rv = pond_metrics_collector(
	             m, "pond_consumer_lag",
	             "Records committed and not yet applied, per partition.",
	             "gauge", consumer_collect_lag, c)) != 0 ||
	    (rv = pond_metrics_collector(m, "pond_consumer_owned_partitions",
	                                 "Partitions this instance owns.",
	                                 "gauge", consumer_collect_owned,
	                                 c)) != 0) {
		return (rv);
	}
	return (POND_OK);
}

/* --- start and stop
 * ---------------------------------------------------------- */

static bool
consumer_valid_table(const char *t)
{
	size_t n = strlen(t);

	return (n > 0 && n < 64 &&
	        strspn(t, "abcdefghijklmnopqrstuvwxyz_0123456789") == n);
}

int
pond_consumer_start(pond_consumer **cp, uv_loop_t *loop, pond_bus *bus,
                    pond_db *db, pond_metrics *metrics,
                    const pond_consumer_config *conf)
{
	pond_consumer *c;
	char app[96], topic[64];
	uint32_t h = 2166136261u;
	int rv;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return (POND_ENOMEM);
	}
	c->conf = *conf;
	c->loop = loop;
	c->bus = bus;
	c->db = db;
	c->member_slot = -1;
	if (c->conf.batch == 0) {
		c->conf.batch = 500;
	}
	if (c->conf.poll_ms <= 0) {
		c->conf.poll_ms = 1000;
	}
	if (c->conf.rebalance_ms <= 0) {
		c->conf.rebalance_ms = 2000;
	}
	snprintf(c->table, sizeof(c->table), "%s",
	         conf->table != NULL ? conf->table : conf->stream);
	if (!consumer_valid_table(c->table)) {
		free(c);
		return (POND_EINVAL);
	}
	/* The advisory-lock key: one int4 per (consumer, stream), kept
	 * non-negative so it reads back from pg_locks.classid unchanged. */
	for (const char *s = conf->name; *s; s++) {
		h = (h ^ (unsigned char)*s) * 16777619u;
	}
	h = (h ^ '/') * 16777619u;
	for (const char *s = conf->stream; *s; s++) {
		h = (h ^ (unsigned char)*s) * 16777619u;
	}
	c->lock_key = (int32_t)(h & 0x7fffffff);
	snprintf(app, sizeof(app), "pond-%s-%s-locks", conf->name,
	         conf->stream);
	if ((rv = pond_db_open(&c->lockdb, loop, conf->dsn, 1, app)) != 0) {
		free(c);
		return (rv);
	}
	if ((rv = consumer_register_metrics(c, metrics)) != 0) {
		goto err;
	}
	if (conf->sub_urls != NULL && *conf->sub_urls != '\0') {
		snprintf(topic, sizeof(topic), "%s/", conf->stream);
		if ((rv = pond_sub_dial(&c->sub, bus, conf->sub_urls, topic,
		                        16u << 20, consumer_heard, c)) != 0) {
			goto err;
		}
	}
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	uv_timer_start(&c->timer, consumer_tick, 0, 100);
	*cp = c;
	return (POND_OK);
err:
	pond_db_close(c->lockdb, NULL, NULL);
	free(c);
	return (rv);
}

static void
consumer_lockdb_closed(void *arg)
{
	pond_consumer *c = arg;
	void (*stopped)(void *) = c->stopped;
	void *stopped_arg = c->stopped_arg;

	for (uint32_t p = 0; p < c->nparts; p++) {
		part_clear_live(&c->parts[p]);
		free(c->parts[p].live);
	}
	free(c->parts);
	free(c);
	if (stopped != NULL) {
		stopped(stopped_arg);
	}
}

static void
consumer_maybe_done(pond_consumer *c)
{
	if (!c->stopping || c->jobs > 0 || !c->timer_closed ||
	    c->closing_locks) {
		return;
	}
	c->closing_locks = true;
	/* Ending the lock session releases every partition at once. */
	pond_db_close(c->lockdb, consumer_lockdb_closed, c);
}

static void
consumer_timer_closed(uv_handle_t *handle)
{
	pond_consumer *c = handle->data;

	c->timer_closed = true;
	consumer_maybe_done(c);
}

void
pond_consumer_stop(pond_consumer *c, void (*done)(void *), void *arg)
{
	c->stopping = true;
	c->stopped = done;
	c->stopped_arg = arg;
	if (c->sub != NULL) {
		pond_sub_close(c->sub);
		c->sub = NULL;
	}
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, consumer_timer_closed);
}

uint32_t
pond_consumer_owned(const pond_consumer *c)
{
	uint32_t n = 0;

	for (uint32_t p = 0; p < c->nparts; p++) {
		n += c->parts[p].owned;
	}
	return (n);
}

int64_t
pond_consumer_lag(const pond_consumer *c)
{
	int64_t lag = 0;

	for (uint32_t p = 0; p < c->nparts; p++) {
		if (c->parts[p].owned && c->parts[p].cursor >= 0) {
			lag += c->parts[p].head - c->parts[p].cursor;
		} else if (c->parts[p].owned) {
			lag += 1; /* not caught up yet: unknown, never zero */
		}
	}
	return (lag);
}
