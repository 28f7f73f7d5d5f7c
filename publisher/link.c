/* One AMQP connection with one channel in confirm mode (librabbitmq 0.11).
 * Only the publisher thread calls these: librabbitmq is not thread-safe.
 *
 * We open the TCP socket ourselves rather than with amqp_socket_open_noblock:
 * that one reports every failure as "a socket error occurred", while an
 * operator wants to read "connection refused" or "timed out", and we want to
 * give up at once when the registry is stopping. librabbitmq expects a
 * non-blocking socket (it polls with its own deadlines), so ours is one. */
#include "publisher/publisher_internal.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache/log.h"
#include "cache/util.h"

#define CHANNEL 1
/* Heartbeats let us notice a broker that vanished without closing the TCP
 * connection. librabbitmq services them only inside its calls, so the
 * publisher thread drains the link at least every few seconds. */
#define HEARTBEAT_SEC 30
#define CLOSE_TIMEOUT_MS 500

struct sr_pub_link {
    amqp_connection_state_t conn;
    uint64_t next_tag; /* confirm mode numbers publishes from 1 per channel */
    size_t max_size;   /* the broker's max_message_size, once it refused one */
    char blocked[128]; /* connection.blocked's reason while blocked */
};

/* strerror, first letter lowercased, to read well after a colon. */
static void errno_text(int e, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(e));
    if (buf[0])
        buf[0] = (char)tolower((unsigned char)buf[0]);
}

/* Waits for a non-blocking connect to finish. Returns 0, or an errno value
 * (ETIMEDOUT, ECANCELED when stop_fd fired). */
static int wait_connected(int fd, int stop_fd, double deadline)
{
    for (;;) {
        double left = deadline - sr_mono();
        if (left <= 0)
            return ETIMEDOUT;
        struct pollfd pf[2] = {{.fd = fd, .events = POLLOUT}, {.fd = stop_fd, .events = POLLIN}};
        int n = poll(pf, stop_fd >= 0 ? 2 : 1, (int)(left * 1000) + 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            continue; /* re-checks the deadline */
        if (stop_fd >= 0 && (pf[1].revents & POLLIN))
            return ECANCELED;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            return errno;
        return soerr;
    }
}

static int tcp_connect(const char *host, int port, int stop_fd, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve host %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = ECONNREFUSED;
    double deadline = sr_mono() + SR_PUB_CONNECT_TIMEOUT;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int e = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
            e = errno == EINPROGRESS ? wait_connected(fd, stop_fd, deadline) : errno;
        if (e == 0)
            break;
        close(fd);
        fd = -1;
        last = e;
        if (e == ECANCELED || e == ETIMEDOUT)
            break; /* no time left for the other addresses */
    }
    freeaddrinfo(res);
    if (fd < 0) {
        char why[128];
        if (last == ECANCELED)
            snprintf(why, sizeof(why), "cancelled (stopping)");
        else if (last == ETIMEDOUT)
            snprintf(why, sizeof(why), "timed out after %d s", SR_PUB_CONNECT_TIMEOUT);
        else
            errno_text(last, why, sizeof(why));
        snprintf(err, errlen, "%s (%s:%d)", why, host, port);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* librabbitmq's text for a failed I/O status, with the system's reason
 * when it only says "a socket error occurred" (errno is still the failed
 * send/recv's: we read it right after the call). */
static void io_error(int status, int saved_errno, const char *what, char *err, size_t errlen)
{
    if (status == AMQP_STATUS_SOCKET_ERROR && saved_errno != 0) {
        char why[128];
        errno_text(saved_errno, why, sizeof(why));
        snprintf(err, errlen, "%s: %s", what, why);
    } else if (status == AMQP_STATUS_CONNECTION_CLOSED) {
        snprintf(err, errlen, "%s: the broker closed the connection", what);
    } else {
        snprintf(err, errlen, "%s: %s", what, amqp_error_string2(status));
    }
}

/* "403 ACCESS_REFUSED - Login was refused..." from a close method. */
static void close_reason(const amqp_method_t *m, char *buf, size_t len)
{
    unsigned code = 0;
    amqp_bytes_t text = {0, NULL};
    if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *c = m->decoded;
        code = c->reply_code;
        text = c->reply_text;
    } else if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *c = m->decoded;
        code = c->reply_code;
        text = c->reply_text;
    } else {
        snprintf(buf, len, "unexpected method 0x%08x", (unsigned)m->id);
        return;
    }
    snprintf(buf, len, "%u %.*s", code, (int)text.len, (const char *)text.bytes);
}

size_t sr_publisher__refused_limit(unsigned code, const char *text, size_t len)
{
    /* RabbitMQ: "PRECONDITION_FAILED - message size 3000 is larger than
     * configured max size 2048" (or "... than max size M", its hard cap). */
    char buf[256];
    if (code != 406)
        return 0;
    snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), text);
    const char *p = strstr(buf, "message size ");
    if (p == NULL || (p = strstr(p, " max size ")) == NULL)
        return 0;
    p += strlen(" max size ");
    if (!isdigit((unsigned char)*p))
        return 0;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    return v > 0 && v <= SIZE_MAX ? (size_t)v : 0;
}

/* The broker closed the channel or the connection: say OK, as the protocol
 * asks, so it can log a clean close rather than a dropped socket. */
static void ack_close(amqp_connection_state_t conn, const amqp_method_t *m, amqp_channel_t ch)
{
    if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    } else if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    }
}

/* Turns a failed RPC into a reason; answers a broker-side close. Returns -1.
 * `user` names the account in an authentication failure. */
static int rpc_failed(amqp_connection_state_t conn, amqp_rpc_reply_t r, const char *what,
                      const char *user, char *err, size_t errlen)
{
    char why[200];
    switch (r.reply_type) {
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(err, errlen, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        close_reason(&r.reply, why, sizeof(why));
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD &&
            ((const amqp_connection_close_t *)r.reply.decoded)->reply_code == 403)
            snprintf(err, errlen, "authentication refused (ACCESS_REFUSED) for user '%s'", user);
        else
            snprintf(err, errlen, "%s: %s", what, why);
        ack_close(conn, &r.reply, CHANNEL);
        break;
    default:
        snprintf(err, errlen, "%s: no reply from the broker", what);
        break;
    }
    return -1;
}

struct sr_pub_link *sr_publisher__link_open(const struct sr_pub_url *u, const char *exchange,
                                            int stop_fd, sr_publisher__fd_cb on_fd, void *arg,
                                            char *err, size_t errlen)
{
    struct sr_pub_link *l = NULL;
    amqp_rpc_reply_t r;
    int fd = tcp_connect(u->host, u->port, stop_fd, err, errlen);
    if (fd < 0)
        return NULL;

    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = conn ? amqp_tcp_socket_new(conn) : NULL;
    if (sock == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    amqp_tcp_socket_set_sockfd(sock, fd); /* the connection owns fd from here */
    on_fd(arg, fd);
    struct timeval tv = {SR_PUB_CONNECT_TIMEOUT, 0};
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);

    /* librabbitmq adds its own capabilities to these; without
     * connection.blocked a broker under a resource alarm would just stop
     * reading our publishes, and /health could not say why. */
    amqp_table_entry_t cap = {.key = amqp_cstring_bytes("connection.blocked"),
                              .value = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}};
    amqp_table_entry_t prop = {.key = amqp_cstring_bytes("capabilities"),
                               .value = {.kind = AMQP_FIELD_KIND_TABLE,
                                         .value.table = {.num_entries = 1, .entries = &cap}}};
    amqp_table_t props = {.num_entries = 1, .entries = &prop};
    r = amqp_login_with_properties(conn, u->vhost, AMQP_DEFAULT_MAX_CHANNELS,
                                   AMQP_DEFAULT_FRAME_SIZE, HEARTBEAT_SEC, &props,
                                   AMQP_SASL_METHOD_PLAIN, u->user, u->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        /* A broker without authentication_failure_close just hangs up. */
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_CONNECTION_CLOSED)
            snprintf(err, errlen,
                     "login: the broker closed the connection "
                     "(wrong user or password, or no access to the vhost?)");
        else
            rpc_failed(conn, r, "login", u->user, err, errlen);
        goto fail;
    }
    amqp_channel_open(conn, CHANNEL);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        rpc_failed(conn, r, "channel.open", u->user, err, errlen);
        goto fail;
    }
    amqp_exchange_declare(conn, CHANNEL, amqp_cstring_bytes(exchange), amqp_cstring_bytes("topic"),
                          0 /* passive */, 1 /* durable */, 0 /* auto_delete */, 0 /* internal */,
                          amqp_empty_table);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char what[300];
        snprintf(what, sizeof(what), "declare exchange '%s'", exchange);
        rpc_failed(conn, r, what, u->user, err, errlen);
        goto fail;
    }
    amqp_confirm_select(conn, CHANNEL);
    r = amqp_get_rpc_reply(conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        rpc_failed(conn, r, "confirm.select", u->user, err, errlen);
        goto fail;
    }
    l = sr_calloc(1, sizeof(*l));
    l->conn = conn;
    l->next_tag = 1;
    return l;

fail:
    if (sock != NULL) {
        on_fd(arg, -1);
        amqp_destroy_connection(conn);
    } else if (conn != NULL) {
        amqp_destroy_connection(conn);
    }
    return NULL;
}

size_t sr_publisher__link_max_size(const struct sr_pub_link *l)
{
    return l->max_size;
}

const char *sr_publisher__link_blocked(const struct sr_pub_link *l)
{
    return l->blocked;
}

int sr_publisher__link_fd(const struct sr_pub_link *l)
{
    return amqp_get_sockfd(l->conn);
}

bool sr_publisher__link_pending(const struct sr_pub_link *l)
{
    return amqp_frames_enqueued(l->conn) || amqp_data_in_buffer(l->conn);
}

int sr_publisher__link_publish(struct sr_pub_link *l, const char *exchange, const char *boot_id,
                               const struct sr_pub_msg *m, uint64_t *tag, char *err, size_t errlen)
{
    char id[64];
    snprintf(id, sizeof(id), "%s-%llu", boot_id, (unsigned long long)m->seq);
    amqp_basic_properties_t props = {0};
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.message_id = amqp_cstring_bytes(id);
    props.timestamp = (uint64_t)m->created;
    props.app_id = amqp_cstring_bytes(SR_PUB_APP_ID);
    amqp_bytes_t body;
    body.bytes = (void *)sr_event_body(m->ev, &body.len); /* librabbitmq only reads it */

    errno = 0;
    int rc = amqp_basic_publish(l->conn, CHANNEL, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(sr_event_key(m->ev)), 0, 0, &props, body);
    if (rc != AMQP_STATUS_OK) {
        io_error(rc, errno, "connection lost while publishing", err, errlen);
        return -1;
    }
    *tag = l->next_tag++;
    return 0;
}

int sr_publisher__link_drain(struct sr_pub_link *l, sr_publisher__confirm_cb cb, void *arg,
                             char *err, size_t errlen)
{
    int ret = 0;
    for (;;) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        errno = 0;
        int rc = amqp_simple_wait_frame_noblock(l->conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            io_error(rc, errno, "connection lost", err, errlen);
            ret = -1;
            break;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue; /* heartbeats are eaten by librabbitmq; nothing else is ours */
        const amqp_method_t *m = &f.payload.method;
        char why[200];
        switch (m->id) {
        case AMQP_BASIC_ACK_METHOD: {
            const amqp_basic_ack_t *a = m->decoded;
            cb(arg, a->delivery_tag, a->multiple != 0, true);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            const amqp_basic_nack_t *n = m->decoded;
            cb(arg, n->delivery_tag, n->multiple != 0, false);
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
            if (l->max_size == 0) {
                const amqp_channel_close_t *c = m->decoded;
                l->max_size = sr_publisher__refused_limit(c->reply_code, c->reply_text.bytes,
                                                          c->reply_text.len);
            }
            /* fall through */
        case AMQP_CONNECTION_CLOSE_METHOD:
            close_reason(m, why, sizeof(why));
            snprintf(err, errlen, "%s closed by the broker: %s",
                     m->id == AMQP_CHANNEL_CLOSE_METHOD ? "channel" : "connection", why);
            ack_close(l->conn, m, f.channel);
            ret = -1;
            break;
        case AMQP_CONNECTION_BLOCKED_METHOD: {
            const amqp_connection_blocked_t *b = m->decoded;
            snprintf(l->blocked, sizeof(l->blocked), "%.*s", (int)b->reason.len,
                     (const char *)b->reason.bytes);
            if (l->blocked[0] == '\0')
                snprintf(l->blocked, sizeof(l->blocked), "no reason given");
            sr_log(SR_LOG_WARNING, "publisher", "broker blocked publishing: %s", l->blocked);
            break;
        }
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
            l->blocked[0] = '\0';
            sr_log(SR_LOG_INFO, "publisher", "broker unblocked publishing");
            break;
        default:
            break;
        }
        if (ret != 0)
            break;
    }
    amqp_maybe_release_buffers(l->conn);
    return ret;
}

void sr_publisher__link_close(struct sr_pub_link *l)
{
    if (l == NULL)
        return;
    /* Short: a broker that does not answer must not hold up the shutdown. */
    struct timeval tv = {0, CLOSE_TIMEOUT_MS * 1000};
    amqp_set_rpc_timeout(l->conn, &tv);
    amqp_rpc_reply_t r = amqp_channel_close(l->conn, CHANNEL, AMQP_REPLY_SUCCESS);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        amqp_connection_close(l->conn, AMQP_REPLY_SUCCESS);
    sr_publisher__link_abort(l);
}

void sr_publisher__link_abort(struct sr_pub_link *l)
{
    if (l == NULL)
        return;
    amqp_destroy_connection(l->conn);
    free(l);
}
