/*
 * hello-server: a tiny single-file HTTP/1.1 server, the software built by
 * the slapmesh "hello" example release.
 *
 *   GET /        200 "<greeting> <name>!\n"
 *   GET /health  200 "ok\n"
 *   HEAD         same as GET, without the body
 *   other paths  404   (other methods on / and /health: 405)
 *
 * Portable C99 + POSIX: one process, one thread, non-blocking sockets and
 * poll().  Each connection carries one request and is closed after the
 * response ("Connection: close").
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Compiled-in default greeting; configure --enable-greeting=TEXT sets it. */
#ifndef HELLO_GREETING
#define HELLO_GREETING "Hello"
#endif

#define HEAD_MAX 8192            /* cap on request line + headers, bytes */
#define MAX_CLIENTS 64           /* connections served at the same time */
#define REQUEST_TIMEOUT_MS 5000  /* to receive the head, then to send the reply */
#define LINGER_TIMEOUT_MS 2000   /* to drain unread input before closing */
#define ACCEPT_PAUSE_MS 100      /* back-off when out of file descriptors */
#define BACKLOG 64

/* Lets the compiler check printf-style calls and know that they exit. */
#if defined(__GNUC__) || defined(__clang__)
#define PRINTF_EXIT __attribute__((format(printf, 1, 2), noreturn))
#else
#define PRINTF_EXIT
#endif

#ifdef MSG_NOSIGNAL
#define SEND_FLAGS MSG_NOSIGNAL
#else
#define SEND_FLAGS 0             /* SIGPIPE is ignored anyway */
#endif

enum state { FREE, READING, WRITING, DRAINING };

struct client {
    enum state state;
    int fd;
    long long deadline;          /* monotonic milliseconds */
    char peer[80];               /* "addr:port", for the log */
    char req[160];               /* sanitized request line, for the log */
    size_t len;                  /* bytes received into head */
    char head[HEAD_MAX + 1];     /* +1 for a terminating NUL */
    char *out;                   /* response being sent */
    size_t out_len, out_off;
};

static const char *progname = "hello-server";
static char *hello_body;         /* "<greeting> <name>!\n" */
static const char *pid_file;
static int pid_file_written;

static volatile sig_atomic_t got_signal;
static int signal_pipe[2] = { -1, -1 };   /* self-pipe: wakes poll() on a signal */

/* ---------------------------------------------------------------- helpers */

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: %s --port N [--host ADDR] [--name NAME] [--greeting TEXT]\n"
        "                    [--pid-file PATH]\n"
        "\n"
        "  --host ADDR      IPv4 or IPv6 address to listen on (default 127.0.0.1)\n"
        "  --port N         TCP port, 0 picks a free one (required)\n"
        "  --name NAME      who to greet (default \"world\")\n"
        "  --greeting TEXT  greeting word (default \"%s\")\n"
        "  --pid-file PATH  write the process id to PATH while running\n"
        "  --help           show this help\n",
        progname, HELLO_GREETING);
}

/* Bad command line: message, usage, exit status 2. */
static PRINTF_EXIT void bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    usage(stderr);
    exit(2);
}

/* Fatal runtime error: message, exit status 1. */
static PRINTF_EXIT void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (pid_file_written)
        unlink(pid_file);
    exit(1);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* "addr:port", with brackets around IPv6 addresses. */
static void format_address(const struct sockaddr *sa, socklen_t salen,
                           char *buf, size_t size)
{
    char host[80], port[16];
    if (getnameinfo(sa, salen, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, size, "?");
        return;
    }
    snprintf(buf, size, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
             host, port);
}

static void on_signal(int sig)
{
    int saved_errno = errno;
    char byte = 1;
    ssize_t r;

    got_signal = sig;
    r = write(signal_pipe[1], &byte, 1);
    (void)r;
    errno = saved_errno;
}

static void setup_signals(void)
{
    struct sigaction sa;

    if (pipe(signal_pipe) < 0 || set_nonblocking(signal_pipe[0]) < 0
        || set_nonblocking(signal_pipe[1]) < 0)
        die("cannot create signal pipe: %s", strerror(errno));

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    sa.sa_handler = on_signal;   /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* ---------------------------------------------------------------- HTTP */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    default:  return "Error";
    }
}

/* Remember the request line in printable form for the log. */
static void describe_request(struct client *c)
{
    const char *p = c->head, *end = c->head + c->len;
    size_t n = 0, max = sizeof c->req - 4;

    while (p < end && (*p == '\r' || *p == '\n'))
        p++;
    while (p < end && *p != '\r' && *p != '\n' && n < max) {
        unsigned char ch = (unsigned char)*p++;
        c->req[n++] = (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
                      ? (char)ch : '?';
    }
    if (p < end && *p != '\r' && *p != '\n') {
        memcpy(c->req + n, "...", 3);
        n += 3;
    }
    c->req[n] = '\0';
}

static void log_request(const struct client *c, int status, size_t bytes)
{
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s %s \"%s\" %d %lu\n", stamp, c->peer,
            c->req[0] ? c->req : "-", status, (unsigned long)bytes);
}

static void close_client(struct client *c)
{
    close(c->fd);
    free(c->out);
    c->out = NULL;
    c->fd = -1;
    c->state = FREE;
}

/* Send what is left of the response; once done, half-close and drain. */
static void on_writable(struct client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         SEND_FLAGS);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                close_client(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    /* Closing with unread input would reset the connection and could make
       the client lose the response: shut our side, read until EOF. */
    shutdown(c->fd, SHUT_WR);
    c->state = DRAINING;
    c->deadline = now_ms() + LINGER_TIMEOUT_MS;
}

/* Queue a complete response (headers + body unless HEAD) and log it. */
static void respond(struct client *c, int status, int head_only,
                    const char *body)
{
    char header[512], date[64];
    char fallback[64];
    time_t t = time(NULL);
    struct tm tm;
    size_t body_len;
    int header_len;

    if (!body) {   /* error responses: the reason phrase as body */
        snprintf(fallback, sizeof fallback, "%s\n", reason_phrase(status));
        body = fallback;
    }
    body_len = strlen(body);
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);

    header_len = snprintf(header, sizeof header,
        "HTTP/1.1 %d %s\r\n"
        "Date: %s\r\n"
        "Server: hello-server\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: %lu\r\n"
        "%s"
        "Connection: close\r\n"
        "\r\n",
        status, reason_phrase(status), date, (unsigned long)body_len,
        status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (head_only)
        body_len = 0;

    c->out = malloc((size_t)header_len + body_len);
    if (!c->out) {
        close_client(c);
        return;
    }
    memcpy(c->out, header, (size_t)header_len);
    memcpy(c->out + header_len, body, body_len);
    c->out_len = (size_t)header_len + body_len;
    c->out_off = 0;
    c->state = WRITING;
    c->deadline = now_ms() + REQUEST_TIMEOUT_MS;
    log_request(c, status, body_len);
    on_writable(c);   /* usually fits in the socket buffer right away */
}

/* Length of the request head (through its empty line) if it is complete,
   else 0.  Leading empty lines are skipped and bare LF line ends accepted,
   as RFC 9112 allows. */
static size_t head_length(const char *buf, size_t len)
{
    size_t i = 0;

    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    for (; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Cut the line starting at *p (which must contain a LF) and move *p past
   it.  Returns the line without CRLF/LF, or NULL if it holds a bare CR. */
static char *cut_line(char **p)
{
    char *line = *p, *nl = strchr(line, '\n');

    *p = nl + 1;
    *nl = '\0';
    if (nl > line && nl[-1] == '\r')
        nl[-1] = '\0';
    return strchr(line, '\r') ? NULL : line;
}

/* RFC 9110 token characters (methods, header names). */
static int is_token(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z')
              || (ch >= 'A' && ch <= 'Z') || strchr("!#$%&'*+-.^_`|~", ch)))
            return 0;
    }
    return 1;
}

/* Parse the complete request head (head_len bytes) and respond. */
static void handle_request(struct client *c, size_t head_len)
{
    char *p = c->head, *line, *method, *target, *version, *path;
    int head_only = 0;
    size_t i, path_len;

    describe_request(c);
    c->head[head_len] = '\0';
    if (strlen(c->head) != head_len) {   /* NUL byte in the head */
        respond(c, 400, 0, NULL);
        return;
    }
    while (*p == '\r' || *p == '\n')
        p++;

    /* Request line: METHOD SP TARGET SP VERSION */
    line = cut_line(&p);
    method = line;
    target = line ? strchr(line, ' ') : NULL;
    version = target ? strchr(target + 1, ' ') : NULL;
    if (!version || strchr(version + 1, ' ')) {
        respond(c, 400, 0, NULL);
        return;
    }
    *target++ = '\0';
    *version++ = '\0';
    if (!is_token(method, strlen(method)) || !*target) {
        respond(c, 400, 0, NULL);
        return;
    }
    for (i = 0; target[i]; i++) {   /* visible ASCII only */
        if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f) {
            respond(c, 400, 0, NULL);
            return;
        }
    }
    if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) {
        int looks_http = strlen(version) == 8 && strncmp(version, "HTTP/", 5) == 0
            && version[5] >= '0' && version[5] <= '9' && version[6] == '.'
            && version[7] >= '0' && version[7] <= '9';
        respond(c, looks_http ? 505 : 400, 0, NULL);
        return;
    }

    /* Header fields: "name: value", no folding; their values are unused. */
    while ((line = cut_line(&p)) != NULL && *line) {
        char *colon = strchr(line, ':');
        if (!colon || !is_token(line, (size_t)(colon - line))) {
            respond(c, 400, 0, NULL);
            return;
        }
    }
    if (!line) {
        respond(c, 400, 0, NULL);
        return;
    }

    /* Target: origin form "/path?query", or absolute form "http://host/path". */
    path = target;
    if (strncmp(target, "http://", 7) == 0 || strncmp(target, "https://", 8) == 0) {
        path = strchr(strstr(target, "//") + 2, '/');
        if (!path)
            path = "/";
    } else if (target[0] != '/') {
        respond(c, 400, 0, NULL);
        return;
    }
    path_len = strcspn(path, "?#");

    if (strcmp(method, "HEAD") == 0)
        head_only = 1;
    else if (strcmp(method, "GET") != 0) {
        int known = (path_len == 1 && path[0] == '/')
                    || (path_len == 7 && strncmp(path, "/health", 7) == 0);
        respond(c, known ? 405 : 404, 0, NULL);
        return;
    }
    if (path_len == 1 && path[0] == '/')
        respond(c, 200, head_only, hello_body);
    else if (path_len == 7 && strncmp(path, "/health", 7) == 0)
        respond(c, 200, head_only, "ok\n");
    else
        respond(c, 404, head_only, NULL);
}

/* Read more of the request head; respond once it is complete or invalid. */
static void on_readable(struct client *c)
{
    for (;;) {
        size_t head_len;
        ssize_t n = recv(c->fd, c->head + c->len, HEAD_MAX - c->len, 0);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                close_client(c);
            return;
        }
        if (n == 0) {   /* client closed its side */
            if (c->len == 0) {
                close_client(c);
            } else {
                describe_request(c);
                respond(c, 400, 0, NULL);
            }
            return;
        }
        c->len += (size_t)n;
        head_len = head_length(c->head, c->len);
        if (head_len) {
            handle_request(c, head_len);
            return;
        }
        if (c->len == HEAD_MAX) {   /* too big: no end of line means the URI */
            describe_request(c);
            respond(c, memchr(c->head, '\n', c->len) ? 431 : 414, 0, NULL);
            return;
        }
    }
}

/* After the response: discard input until the client closes. */
static void on_drain(struct client *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->head, HEAD_MAX, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            close_client(c);
            return;
        }
    }
}

/* Accept pending connections while there are free slots. */
static void accept_clients(int listen_fd, struct client *clients,
                           long long *accept_pause_until)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        struct client *c = NULL;
        int i, fd;

        for (i = 0; i < MAX_CLIENTS && !c; i++)
            if (clients[i].state == FREE)
                c = &clients[i];
        if (!c || got_signal)
            return;

        fd = accept(listen_fd, (struct sockaddr *)&sa, &salen);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
                || errno == ENOMEM) {
                fprintf(stderr, "%s: accept: %s\n", progname, strerror(errno));
                *accept_pause_until = now_ms() + ACCEPT_PAUSE_MS;
            }
            return;   /* EAGAIN: nothing more to accept */
        }
        if (set_nonblocking(fd) < 0) {
            close(fd);
            continue;
        }
        c->state = READING;
        c->fd = fd;
        c->len = 0;
        c->req[0] = '\0';
        c->out = NULL;
        c->deadline = now_ms() + REQUEST_TIMEOUT_MS;
        format_address((struct sockaddr *)&sa, salen, c->peer, sizeof c->peer);
    }
}

/* Give up on clients past their deadline. */
static void expire_clients(struct client *clients, long long now)
{
    int i;

    for (i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &clients[i];
        if (c->state == FREE || c->deadline > now)
            continue;
        if (c->state == READING && c->len > 0) {
            describe_request(c);
            respond(c, 408, 0, NULL);   /* best effort, then drained/closed */
        } else {
            close_client(c);            /* idle connection, or stuck writer */
        }
    }
}

/* The event loop: returns when SIGTERM or SIGINT arrives. */
static void serve(int listen_fd)
{
    static struct client clients[MAX_CLIENTS];
    long long accept_pause_until = 0;
    int i;

    for (i = 0; i < MAX_CLIENTS; i++) {
        clients[i].state = FREE;
        clients[i].fd = -1;
    }

    while (!got_signal) {
        struct pollfd fds[2 + MAX_CLIENTS];
        int owner[2 + MAX_CLIENTS];   /* client index, -1 signal pipe, -2 listener */
        nfds_t n = 0, k;
        long long now = now_ms(), wake = -1;
        int active = 0, timeout;

        fds[n].fd = signal_pipe[0];
        fds[n].events = POLLIN;
        owner[n++] = -1;
        for (i = 0; i < MAX_CLIENTS; i++) {
            if (clients[i].state == FREE)
                continue;
            fds[n].fd = clients[i].fd;
            fds[n].events = clients[i].state == WRITING ? POLLOUT : POLLIN;
            owner[n++] = i;
            active++;
            if (wake < 0 || clients[i].deadline < wake)
                wake = clients[i].deadline;
        }
        /* The listener comes last, so slots it fills are not in fds[]. */
        if (active < MAX_CLIENTS && now >= accept_pause_until) {
            fds[n].fd = listen_fd;
            fds[n].events = POLLIN;
            owner[n++] = -2;
        } else if (active < MAX_CLIENTS
                   && (wake < 0 || accept_pause_until < wake)) {
            wake = accept_pause_until;
        }

        timeout = wake < 0 ? -1
                : wake <= now ? 0
                : wake - now > INT_MAX ? INT_MAX : (int)(wake - now);
        if (poll(fds, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }

        for (k = 0; k < n && !got_signal; k++) {
            struct client *c;
            if (!fds[k].revents || owner[k] == -1)
                continue;
            if (owner[k] == -2) {
                accept_clients(listen_fd, clients, &accept_pause_until);
                continue;
            }
            c = &clients[owner[k]];
            if (c->state == READING)
                on_readable(c);
            else if (c->state == WRITING)
                on_writable(c);
            else if (c->state == DRAINING)
                on_drain(c);
        }
        expire_clients(clients, now_ms());
    }

    for (i = 0; i < MAX_CLIENTS; i++)
        if (clients[i].state != FREE)
            close_client(&clients[i]);
}

/* ---------------------------------------------------------------- setup */

/* Create the listening socket; exits with status 1 if it cannot bind. */
static int open_listener(const struct addrinfo *ai, const char *host,
                         const char *port)
{
    char where[160];
    int fd, one = 1;

    snprintf(where, sizeof where, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
             host, port);
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        die("cannot create socket for %s: %s", where, strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("cannot set SO_REUSEADDR: %s", strerror(errno));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("cannot bind to %s: %s", where, strerror(errno));
    if (listen(fd, BACKLOG) < 0)
        die("cannot listen on %s: %s", where, strerror(errno));
    if (set_nonblocking(fd) < 0)
        die("cannot make the socket non-blocking: %s", strerror(errno));
    return fd;
}

static void write_pid_file(void)
{
    FILE *f = fopen(pid_file, "w");

    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0)
        die("cannot write pid file %s: %s", pid_file, strerror(errno));
    pid_file_written = 1;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = NULL;
    const char *name = "world", *greeting = HELLO_GREETING;
    char host_buf[128], url_host[128];
    struct addrinfo hints, *ai;
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    size_t n;
    int i, listen_fd;

    /* Options: "--opt VALUE" or "--opt=VALUE". */
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL, *eq;
        const char **target = NULL;
        size_t len;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        eq = strchr(arg, '=');
        len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len == 6 && strncmp(arg, "--host", len) == 0)
            target = &host;
        else if (len == 6 && strncmp(arg, "--port", len) == 0)
            target = &port;
        else if (len == 6 && strncmp(arg, "--name", len) == 0)
            target = &name;
        else if (len == 10 && strncmp(arg, "--greeting", len) == 0)
            target = &greeting;
        else if (len == 10 && strncmp(arg, "--pid-file", len) == 0)
            target = &pid_file;
        else
            bad_usage("unknown argument '%s'", arg);

        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            bad_usage("option '%s' needs a value", arg);
        *target = value;
    }

    /* --port: a number from 0 to 65535 (0: any free port). */
    if (!port)
        bad_usage("--port is required");
    n = strlen(port);
    if (n == 0 || n > 5 || strspn(port, "0123456789") != n || atol(port) > 65535)
        bad_usage("invalid port '%s' (expected 0 to 65535)", port);
    if (pid_file && !*pid_file)
        bad_usage("--pid-file needs a path");

    /* --host: a numeric IPv4 or IPv6 address, optionally in [brackets]. */
    n = strlen(host);
    if (n >= 2 && n < sizeof host_buf && host[0] == '[' && host[n - 1] == ']') {
        memcpy(host_buf, host + 1, n - 2);
        host_buf[n - 2] = '\0';
        host = host_buf;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    if (!*host || getaddrinfo(host, port, &hints, &ai) != 0)
        bad_usage("invalid host '%s' (expected an IPv4 or IPv6 address)", host);

    /* The body of "GET /" never changes: build it once. */
    n = strlen(greeting) + strlen(name) + sizeof " !\n";   /* sizeof counts the NUL */
    hello_body = malloc(n);
    if (!hello_body)
        die("out of memory");
    snprintf(hello_body, n, "%s %s!\n", greeting, name);

    setup_signals();
    listen_fd = open_listener(ai, host, port);
    freeaddrinfo(ai);
    if (pid_file)
        write_pid_file();

    /* Announce the real address (port 0 was replaced by the kernel). */
    if (getsockname(listen_fd, (struct sockaddr *)&sa, &salen) < 0)
        die("getsockname: %s", strerror(errno));
    format_address((struct sockaddr *)&sa, salen, url_host, sizeof url_host);
    printf("listening on http://%s/\n", url_host);
    fflush(stdout);

    serve(listen_fd);

    fprintf(stderr, "%s: caught %s, exiting\n", progname,
            got_signal == SIGINT ? "SIGINT" : "SIGTERM");
    close(listen_fd);
    if (pid_file_written)
        unlink(pid_file);
    free(hello_body);
    return 0;
}
