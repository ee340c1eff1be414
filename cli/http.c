/*
 * http.c - the CLI's HTTP client, for the commands that go through a
 * service's HTTP API rather than the store (`pond rejected replay`, `pond
 * demo`'s tag rules and campaigns).
 *
 * The least that does: one request per connection ("Connection: close"),
 * a JSON body, the answer read to the end of the connection, blocking with
 * a timeout on each read and write; the CLI has no loop to drive anything
 * else meanwhile, and the services answer with Content-Length.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli.h"

#define HTTP_TIMEOUT_S 30
#define HTTP_MAX_REPLY (64u << 20)

/* http_connect connects to the host and port of base_url
 * ("http://HOST:PORT"); returns the socket or -1 with a message. */
static int
http_connect(const char *base_url)
{
	char host[256], port[8] = "80";
	const char *p = base_url, *colon, *end;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *a;
	struct timeval tv = {.tv_sec = HTTP_TIMEOUT_S};
	int fd = -1;

	if (strncmp(p, "http://", 7) == 0) {
		p += 7;
	}
	end = p + strcspn(p, "/");
	colon = memchr(p, ':', (size_t)(end - p));
	if (colon != NULL) {
		snprintf(port, sizeof(port), "%.*s", (int)(end - colon - 1),
		         colon + 1);
		end = colon;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(end - p), p);
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr, "pond: cannot resolve %s\n", base_url);
		return (-1);
	}
	for (a = ai; a != NULL && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
		if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
		                           sizeof(tv)) != 0 ||
		                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
		                           sizeof(tv)) != 0 ||
		                connect(fd, a->ai_addr, a->ai_addrlen) != 0)) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return (fd);
}

int
pond_cli_http(const char *base_url, const char *method, const char *path,
              const char *token, const char *body, int *status, char **reply)
{
	size_t blen = body != NULL ? strlen(body) : 0, len = 0, cap = 8192;
	char *head = NULL, *buf = NULL, *sep;
	int fd, n;
	ssize_t r;

	*reply = NULL;
	if ((fd = http_connect(base_url)) < 0) {
		return (-1);
	}
	n = asprintf(&head,
	             "%s %s HTTP/1.1\r\nHost: pond\r\nConnection: close\r\n"
	             "Authorization: Bearer %s\r\nContent-Type: "
	             "application/json\r\nContent-Length: %zu\r\n\r\n",
	             method, path, token, blen);
	if (n < 0 || write(fd, head, (size_t)n) != n ||
	    (blen > 0 && write(fd, body, blen) != (ssize_t)blen) ||
	    (buf = malloc(cap)) == NULL) {
		goto fail;
	}
	while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (len + 1 == cap) {
			char *p = cap < HTTP_MAX_REPLY ? realloc(buf, cap * 2)
			                               : NULL;
			if (p == NULL) {
				goto fail;
			}
			buf = p;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	if (r < 0 || sscanf(buf, "HTTP/1.%*d %d", status) != 1 ||
	    (sep = strstr(buf, "\r\n\r\n")) == NULL) {
		goto fail;
	}
	memmove(buf, sep + 4, len - (size_t)(sep + 4 - buf) + 1);
	*reply = buf;
	free(head);
	close(fd);
	return (0);
fail:
	free(head);
	free(buf);
	close(fd);
	return (-1);
}
