/*
 * bus.h - NNG sockets driven from the libuv loop.
 *
 * NNG completes its aios on its own threads; each completion is handed to the
 * loop through a pond_handoff, so every callback declared here runs on the
 * loop thread. Every socket gets NNG_OPT_RECVMAXSZ set: NNG 1.5.2 leaves it
 * unlimited.
 *
 * - pond_rep: a REP server with several contexts, so many requests are in
 *   hand at once; each reply goes back on the context it came in on.
 * - pond_pub: PUB, sends never block (NNG drops the oldest for slow peers:
 *   a wake-up hint only, the store is the truth).
 * - pond_sub: SUB dialled to one or more PUB URLs.
 * - pond_req: a REQ client, one context per call, with a timeout.
 */
#ifndef POND_BUS_H
#define POND_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"
#include "handoff.h"

typedef struct pond_bus pond_bus;
typedef struct pond_rep pond_rep;
typedef struct pond_rep_req pond_rep_req;
typedef struct pond_pub pond_pub;
typedef struct pond_sub pond_sub;
typedef struct pond_req pond_req;

/* pond_bus_open creates the loop's NNG hand-off. */
int pond_bus_open(pond_bus **busp, uv_loop_t *loop) POND_MUSTCHECK;

/* pond_bus_close closes the hand-off; close every socket first. */
void pond_bus_close(pond_bus *bus);

/* pond_rep_fn gets one request; body is valid until the reply. It must
 * call pond_rep_reply exactly once, now or later, on the loop. */
typedef void (*pond_rep_fn)(pond_rep_req *req, const uint8_t *body, size_t len,
                            void *arg);

/* pond_rep_listen listens on url with nctx concurrent contexts; requests
 * over max_msg bytes are dropped by NNG (the peer times out), so callers
 * pass their limit plus headroom and check sizes themselves. */
int pond_rep_listen(pond_rep **repp, pond_bus *bus, const char *url, int nctx,
                    size_t max_msg, pond_rep_fn fn, void *arg) POND_MUSTCHECK;

/* pond_rep_url returns the bound URL (with the real port when url had 0). */
const char *pond_rep_url(const pond_rep *rep);

/* pond_rep_reply sends the reply (copied) and releases req. */
void pond_rep_reply(pond_rep_req *req, const void *body, size_t len);

/* pond_rep_stop stops taking new requests; in-flight ones may still reply.
 * done runs on the loop once no request is in hand. */
void pond_rep_stop(pond_rep *rep, void (*done)(void *), void *arg);

/* pond_rep_close closes the socket and frees rep (after pond_rep_stop). */
void pond_rep_close(pond_rep *rep);

/* pond_rep_inflight returns requests received and not yet replied to. */
int pond_rep_inflight(const pond_rep *rep);

/* pond_pub_listen opens a PUB socket listening on url. */
int pond_pub_listen(pond_pub **pubp, const char *url) POND_MUSTCHECK;

/* pond_pub_send sends topic then body as one message; never blocks. */
int pond_pub_send(pond_pub *pub, const char *topic, const void *body,
                  size_t len);

/* pond_pub_close closes the socket. */
void pond_pub_close(pond_pub *pub);

/* pond_sub_fn gets one message (topic included); msg is valid only
 * during the call. */
typedef void (*pond_sub_fn)(const uint8_t *msg, size_t len, void *arg);

/* pond_sub_dial subscribes to topic prefix on the PUB sockets at urls
 * (comma-separated); dialling retries in the background. */
int pond_sub_dial(pond_sub **subp, pond_bus *bus, const char *urls,
                  const char *topic, size_t max_msg, pond_sub_fn fn,
                  void *arg) POND_MUSTCHECK;

/* pond_sub_close closes the socket; fn is not called afterwards. */
void pond_sub_close(pond_sub *sub);

/* pond_req_fn gets the outcome of a call: rv 0 and the reply, or an error
 * (POND_ETIMEDOUT, POND_ECLOSED, ...) and no reply. */
typedef void (*pond_req_fn)(int rv, const uint8_t *reply, size_t len,
                            void *arg);

/* pond_req_dial opens a REQ socket dialled to url (retrying in the
 * background); resend_ms sets NNG_OPT_REQ_RESENDTIME (0: NNG's default). */
int pond_req_dial(pond_req **reqp, pond_bus *bus, const char *url,
                  size_t max_msg, int resend_ms) POND_MUSTCHECK;

/* pond_req_call sends body (copied) and calls fn with the reply. */
int pond_req_call(pond_req *req, const void *body, size_t len, int timeout_ms,
                  pond_req_fn fn, void *arg) POND_MUSTCHECK;

/* pond_req_close cancels calls in flight (their fn gets POND_ECLOSED) and
 * closes the socket. */
void pond_req_close(pond_req *req);

/* pond_bus_set_tls loads a PEM certificate (chain) and its private key:
 * REP sockets then listening on tls+tcp:// URLs use them. A tls+tcp://
 * listener without them fails with POND_EINVAL. */
int pond_bus_set_tls(pond_bus *bus, const char *cert_file,
                     const char *key_file) POND_MUSTCHECK;

#endif
