/*
 * bus.c - NNG sockets driven from the libuv loop (see bus.h).
 *
 * Every aio callback runs on an NNG thread and does one thing: post the
 * object's pond_task to the loop through the bus hand-off. All state lives on
 * the loop thread, so nothing here needs a lock of its own.
 *
 * Lifetime: an NNG callback can still fire after nng_close returns, so the
 * bus counts the objects that may post to it and closes its hand-off only
 * when the last one has been freed (on the loop, after its final callback).
 */
#include "bus.h"

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* POND_BUS_QUEUE is the depth, in messages, of a PUB socket's queue per
 * subscriber and of a SUB socket's receive queue (NNG allows 0..8192). */
#define POND_BUS_QUEUE 2048

#include "log.h"

struct pond_bus {
	pond_handoff handoff;
	int objects; /* sockets that may still post */
	bool closing;
	nng_tls_config *tls; /* for tls+tcp:// listeners, or NULL */
};

static void
bus_handoff_closed(pond_handoff *h)
{
	pond_bus *bus = (pond_bus *)h; /* handoff is the first member */

	if (bus->tls != NULL) {
		nng_tls_config_free(bus->tls);
	}
	free(bus);
}

static int bus_nng_err(int nrv, const char *what, const char *url);

/* bus_read_file reads a whole (small, PEM) file into a NUL-terminated
 * string the caller frees, or returns NULL. */
static char *
bus_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		return (NULL);
	}
	do {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);
			if (nb == NULL || cap > ((size_t)1 << 20)) {
				free(nb != NULL ? nb : buf);
				fclose(f);
				return (NULL);
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return (buf);
}

int
pond_bus_set_tls(pond_bus *bus, const char *cert_file, const char *key_file)
{
	char *cert = bus_read_file(cert_file), *key = bus_read_file(key_file);
	nng_tls_config *cfg = NULL;
	int nrv;

	if (cert == NULL || key == NULL) {
		pond_log_error("tls_files_unreadable", "cert=%s key=%s",
		               cert_file, key_file);
		free(cert);
		free(key);
		return (POND_EINVAL);
	}
	if ((nrv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER)) != 0 ||
	    (nrv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
		if (cfg != NULL) {
			nng_tls_config_free(cfg);
		}
		explicit_bzero(key, strlen(key));
		free(cert);
		free(key);
		return (bus_nng_err(nrv, "tls_config", cert_file));
	}
	explicit_bzero(key, strlen(key));
	free(cert);
	free(key);
	if (bus->tls != NULL) {
		nng_tls_config_free(bus->tls);
	}
	bus->tls = cfg;
	return (POND_OK);
}

static void
bus_release(pond_bus *bus)
{
	if (--bus->objects == 0 && bus->closing) {
		pond_handoff_close(&bus->handoff, bus_handoff_closed);
	}
}

int
pond_bus_open(pond_bus **busp, uv_loop_t *loop)
{
	pond_bus *bus;
	int rv;

	if ((bus = calloc(1, sizeof(*bus))) == NULL) {
		return (POND_ENOMEM);
	}
	if ((rv = pond_handoff_init(&bus->handoff, loop)) != 0) {
		free(bus);
		return (rv);
	}
	*busp = bus;
	return (POND_OK);
}

void
pond_bus_close(pond_bus *bus)
{
	bus->closing = true;
	bus->objects++;
	bus_release(bus);
}

static int
bus_nng_err(int nrv, const char *what, const char *url)
{
	pond_log_error("bus_error", "what=%s url=%s error=\"%s\"", what,
	               url != NULL ? url : "-", nng_strerror(nrv));
	return (pond_err_from_nng(nrv));
}

/* --- REP server -----------------------------------------------------------
 */

typedef enum rep_state {
	REP_IDLE,   /* no operation outstanding */
	REP_RECV,   /* waiting for a request */
	REP_HANDLE, /* request handed to the service */
	REP_SEND,   /* reply being sent */
} rep_state;

struct pond_rep_req {
	pond_task task;
	pond_rep *rep;
	nng_ctx ctx;
	nng_aio *aio;
	nng_msg *msg; /* the request while in REP_HANDLE */
	rep_state state;
};

struct pond_rep {
	pond_bus *bus;
	nng_socket sock;
	pond_rep_req *reqs;
	int nctx;
	int inflight;
	pond_rep_fn fn;
	void *arg;
	bool stopping;
	void (*stopped)(void *);
	void *stopped_arg;
	char url[256];
};

static void
rep_aio_cb(void *arg)
{
	pond_rep_req *req = arg;

	pond_handoff_post(&req->rep->bus->handoff, &req->task, req->task.fn);
}

static void
rep_check_stopped(pond_rep *rep)
{
	void (*stopped)(void *) = rep->stopped;

	if (!rep->stopping || stopped == NULL) {
		return;
	}
	for (int i = 0; i < rep->nctx; i++) {
		if (rep->reqs[i].state != REP_IDLE) {
			return;
		}
	}
	rep->stopped = NULL;
	stopped(rep->stopped_arg);
}

static void
rep_recv(pond_rep_req *req)
{
	if (req->rep->stopping) {
		req->state = REP_IDLE;
		rep_check_stopped(req->rep);
		return;
	}
	req->state = REP_RECV;
	nng_ctx_recv(req->ctx, req->aio);
}

static void
rep_task(pond_task *task)
{
	pond_rep_req *req = (pond_rep_req *)task;
	pond_rep *rep = req->rep;
	int nrv = nng_aio_result(req->aio);

	switch (req->state) {
	case REP_RECV:
		if (nrv != 0) {
			if (nrv != NNG_ECLOSED && nrv != NNG_ECANCELED) {
				pond_log_warn("rep_recv_failed",
				              "url=%s error=\"%s\"", rep->url,
				              nng_strerror(nrv));
			}
			rep_recv(req);
			return;
		}
		req->msg = nng_aio_get_msg(req->aio);
		req->state = REP_HANDLE;
		rep->inflight++;
		rep->fn(req, nng_msg_body(req->msg), nng_msg_len(req->msg),
		        rep->arg);
		return;
	case REP_SEND:
		if (nrv != 0) {
			/* The peer is gone; its REQ resends elsewhere. */
			nng_msg_free(nng_aio_get_msg(req->aio));
		}
		rep->inflight--;
		rep_recv(req);
		return;
	case REP_IDLE:
	case REP_HANDLE:
		break;
	}
	pond_log_error("rep_bad_state", "state=%d", (int)req->state);
}

int
pond_rep_listen(pond_rep **repp, pond_bus *bus, const char *url, int nctx,
                size_t max_msg, pond_rep_fn fn, void *arg)
{
	pond_rep *rep;
	nng_listener l;
	nng_sockaddr sa;
	int nrv;

	if ((rep = calloc(1, sizeof(*rep))) == NULL ||
	    (rep->reqs = calloc((size_t)nctx, sizeof(pond_rep_req))) == NULL) {
		free(rep);
		return (POND_ENOMEM);
	}
	rep->bus = bus;
	rep->nctx = nctx;
	rep->fn = fn;
	rep->arg = arg;
	snprintf(rep->url, sizeof(rep->url), "%s", url);
	if ((nrv = nng_rep0_open(&rep->sock)) != 0) {
		free(rep->reqs);
		free(rep);
		return (bus_nng_err(nrv, "rep_open", url));
	}
	if ((nrv = nng_socket_set_size(rep->sock, NNG_OPT_RECVMAXSZ,
	                               max_msg)) != 0 ||
	    (nrv = nng_listener_create(&l, rep->sock, url)) != 0) {
		goto err;
	}
	if (strncmp(url, "tls+", 4) == 0 && bus->tls == NULL) {
		nng_listener_close(l);
		nng_close(rep->sock);
		free(rep->reqs);
		free(rep);
		pond_log_error("tls_not_configured", "url=%s", url);
		return (POND_EINVAL);
	}
	if ((strncmp(url, "tls+", 4) == 0 &&
	     (nrv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, bus->tls)) !=
	             0) ||
	    (nrv = nng_listener_start(l, 0)) != 0) {
		goto err;
	}
	/* With port 0 the kernel picked one; report the real URL. */
	if (nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa) == 0 &&
	    sa.s_family == NNG_AF_INET && strncmp(url, "tcp://", 6) == 0) {
		const uint8_t *ip = (const uint8_t *)&sa.s_in.sa_addr;
		snprintf(rep->url, sizeof(rep->url), "tcp://%u.%u.%u.%u:%u",
		         ip[0], ip[1], ip[2], ip[3],
		         (unsigned)((sa.s_in.sa_port & 0xff) << 8 |
		                    sa.s_in.sa_port >> 8));
	}
	for (int i = 0; i < nctx; i++) {
		pond_rep_req *req = &rep->reqs[i];
		req->rep = rep;
		req->task.fn = rep_task;
		if ((nrv = nng_aio_alloc(&req->aio, rep_aio_cb, req)) != 0 ||
		    (nrv = nng_ctx_open(&req->ctx, rep->sock)) != 0) {
			goto err;
		}
	}
	bus->objects++;
	for (int i = 0; i < nctx; i++) {
		rep_recv(&rep->reqs[i]);
	}
	*repp = rep;
	return (POND_OK);

err:
	nng_close(rep->sock);
	for (int i = 0; i < nctx; i++) {
		if (rep->reqs[i].aio != NULL) {
			nng_aio_free(rep->reqs[i].aio);
		}
	}
	free(rep->reqs);
	free(rep);
	return (bus_nng_err(nrv, "rep_listen", url));
}

const char *
pond_rep_url(const pond_rep *rep)
{
	return (rep->url);
}

int
pond_rep_inflight(const pond_rep *rep)
{
	return (rep->inflight);
}

void
pond_rep_reply(pond_rep_req *req, const void *body, size_t len)
{
	nng_msg *msg = req->msg;

	req->msg = NULL;
	/* Reuse the request message: it carries the REQ routing header. */
	nng_msg_clear(msg);
	if (nng_msg_append(msg, body, len) != 0) {
		nng_msg_free(msg);
		pond_log_error("rep_reply_nomem", "len=%zu", len);
		req->rep->inflight--;
		rep_recv(req);
		return;
	}
	req->state = REP_SEND;
	nng_aio_set_msg(req->aio, msg);
	nng_ctx_send(req->ctx, req->aio);
}

void
pond_rep_stop(pond_rep *rep, void (*done)(void *), void *arg)
{
	rep->stopping = true;
	rep->stopped = done;
	rep->stopped_arg = arg;
	for (int i = 0; i < rep->nctx; i++) {
		if (rep->reqs[i].state == REP_RECV) {
			nng_aio_cancel(rep->reqs[i].aio);
		}
	}
	rep_check_stopped(rep);
}

void
pond_rep_close(pond_rep *rep)
{
	/* Every context is idle (pond_rep_stop finished): no aio is
	 * outstanding, so freeing them cannot race a callback. */
	nng_close(rep->sock);
	for (int i = 0; i < rep->nctx; i++) {
		nng_aio_free(rep->reqs[i].aio);
	}
	bus_release(rep->bus);
	free(rep->reqs);
	free(rep);
}

/* --- PUB ------------------------------------------------------------------
 */

struct pond_pub {
	nng_socket sock;
};

int
pond_pub_listen(pond_pub **pubp, const char *url)
{
	pond_pub *pub;
	int nrv;

	if ((pub = calloc(1, sizeof(*pub))) == NULL) {
		return (POND_ENOMEM);
	}
	if ((nrv = nng_pub0_open(&pub->sock)) != 0) {
		free(pub);
		return (bus_nng_err(nrv, "pub_open", url));
	}
	/* PUB receives nothing; the limit still guards the socket. The
	 * queue per subscriber holds a few committed batches' announcements
	 * (NNG's default is 16 messages, dropped oldest first), so that a
	 * subscriber hears a whole batch instead of falling back to the
	 * table for most of it. */
	if ((nrv = nng_socket_set_size(pub->sock, NNG_OPT_RECVMAXSZ, 1024)) !=
	            0 ||
	    (nrv = nng_socket_set_int(pub->sock, NNG_OPT_SENDBUF,
	                              POND_BUS_QUEUE)) != 0 ||
	    (nrv = nng_listen(pub->sock, url, NULL, 0)) != 0) {
		nng_close(pub->sock);
		free(pub);
		return (bus_nng_err(nrv, "pub_listen", url));
	}
	*pubp = pub;
	return (POND_OK);
}

int
pond_pub_send(pond_pub *pub, const char *topic, const void *body, size_t len)
{
	nng_msg *msg;
	int nrv;

	if ((nrv = nng_msg_alloc(&msg, 0)) != 0) {
		return (pond_err_from_nng(nrv));
	}
	if ((nrv = nng_msg_append(msg, topic, strlen(topic))) != 0 ||
	    (nrv = nng_msg_append(msg, body, len)) != 0 ||
	    (nrv = nng_sendmsg(pub->sock, msg, NNG_FLAG_NONBLOCK)) != 0) {
		nng_msg_free(msg);
		return (pond_err_from_nng(nrv));
	}
	return (POND_OK);
}

void
pond_pub_close(pond_pub *pub)
{
	nng_close(pub->sock);
	free(pub);
}

/* --- SUB ------------------------------------------------------------------
 */

struct pond_sub {
	pond_task task;
	pond_bus *bus;
	nng_socket sock;
	nng_aio *aio;
	pond_sub_fn fn;
	void *arg;
	bool closing;
};

static void
sub_aio_cb(void *arg)
{
	pond_sub *sub = arg;

	pond_handoff_post(&sub->bus->handoff, &sub->task, sub->task.fn);
}

static void
sub_task(pond_task *task)
{
	pond_sub *sub = (pond_sub *)task;
	int nrv = nng_aio_result(sub->aio);

	if (nrv == 0) {
		nng_msg *msg = nng_aio_get_msg(sub->aio);
		if (!sub->closing) {
			sub->fn(nng_msg_body(msg), nng_msg_len(msg), sub->arg);
		}
		nng_msg_free(msg);
	}
	if (sub->closing) {
		/* The final completion: the socket is closed, so no further
		 * callback can come. */
		nng_aio_free(sub->aio);
		bus_release(sub->bus);
		free(sub);
		return;
	}
	nng_recv_aio(sub->sock, sub->aio);
}

int
pond_sub_dial(pond_sub **subp, pond_bus *bus, const char *urls,
              const char *topic, size_t max_msg, pond_sub_fn fn, void *arg)
{
	pond_sub *sub;
	char *list, *url, *save = NULL;
	int nrv;

	if ((sub = calloc(1, sizeof(*sub))) == NULL) {
		return (POND_ENOMEM);
	}
	sub->bus = bus;
	sub->fn = fn;
	sub->arg = arg;
	sub->task.fn = sub_task;
	if ((nrv = nng_sub0_open(&sub->sock)) != 0) {
		free(sub);
		return (bus_nng_err(nrv, "sub_open", urls));
	}
	if ((nrv = nng_socket_set_size(sub->sock, NNG_OPT_RECVMAXSZ,
	                               max_msg)) != 0 ||
	    (nrv = nng_socket_set_int(sub->sock, NNG_OPT_RECVBUF,
	                              POND_BUS_QUEUE)) != 0 ||
	    (nrv = nng_socket_set(sub->sock, NNG_OPT_SUB_SUBSCRIBE, topic,
	                          strlen(topic))) != 0 ||
	    (nrv = nng_aio_alloc(&sub->aio, sub_aio_cb, sub)) != 0) {
		goto err;
	}
	if ((list = strdup(urls)) == NULL) {
		nrv = NNG_ENOMEM;
		goto err;
	}
	for (url = strtok_r(list, ",", &save); url != NULL;
	     url = strtok_r(NULL, ",", &save)) {
		/* NONBLOCK: a publisher that is not up yet is dialled again
		 * in the background. */
		if ((nrv = nng_dial(sub->sock, url, NULL,
		                    NNG_FLAG_NONBLOCK)) != 0) {
			free(list);
			goto err;
		}
	}
	free(list);
	bus->objects++;
	nng_recv_aio(sub->sock, sub->aio);
	*subp = sub;
	return (POND_OK);

err:
	nng_close(sub->sock);
	if (sub->aio != NULL) {
		nng_aio_free(sub->aio);
	}
	free(sub);
	return (bus_nng_err(nrv, "sub_dial", urls));
}

void
pond_sub_close(pond_sub *sub)
{
	/* A receive is always outstanding unless sub_task is queued or
	 * running; either way one more sub_task runs and frees sub. */
	sub->closing = true;
	nng_close(sub->sock);
}

/* --- REQ client ------------------------------------------------------------
 */

typedef struct req_call req_call;

struct req_call {
	pond_task task;
	pond_req *req;
	req_call *prev, *next;
	nng_ctx ctx;
	nng_aio *aio;
	bool sent;
	int rv;
	pond_req_fn fn;
	void *arg;
};

struct pond_req {
	pond_bus *bus;
	nng_socket sock;
	req_call *calls; /* in flight */
	bool closing;
};

static void
req_aio_cb(void *arg)
{
	req_call *call = arg;
	int nrv = nng_aio_result(call->aio);

	/* A sent request goes straight on to wait for its reply; NNG
	 * functions may be called from its own callbacks. */
	if (nrv == 0 && !call->sent) {
		call->sent = true;
		nng_ctx_recv(call->ctx, call->aio);
		return;
	}
	if (nrv != 0 && !call->sent) {
		nng_msg_free(nng_aio_get_msg(call->aio));
	}
	call->rv = nrv;
	pond_handoff_post(&call->req->bus->handoff, &call->task,
	                  call->task.fn);
}

static void
req_task(pond_task *task)
{
	req_call *call = (req_call *)task;
	pond_req *req = call->req;
	nng_msg *msg = NULL;

	if (call->prev != NULL) {
		call->prev->next = call->next;
	} else {
		req->calls = call->next;
	}
	if (call->next != NULL) {
		call->next->prev = call->prev;
	}
	if (call->rv == 0) {
		msg = nng_aio_get_msg(call->aio);
		call->fn(0, nng_msg_body(msg), nng_msg_len(msg), call->arg);
		nng_msg_free(msg);
	} else {
		call->fn(pond_err_from_nng(call->rv), NULL, 0, call->arg);
	}
	nng_ctx_close(call->ctx);
	nng_aio_free(call->aio);
	free(call);
	if (req->closing && req->calls == NULL) {
		nng_close(req->sock);
		bus_release(req->bus);
		free(req);
	}
}

int
pond_req_dial(pond_req **reqp, pond_bus *bus, const char *url, size_t max_msg,
              int resend_ms)
{
	pond_req *req;
	int nrv;

	if ((req = calloc(1, sizeof(*req))) == NULL) {
		return (POND_ENOMEM);
	}
	req->bus = bus;
	if ((nrv = nng_req0_open(&req->sock)) != 0) {
		free(req);
		return (bus_nng_err(nrv, "req_open", url));
	}
	if ((nrv = nng_socket_set_size(req->sock, NNG_OPT_RECVMAXSZ,
	                               max_msg)) != 0 ||
	    (resend_ms > 0 &&
	     (nrv = nng_socket_set_ms(req->sock, NNG_OPT_REQ_RESENDTIME,
	                              resend_ms)) != 0) ||
	    (nrv = nng_dial(req->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		nng_close(req->sock);
		free(req);
		return (bus_nng_err(nrv, "req_dial", url));
	}
	bus->objects++;
	*reqp = req;
	return (POND_OK);
}

int
pond_req_call(pond_req *req, const void *body, size_t len, int timeout_ms,
              pond_req_fn fn, void *arg)
{
	req_call *call;
	nng_msg *msg = NULL;
	int nrv;

	if (req->closing) {
		return (POND_ECLOSED);
	}
	if ((call = calloc(1, sizeof(*call))) == NULL) {
		return (POND_ENOMEM);
	}
	call->req = req;
	call->fn = fn;
	call->arg = arg;
	call->task.fn = req_task;
	if ((nrv = nng_aio_alloc(&call->aio, req_aio_cb, call)) != 0) {
		free(call);
		return (pond_err_from_nng(nrv));
	}
	if ((nrv = nng_ctx_open(&call->ctx, req->sock)) != 0) {
		nng_aio_free(call->aio);
		free(call);
		return (pond_err_from_nng(nrv));
	}
	if ((nrv = nng_msg_alloc(&msg, 0)) != 0 ||
	    (nrv = nng_msg_append(msg, body, len)) != 0) {
		if (msg != NULL) {
			nng_msg_free(msg);
		}
		nng_ctx_close(call->ctx);
		nng_aio_free(call->aio);
		free(call);
		return (pond_err_from_nng(nrv));
	}
	call->next = req->calls;
	if (req->calls != NULL) {
		req->calls->prev = call;
	}
	req->calls = call;
	nng_aio_set_timeout(call->aio, timeout_ms);
	nng_aio_set_msg(call->aio, msg);
	nng_ctx_send(call->ctx, call->aio);
	return (POND_OK);
}

void
pond_req_close(pond_req *req)
{
	req->closing = true;
	if (req->calls == NULL) {
		nng_close(req->sock);
		bus_release(req->bus);
		free(req);
		return;
	}
	/* Each cancelled call completes through req_task, and the last one
	 * frees req. */
	for (req_call *c = req->calls; c != NULL; c = c->next) {
		nng_aio_cancel(c->aio);
	}
}
