/*
 * harness_http.c - a small HTTP/1.1 client for tests (see harness.h).
 *
 * One request per connection, always "Connection: close", over a blocking
 * socket with a deadline. The response is read until it is complete (by
 * Content-Length, by the end of a chunked body, or by the server closing)
 * and parsed from the start each time more bytes arrive: responses in tests
 * are small, and the parser stays one straight function.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "harness.h"
#include "harness_int.h"

#define HTTP_TIMEOUT_MS 30000

/* http_find_header returns the start of header name's value inside head
 * and its length in *vlen, or NULL. */
static const char *
http_find_header(const char *head, size_t head_len, const char *name,
                 size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *end = head + head_len;
	const char *line = memchr(head, '\n', head_len);

	/* The first line is the status line: headers start after it. */
	while (line != NULL && ++line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		const char *v, *ve;

		if (eol == NULL) {
			eol = end;
		}
		if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
		    strncasecmp(line, name, nlen) == 0) {
			v = line + nlen + 1;
			ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t')) {
				v++;
			}
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' ||
			                  ve[-1] == '\t')) {
				ve--;
			}
			*vlen = (size_t)(ve - v);
			return (v);
		}
		line = eol < end ? eol : NULL;
	}
	return (NULL);
}

/* http_header_has reports whether header name is present and its value
 * contains word (case-insensitive), e.g. Transfer-Encoding: chunked. */
static bool
http_header_has(const char *head, size_t head_len, const char *name,
                const char *word)
{
	size_t vlen, wlen = strlen(word);
	const char *v = http_find_header(head, head_len, name, &vlen);

	for (size_t i = 0; v != NULL && i + wlen <= vlen; i++) {
		if (strncasecmp(v + i, word, wlen) == 0) {
			return (true);
		}
	}
	return (false);
}

/* http_dechunk decodes a chunked body from in; returns 1 when complete
 * (the decoded body appended to *out), 0 if more bytes are needed, -1 if
 * malformed. */
static int
http_dechunk(const char *in, size_t len, char **out, size_t *olen)
{
	size_t pos = 0, cap = 0;

	*olen = 0;
	for (;;) {
		const char *eol = memmem(in + pos, len - pos, "\r\n", 2);
		char *end;
		unsigned long size;

		if (eol == NULL) {
			return (0);
		}
		errno = 0;
		size = strtoul(in + pos, &end, 16);
		if (end == in + pos || errno != 0 ||
		    (*end != ';' && *end != '\r' && *end != ' ')) {
			return (-1);
		}
		pos = (size_t)(eol - in) + 2;
		if (size == 0) {
			/* Trailer lines until an empty line. */
			for (;;) {
				eol = memmem(in + pos, len - pos, "\r\n", 2);
				if (eol == NULL) {
					return (0);
				}
				if (eol == in + pos) {
					return (1);
				}
				pos = (size_t)(eol - in) + 2;
			}
		}
		if (len - pos < size + 2) {
			return (0);
		}
		if (in[pos + size] != '\r' || in[pos + size + 1] != '\n') {
			return (-1);
		}
		harness__buf_append(out, olen, &cap, in + pos, size);
		pos += size + 2;
	}
}

/* http_parse turns the bytes received so far into resp. Returns 1 when the
 * response is complete, 0 if more bytes are needed, -1 if malformed. At
 * eof, a body without a length ends where the bytes do. */
static int
http_parse(const char *in, size_t len, bool eof, bool head_only,
           pond_test_http_resp *resp)
{
	const char *hend = memmem(in, len, "\r\n\r\n", 4);
	const char *body;
	size_t head_len, avail, vlen, blen = 0, bcap = 0;
	const char *cl;
	char *bbuf = NULL;
	int status, rv;

	if (hend == NULL) {
		return (eof ? -1 : 0);
	}
	if (len < 12 || strncmp(in, "HTTP/1.", 7) != 0 ||
	    sscanf(in + 8, " %3d", &status) != 1) {
		return (-1);
	}
	head_len = (size_t)(hend - in);
	body = hend + 4;
	avail = len - (size_t)(body - in);

	if (head_only || status / 100 == 1 || status == 204 || status == 304) {
		rv = 1;
		harness__buf_append(&bbuf, &blen, &bcap, "", 0);
	} else if (http_header_has(in, head_len, "Transfer-Encoding",
	                           "chunked")) {
		/* A chunked body ends with an empty line; decoding before it
		 * has arrived would only be thrown away. */
		if (!eof && (avail < 5 ||
		             memcmp(body + avail - 4, "\r\n\r\n", 4) != 0)) {
			return (0);
		}
		rv = http_dechunk(body, avail, &bbuf, &blen);
		if (rv == 0 && eof) {
			rv = -1;
		}
	} else if ((cl = http_find_header(in, head_len, "Content-Length",
	                                  &vlen)) != NULL) {
		size_t want = strtoul(cl, NULL, 10);

		rv = avail >= want ? 1 : eof ? -1 : 0;
		if (rv == 1) {
			harness__buf_append(&bbuf, &blen, &bcap, body, want);
		}
	} else {
		rv = eof ? 1 : 0;
		if (rv == 1) {
			harness__buf_append(&bbuf, &blen, &bcap, body, avail);
		}
	}
	if (rv != 1) {
		free(bbuf);
		return (rv);
	}
	if (bbuf == NULL) {
		harness__buf_append(&bbuf, &blen, &bcap, "", 0);
	}
	resp->status = status;
	resp->head = strndup(in, head_len);
	cr_assert(resp->head != NULL);
	resp->body = bbuf;
	resp->len = blen;
	return (1);
}

/* http_wait waits until fd is ready for events or the deadline passes;
 * returns 0 when ready, POND_ETIMEDOUT, or POND_EIO. */
static int
http_wait(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = events};
		int left = (int)(deadline - harness__now_ms()), pr;

		if (left <= 0) {
			return (POND_ETIMEDOUT);
		}
		if ((pr = poll(&pfd, 1, left)) > 0) {
			return (0);
		}
		if (pr == 0) {
			return (POND_ETIMEDOUT);
		}
		if (errno != EINTR) {
			return (POND_EIO);
		}
	}
}

/* http_connect connects a non-blocking socket to 127.0.0.1:port; the
 * socket stays non-blocking so that no step can outlast the deadline.
 * Returns the socket, or -1 with *rv set. */
static int
http_connect(uint16_t port, int64_t deadline, int *rv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd =
	        socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int err = 0;
	socklen_t errlen = sizeof(err);

	*rv = POND_EIO;
	if (fd < 0) {
		return (-1);
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		*rv = 0;
		return (fd);
	}
	if (errno != EINPROGRESS && errno != EINTR) {
		close(fd);
		return (-1);
	}
	if ((*rv = http_wait(fd, POLLOUT, deadline)) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0 ||
	    err != 0) {
		*rv = *rv != 0 ? *rv : POND_EIO;
		close(fd);
		return (-1);
	}
	return (fd);
}

/* http_send sends the request. A server may answer and close before it
 * has read a whole request (413, 400), so a failed send is not an error:
 * the caller reads what the server said. */
static void
http_send(int fd, const char *req, size_t req_len, int64_t deadline)
{
	size_t sent = 0;

	while (sent < req_len) {
		ssize_t n = send(fd, req + sent, req_len - sent, MSG_NOSIGNAL);

		if (n > 0) {
			sent += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (http_wait(fd, POLLOUT, deadline) != 0) {
				return;
			}
		} else {
			return;
		}
	}
}

/* http_exchange sends req and reads the response within timeout_ms. */
static int
http_exchange(uint16_t port, const char *req, size_t req_len, bool head_only,
              int timeout_ms, pond_test_http_resp *resp)
{
	int64_t deadline = harness__now_ms() + timeout_ms;
	char *in = NULL;
	size_t len = 0, cap = 0;
	int fd, rv;

	memset(resp, 0, sizeof(*resp));
	if ((fd = http_connect(port, deadline, &rv)) < 0) {
		return (rv);
	}
	http_send(fd, req, req_len, deadline);
	harness__buf_append(&in, &len, &cap, "", 0);
	for (;;) {
		char chunk[16384];
		ssize_t n;
		int done;

		if ((done = http_parse(in, len, false, head_only, resp)) !=
		    0) {
			rv = done == 1 ? 0 : POND_EINVAL;
			break;
		}
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n > 0) {
			harness__buf_append(&in, &len, &cap, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((rv = http_wait(fd, POLLIN, deadline)) != 0) {
				break;
			}
			continue;
		}
		/* Closed (or reset): an answer cut short is malformed, no
		 * answer at all is a broken connection. */
		done = http_parse(in, len, true, head_only, resp);
		rv = done == 1 ? 0 : len == 0 ? POND_EIO : POND_EINVAL;
		break;
	}
	close(fd);
	free(in);
	return (rv);
}

int
pond_test_http_raw(uint16_t port, const void *req, size_t req_len,
                   pond_test_http_resp *resp)
{
	bool head_only = req_len >= 5 && memcmp(req, "HEAD ", 5) == 0;

	return (http_exchange(port, req, req_len, head_only, HTTP_TIMEOUT_MS,
	                      resp));
}

/* http_request builds a request; the caller frees it. */
static char *
http_request(const char *method, uint16_t port, const char *path,
             const char *const *headers, const char *body, size_t body_len,
             size_t *req_len)
{
	char *req = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&req, &n);
	bool has_length = false;

	cr_assert(f != NULL, "open_memstream: %s", strerror(errno));
	fprintf(f, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", method, path,
	        port);
	fputs("Connection: close\r\n", f);
	for (const char *const *h = headers; h != NULL && *h != NULL; h++) {
		fprintf(f, "%s\r\n", *h);
		if (strncasecmp(*h, "Content-Length:", 15) == 0 ||
		    strncasecmp(*h, "Transfer-Encoding:", 18) == 0) {
			has_length = true;
		}
	}
	if (!has_length &&
	    (body != NULL || strcmp(method, "POST") == 0 ||
	     strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0)) {
		fprintf(f, "Content-Length: %zu\r\n",
		        body != NULL ? body_len : 0);
	}
	fputs("\r\n", f);
	if (body != NULL) {
		fwrite(body, 1, body_len, f);
	}
	cr_assert(fclose(f) == 0 && req != NULL, "out of memory");
	*req_len = n;
	return (req);
}

/* http_do runs one request with a timeout. */
static int
http_do(const char *method, uint16_t port, const char *path,
        const char *const *headers, const char *body, size_t body_len,
        int timeout_ms, pond_test_http_resp *resp)
{
	size_t req_len;
	char *req;
	int rv;

	if (body != NULL && body_len == 0) {
		body_len = strlen(body);
	}
	req = http_request(method, port, path, headers, body, body_len,
	                   &req_len);
	rv = http_exchange(port, req, req_len, strcmp(method, "HEAD") == 0,
	                   timeout_ms, resp);
	free(req);
	return (rv);
}

int
pond_test_http(const char *method, uint16_t port, const char *path,
               const char *const *headers, const char *body, size_t body_len,
               pond_test_http_resp *resp)
{
	return (http_do(method, port, path, headers, body, body_len,
	                HTTP_TIMEOUT_MS, resp));
}

char *
pond_test_http_header(const pond_test_http_resp *resp, const char *name)
{
	size_t vlen;
	const char *v;
	char *copy;

	if (resp->head == NULL) {
		return (NULL);
	}
	v = http_find_header(resp->head, strlen(resp->head), name, &vlen);
	if (v == NULL) {
		return (NULL);
	}
	copy = strndup(v, vlen);
	cr_assert(copy != NULL);
	return (copy);
}

void
pond_test_http_resp_free(pond_test_http_resp *resp)
{
	free(resp->head);
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

/* wait_ok polls path until it answers 200; with proc, a process exiting
 * first fails the test at once. */
static void
wait_ok(pond_test_proc *proc, uint16_t port, const char *path, int timeout_ms)
{
	int64_t deadline = harness__now_ms() + timeout_ms;
	char last[128] = "no answer";
	const char *log = proc != NULL ? pond_test_proc_log(proc) : NULL;
	int status;

	for (;;) {
		pond_test_http_resp resp;
		int left = (int)(deadline - harness__now_ms()), rv;

		if (proc != NULL &&
		    pond_test_wait_exit(proc, 0, &status) == 0) {
			cr_assert_fail("pid %ld exited with status %d before "
			               "answering GET %s on port %u; see %s",
			               (long)pond_test_proc_pid(proc), status,
			               path, port, log);
		}
		rv = http_do("GET", port, path, NULL, NULL, 0,
		             left > 100 ? left : 100, &resp);
		if (rv == 0 && resp.status == 200) {
			pond_test_http_resp_free(&resp);
			return;
		}
		if (rv == 0) {
			snprintf(last, sizeof(last), "status %d", resp.status);
			pond_test_http_resp_free(&resp);
		} else {
			snprintf(last, sizeof(last), "%s", pond_strerror(rv));
		}
		if (harness__now_ms() >= deadline) {
			break;
		}
		harness__sleep_ms(20);
	}
	cr_assert_fail("GET http://127.0.0.1:%u%s: no 200 within %d ms "
	               "(last: %s)%s%s",
	               port, path, timeout_ms, last,
	               log != NULL ? "; see " : "", log != NULL ? log : "");
}

void
pond_test_wait_http_ok(uint16_t port, const char *path, int timeout_ms)
{
	wait_ok(NULL, port, path, timeout_ms);
}

void
pond_test_wait_ready(pond_test_proc *proc, uint16_t port, const char *path,
                     int timeout_ms)
{
	wait_ok(proc, port, path, timeout_ms);
}

int
pond_test_http_bearer(const char *method, uint16_t port, const char *token,
                      const char *path, const char *body, json_t **answer)
{
	char auth[160];
	const char *headers[] = {auth, NULL};
	pond_test_http_resp resp;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         token != NULL ? token : "");
	cr_assert_eq(pond_test_http(method, port, path,
	                            token != NULL ? headers : NULL, body, 0,
	                            &resp),
	             0, "%s %s: no answer", method, path);
	if (answer != NULL) {
		*answer = pond_test_json(resp.body);
	}
	int status = resp.status;
	pond_test_http_resp_free(&resp);
	return (status);
}
