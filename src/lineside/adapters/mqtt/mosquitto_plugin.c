/*
 * Lineside's Mosquitto 2.0 plugin (plugin API version 5).
 *
 * Mosquitto accepts the devices' MQTT connections; Lineside decides everything
 * about them. This plugin is the bridge: it asks Lineside over HTTP (libcurl,
 * one reused keep-alive handle, always on Mosquitto's own thread, so every call
 * blocks the broker for at most timeout_ms) who may connect, which topics each
 * client may use, tells it who is connected and who left, cuts off connections
 * whose credential Lineside revoked, delivers Lineside's firmware notices, and
 * relays the `provision` user's requests.
 *
 * Build: cc -shared -fPIC -O2 -Wall -Wextra -Werror -I/usr/include/postgresql \
 *            -o lineside_mosquitto.so mosquitto_plugin.c mosquitto_credentials.c \
 *            -lcurl -lcrypto -lsqlite3 -lpq
 *
 * Options (mosquitto.conf, `plugin_opt_<name>`):
 *   url              required; Lineside's base URL, e.g. http://127.0.0.1:8080
 *                    (a trailing slash is tolerated)
 *   secret           required; sent as `Authorization: Bearer <secret>` on every
 *                    request (tick and provision need it; the others ignore it)
 *   recheck_seconds  default 2; seconds (float > 0) between two ticks
 *   timeout_ms       default 5000; libcurl's total timeout for one request
 *   key_file         optional; Lineside's server key file: with it (and the
 *                    four below) the plugin checks devices' passwords itself
 *   sqlite | postgres  Lineside's database: a SQLite file, or a libpq
 *                    connection string (read only)
 *   token_query, password_query  Lineside's SQL: the device id for the keyed
 *                    hash of a device token / MQTT password ($1 or ?)
 * Missing url or secret: mosquitto_plugin_init fails (MOSQ_ERR_INVAL).
 *
 * HTTP contract (every body but the tick's is application/x-www-form-urlencoded,
 * every value encoded with curl_easy_escape; a transport error, a timeout or an
 * unexpected status refuses, or is retried at the next tick, with a log line):
 *
 * CONNECT (MOSQ_EVT_BASIC_AUTH), also for clients that sent no username:
 *   with key_file, and while the last tick or arrivals call got a 200 (so a
 *   plugin with a wrong secret, or a Lineside away, lets nobody in here), a
 *   device token or MQTT password that the database names as the client id's
 *   (mosquitto_credentials.c) is accepted here, recorded as
 *   below with its keyed hash as proof and the device's rule, and queued as an
 *   arrival; everything else, and always a refusal, is Lineside's:
 *   POST {url}/broker/mosquitto/user   username=&password=&clientid=
 *   (absent username/password sent empty). 200 accepts, anything else refuses;
 *   a 200 without a proof for anyone but `provision` refuses too (a wrong
 *   secret), and `provision` is refused a persistent session, unasked.
 *   A 200 carrying a non-empty `X-Lineside-Proof` header records the
 *   connection: client id -> {connection pointer, proof, username}; a record
 *   already held for that client id is replaced (a takeover: the new
 *   connection wins). Without the header (the `provision` user) nothing is
 *   recorded. A 200 that also carries `X-Lineside-Device: <the client id>` (a
 *   device logging in as itself with a password) marks the record as that
 *   device's: its topic checks are answered here, below.
 *
 * Topic rules (MOSQ_EVT_ACL_CHECK): unsubscribing is always allowed. A device's
 *   connection gets Lineside's device rule answered here, with no request
 *   (device_topic_allowed: below devices/<its id>/, the rule of
 *   lineside.domain.mqtt.device_may). Otherwise
 *   POST {url}/broker/mosquitto/acl    username=&clientid=&topic=&acc=
 *   acc = 1 read (delivery to this client), 2 write (its publish),
 *   4 subscribe. 200 allows, anything else denies. Allowed (acc, topic) pairs
 *   are cached on the connection's record (at most 64, oldest replaced first,
 *   dropped with the record), so a device's repeated publishes and deliveries
 *   on one topic are asked once per connection. Refusals are never cached,
 *   nor are answers for connections without a record.
 *
 * Leaving (MOSQ_EVT_DISCONNECT): when the record for the client id belongs to
 *   this very connection it is dropped and `disconnected <id>` is queued for
 *   the next tick. The old connection of a takeover (its record was already
 *   replaced by the new one) and unrecorded clients queue nothing. No HTTP.
 *
 * Tick (MOSQ_EVT_TICK, at most every recheck_seconds on a monotonic clock;
 *   every 0.2 s after a failed one, until one gets a 200):
 *   POST {url}/broker/mosquitto/tick, Content-Type: text/plain, lines of
 *   URL-encoded fields separated by one space, each ending in \n:
 *     cursor <n>                  first, once, if Lineside gave one before
 *     connected <clientid> <proof>   every recorded connection
 *     disconnected <clientid>        every queued departure
 *   answered 200 text/plain, lines:
 *     cursor <n>                  remembered (64-bit decimal) for the next tick
 *     kick <clientid>             the record is dropped (so no `disconnected`
 *                                 follows) and the client disconnected
 *                                 without its will, after the whole answer
 *                                 was read
 *     publish <topic> <qos> <base64 payload> [retain]   published by the
 *                                 broker to every subscriber, retained when
 *                                 the fifth word says so
 *     anything else, blank lines  ignored
 *   A 200 clears the queued departures; otherwise they are sent again next
 *   tick (at most 100000 kept: the oldest are dropped, with a log line).
 *
 * Arrivals (MOSQ_EVT_TICK, 50 ms after the first one waiting, or 500 of
 *   them, and always before a tick so no departure overtakes its arrival):
 *   POST {url}/broker/mosquitto/arrivals, text/plain, one line per device
 *   accepted here:
 *     arrived <clientid> <proof>
 *   answered like a tick (kick lines for a credential changed meanwhile).
 *   Lineside marks them connected and activates those on their first
 *   connection. Until a 200 they are kept (at most 100000) and retried.
 *
 * Provisioning (MOSQ_EVT_MESSAGE): a publish on exactly `/provision/request`
 *   by a client whose username is `provision` is
 *   POST {url}/broker/mosquitto/provision   clientid=&payload=<raw bytes>
 *   and a 200's body is published, QoS 1, to that client alone on the topic
 *   named by the `X-Lineside-Topic` header (default `/provision/response`).
 *   The request itself is routed normally (nobody may subscribe to it).
 *
 * The plugin never logs a password, a proof or the secret.
 */

#define _POSIX_C_SOURCE 200809L /* clock_gettime, strdup, strndup, strtok_r */

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "mosquitto_credentials.h"

#define LOG_PREFIX "lineside: "
#define PATH_USER "/broker/mosquitto/user"
#define PATH_ACL "/broker/mosquitto/acl"
#define PATH_TICK "/broker/mosquitto/tick"
#define PATH_PROVISION "/broker/mosquitto/provision"
#define PATH_ARRIVALS "/broker/mosquitto/arrivals"
#define PROOF_HEADER "X-Lineside-Proof"
#define TOPIC_HEADER "X-Lineside-Topic"
#define DEVICE_HEADER "X-Lineside-Device"
#define DEVICE_TOPIC_ROOT "devices/"
#define PROVISION_USER "provision"
#define PROVISION_REQUEST_TOPIC "/provision/request"
#define PROVISION_RESPONSE_TOPIC "/provision/response"

#define ACL_CACHE_MAX 64             /* allowed (acc, topic) pairs per connection */
#define QUEUE_MAX 100000             /* departures, and arrivals, kept while Lineside is away */
#define ARRIVALS_BATCH 500           /* arrivals sent at once, or ... */
#define ARRIVALS_WAIT_SECONDS 0.05   /* ... this long after the first of them */
#define LISTEN_BACKLOG 4096          /* the kernel caps it at net.core.somaxconn */
/* A failed tick is tried again this soon (a connection refused costs nothing). */
#define AWAY_RETRY_SECONDS(p) ((p)->recheck_seconds < 0.2 ? (p)->recheck_seconds : 0.2)
#define RESPONSE_MAX (64u << 20)     /* a larger answer is an error, not a memory sink */
#define TABLE_INITIAL_BUCKETS 64

/* ------------------------------------------------------------------------ */
/* Data                                                                     */
/* ------------------------------------------------------------------------ */

/* A growable byte string; `failed` remembers an allocation failure so callers
 * can build a whole body and check once. Always NUL-terminated when data. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
};

struct acl_entry {
	int acc;
	char *topic;
};

/* One authenticated device connection, as learnt at /user. */
struct record {
	struct record *next;            /* hash chain */
	char *clientid;
	const struct mosquitto *client; /* identity only: compared, never dereferenced */
	char *proof;
	char *username;                 /* NULL when the client sent none */
	char *device_id;                /* /user named it a device: its topic rule is answered here */
	struct acl_entry *acl;          /* allowed answers, grown up to ACL_CACHE_MAX */
	int acl_count;
	int acl_cap;
	int acl_next;                   /* slot replaced next once the cache is full */
};

/* Chained hash table of records keyed by client id. */
struct table {
	struct record **buckets;
	size_t nbuckets;                /* a power of two */
	size_t count;
};

/* A departure or an arrival waiting to be told to Lineside (FIFO). */
struct queued {
	struct queued *next;
	char *clientid;
	char *proof;                    /* arrivals only */
};

struct queue {
	struct queued *head, *tail;
	size_t len;
	size_t dropped;                 /* since last logged */
};

struct plugin {
	mosquitto_plugin_id_t *identifier;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	struct curl_slist *form_headers;
	struct curl_slist *text_headers;
	char *url_user, *url_acl, *url_tick, *url_provision, *url_arrivals;
	double recheck_seconds;
	long timeout_ms;

	struct table table;

	struct queue departures;        /* for the next tick */
	struct queue arrivals;          /* devices accepted here, for /arrivals */
	double arrivals_due;            /* monotonic seconds: send them by then */
	struct credentials *credentials; /* the own password check; NULL when off */
	bool reporting;                 /* the last tick or arrivals call got a 200 */
	bool backlog_widened;

	bool has_cursor;
	long long cursor;
	double next_tick;               /* monotonic seconds */
	bool tick_failing;              /* log a failing tick once, not every tick */

	struct buf request;             /* reused request body */
	struct buf response;            /* body of the last response */
	char *header_proof;             /* X-Lineside-Proof of the last response */
	char *header_topic;             /* X-Lineside-Topic of the last response */
	char *header_device;            /* X-Lineside-Device of the last response */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* Seconds on a clock that wall-clock changes cannot move. */
static double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Makes room for `extra` more bytes plus a terminating NUL. */
static bool buf_reserve(struct buf *b, size_t extra)
{
	size_t want, cap;
	char *grown;

	if(b->failed) return false;
	if(extra > SIZE_MAX / 2 - b->len){
		b->failed = true;
		return false;
	}
	want = b->len + extra + 1;
	if(want <= b->cap) return true;
	cap = b->cap ? b->cap : 256;
	while(cap < want) cap *= 2;
	grown = realloc(b->data, cap);
	if(!grown){
		b->failed = true;
		return false;
	}
	b->data = grown;
	b->cap = cap;
	return true;
}

static void buf_add(struct buf *b, const void *bytes, size_t n)
{
	if(!buf_reserve(b, n)) return;
	if(n) memcpy(b->data + b->len, bytes, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void buf_add_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Appends `n` bytes percent-encoded by libcurl (every byte but A-Z a-z 0-9 -._~),
 * which both Lineside's form parser and its tick parser decode. */
static void buf_add_escaped(struct plugin *p, struct buf *b, const void *bytes, size_t n)
{
	char *escaped;

	if(n == 0) return; /* curl_easy_escape would take length 0 as "use strlen" */
	if(n > INT_MAX){
		b->failed = true;
		return;
	}
	escaped = curl_easy_escape(p->curl, bytes, (int)n);
	if(!escaped){
		b->failed = true;
		return;
	}
	buf_add_str(b, escaped);
	curl_free(escaped);
}

static void buf_clear(struct buf *b)
{
	b->len = 0;
	b->failed = false;
	if(b->data) b->data[0] = '\0';
}

static void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Appends `name=<escaped value>` to a form body, `&`-separated. */
static void form_field(struct plugin *p, struct buf *b, const char *name, const void *value, size_t n)
{
	if(b->len) buf_add_str(b, "&");
	buf_add_str(b, name);
	buf_add_str(b, "=");
	buf_add_escaped(p, b, value, n);
}

/* NULL-safe string for fields Mosquitto may leave unset. */
static const char *or_empty(const char *s)
{
	return s ? s : "";
}

/* Percent-decodes a field of Lineside's tick answer; NULL when it is empty or
 * decodes to bytes with a NUL (never a valid client id or topic). Free with
 * curl_free. */
static char *unescape_text(struct plugin *p, const char *field)
{
	int len = 0;
	char *text = curl_easy_unescape(p->curl, field, 0, &len);

	if(text && (len == 0 || memchr(text, '\0', (size_t)len))){
		curl_free(text);
		text = NULL;
	}
	return text;
}

static int base64_value(unsigned char c)
{
	if(c >= 'A' && c <= 'Z') return c - 'A';
	if(c >= 'a' && c <= 'z') return c - 'a' + 26;
	if(c >= '0' && c <= '9') return c - '0' + 52;
	if(c == '+') return 62;
	if(c == '/') return 63;
	return -1;
}

/* Decodes standard base64 (padding accepted, not required): Lineside's
 * publish payloads. Returns false on malformed input or no memory. */
static bool base64_decode(const char *in, unsigned char **out, size_t *out_len)
{
	size_t n = strlen(in), total = n, i, len = 0;
	unsigned int acc = 0;
	int bits = 0, v;
	unsigned char *bytes;

	while(n > 0 && in[n-1] == '=') n--;
	if(total - n > 2 || (total != n && total % 4) || n % 4 == 1) return false;
	bytes = malloc(n / 4 * 3 + 3);
	if(!bytes) return false;
	for(i = 0; i < n; i++){
		v = base64_value((unsigned char)in[i]);
		if(v < 0){
			free(bytes);
			return false;
		}
		acc = ((acc << 6) | (unsigned int)v) & 0xFFFFFFu;
		bits += 6;
		if(bits >= 8){
			bits -= 8;
			bytes[len++] = (unsigned char)((acc >> bits) & 0xFFu);
		}
	}
	*out = bytes;
	*out_len = len;
	return true;
}

/* A topic Mosquitto can publish on: valid UTF-8, no wildcards. */
static bool publishable_topic(const char *topic)
{
	return topic[0] != '\0'
		&& mosquitto_validate_utf8(topic, (int)strlen(topic)) == MOSQ_ERR_SUCCESS
		&& mosquitto_pub_topic_check(topic) == MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Connection records: a chained hash table keyed by client id              */
/* ------------------------------------------------------------------------ */

/* FNV-1a: short client ids, no adversarial-collision concern worth more. */
static size_t hash_text(const char *s)
{
	uint32_t h = 2166136261u;

	while(*s){
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return (size_t)h;
}

static void record_free(struct record *rec)
{
	int i;

	for(i = 0; i < rec->acl_count; i++) free(rec->acl[i].topic);
	free(rec->acl);
	free(rec->clientid);
	free(rec->proof);
	free(rec->username);
	free(rec->device_id);
	free(rec);
}

static bool table_init(struct table *t)
{
	t->buckets = calloc(TABLE_INITIAL_BUCKETS, sizeof(*t->buckets));
	t->nbuckets = t->buckets ? TABLE_INITIAL_BUCKETS : 0;
	t->count = 0;
	return t->buckets != NULL;
}

/* The link that points at the record for `clientid`, or at the chain's end. */
static struct record **table_link(struct table *t, const char *clientid)
{
	struct record **link = &t->buckets[hash_text(clientid) & (t->nbuckets - 1)];

	while(*link && strcmp((*link)->clientid, clientid)) link = &(*link)->next;
	return link;
}

static struct record *table_get(struct table *t, const char *clientid)
{
	return *table_link(t, clientid);
}

/* Doubles the buckets to keep chains short; on no memory the old ones stay. */
static void table_grow(struct table *t)
{
	size_t n = t->nbuckets * 2, i;
	struct record **buckets = calloc(n, sizeof(*buckets));
	struct record *rec, *next;

	if(!buckets) return;
	for(i = 0; i < t->nbuckets; i++){
		for(rec = t->buckets[i]; rec; rec = next){
			next = rec->next;
			rec->next = buckets[hash_text(rec->clientid) & (n - 1)];
			buckets[hash_text(rec->clientid) & (n - 1)] = rec;
		}
	}
	free(t->buckets);
	t->buckets = buckets;
	t->nbuckets = n;
}

/* Stores `rec`, replacing (and freeing) any record for the same client id. */
static void table_put(struct table *t, struct record *rec)
{
	struct record **link = table_link(t, rec->clientid);

	if(*link){
		rec->next = (*link)->next;
		record_free(*link);
		*link = rec;
		return;
	}
	rec->next = NULL;
	*link = rec;
	t->count++;
	if(t->count > t->nbuckets) table_grow(t);
}

/* Drops the record for `clientid`, if any. */
static void table_remove(struct table *t, const char *clientid)
{
	struct record **link = table_link(t, clientid);
	struct record *rec = *link;

	if(!rec) return;
	*link = rec->next;
	record_free(rec);
	t->count--;
}

static void table_free(struct table *t)
{
	size_t i;
	struct record *rec, *next;

	for(i = 0; i < t->nbuckets; i++){
		for(rec = t->buckets[i]; rec; rec = next){
			next = rec->next;
			record_free(rec);
		}
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

/* A record made from /user's answer; NULL on no memory. */
static struct record *record_new(const char *clientid, const struct mosquitto *client,
		const char *proof, const char *username, const char *device_id)
{
	struct record *rec = calloc(1, sizeof(*rec));

	if(!rec) return NULL;
	rec->client = client;
	rec->clientid = strdup(clientid);
	rec->proof = strdup(proof);
	rec->username = username ? strdup(username) : NULL;
	rec->device_id = device_id ? strdup(device_id) : NULL;
	if(!rec->clientid || !rec->proof || (username && !rec->username) || (device_id && !rec->device_id)){
		record_free(rec);
		return NULL;
	}
	return rec;
}

/* The record of this very connection: the one for its client id holding its
 * pointer (an old, taken-over connection has none). When Mosquitto has
 * already cleared the id (a refused CONNECT) the table is searched instead. */
static struct record *record_of(struct plugin *p, const struct mosquitto *client)
{
	const char *clientid = mosquitto_client_id(client);
	struct record *rec;
	size_t i;

	if(clientid){
		rec = table_get(&p->table, clientid);
		return rec && rec->client == client ? rec : NULL;
	}
	for(i = 0; i < p->table.nbuckets; i++){
		for(rec = p->table.buckets[i]; rec; rec = rec->next){
			if(rec->client == client) return rec;
		}
	}
	return NULL;
}

static bool acl_cached(const struct record *rec, int acc, const char *topic)
{
	int i;

	for(i = 0; i < rec->acl_count; i++){
		if(rec->acl[i].acc == acc && !strcmp(rec->acl[i].topic, topic)) return true;
	}
	return false;
}

/* Remembers an allowed answer; when full, the oldest entry gives way. On no
 * memory nothing is cached (the next check simply asks again). */
static void acl_remember(struct record *rec, int acc, const char *topic)
{
	char *copy = strdup(topic);
	struct acl_entry *grown;
	int cap;

	if(!copy) return;
	if(rec->acl_count == ACL_CACHE_MAX){
		free(rec->acl[rec->acl_next].topic);
		rec->acl[rec->acl_next].acc = acc;
		rec->acl[rec->acl_next].topic = copy;
		rec->acl_next = (rec->acl_next + 1) % ACL_CACHE_MAX;
		return;
	}
	if(rec->acl_count == rec->acl_cap){
		cap = rec->acl_cap ? rec->acl_cap * 2 : 4;
		if(cap > ACL_CACHE_MAX) cap = ACL_CACHE_MAX;
		grown = realloc(rec->acl, (size_t)cap * sizeof(*grown));
		if(!grown){
			free(copy);
			return;
		}
		rec->acl = grown;
		rec->acl_cap = cap;
	}
	rec->acl[rec->acl_count].acc = acc;
	rec->acl[rec->acl_count].topic = copy;
	rec->acl_count++;
}

/* ------------------------------------------------------------------------ */
/* Departures queued for the tick                                           */
/* ------------------------------------------------------------------------ */

static void queue_drop_oldest(struct queue *q)
{
	struct queued *e = q->head;

	q->head = e->next;
	if(!q->head) q->tail = NULL;
	free(e->clientid);
	free(e->proof);
	free(e);
	q->len--;
}

/* Queues a client id (and proof), bounded so an unreachable Lineside cannot
 * exhaust the broker's memory (the oldest go first). */
static void queue_add(struct queue *q, const char *clientid, const char *proof)
{
	struct queued *e = calloc(1, sizeof(*e));

	if(e){
		e->clientid = strdup(clientid);
		e->proof = proof ? strdup(proof) : NULL;
	}
	if(!e || !e->clientid || (proof && !e->proof)){
		if(e) free(e->clientid);
		free(e);
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "out of memory: %s not queued for Lineside", clientid);
		return;
	}
	if(q->tail) q->tail->next = e;
	else q->head = e;
	q->tail = e;
	q->len++;
	if(q->len > QUEUE_MAX){
		queue_drop_oldest(q);
		q->dropped++;
	}
}

static void queue_clear(struct queue *q)
{
	while(q->head) queue_drop_oldest(q);
}

static void departure_queue(struct plugin *p, const char *clientid)
{
	queue_add(&p->departures, clientid, NULL);
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                     */
/* ------------------------------------------------------------------------ */

/* Collects the response body, refusing (aborting the transfer) past RESPONSE_MAX. */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct plugin *p = userdata;
	size_t n = size * nmemb;

	if(n > RESPONSE_MAX - p->response.len) return 0;
	buf_add(&p->response, data, n);
	return p->response.failed ? 0 : n;
}

/* Stores the value of header line `line` in `*slot` when it is header `name`.
 * Returns false on no memory. */
static bool capture_header(const char *line, size_t len, const char *name, char **slot)
{
	size_t name_len = strlen(name);
	const char *value, *end = line + len;
	char *copy;

	if(len <= name_len || line[name_len] != ':' || strncasecmp(line, name, name_len)) return true;
	value = line + name_len + 1;
	while(value < end && (*value == ' ' || *value == '\t')) value++;
	while(end > value && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
	copy = strndup(value, (size_t)(end - value));
	if(!copy) return false;
	free(*slot);
	*slot = copy;
	return true;
}

static void clear_headers(struct plugin *p)
{
	free(p->header_proof);
	free(p->header_topic);
	free(p->header_device);
	p->header_proof = NULL;
	p->header_topic = NULL;
	p->header_device = NULL;
}

/* Keeps the two headers the contract uses. A status line starts a new
 * response (after an interim 100), so earlier captures are forgotten. Losing
 * a header to no memory aborts the transfer: a 200 without its proof would
 * accept a device Lineside could then never see or revoke. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct plugin *p = userdata;
	size_t n = size * nmemb;

	if(n >= 5 && !memcmp(data, "HTTP/", 5)){
		clear_headers(p);
		return n;
	}
	if(!capture_header(data, n, PROOF_HEADER, &p->header_proof)) return 0;
	if(!capture_header(data, n, TOPIC_HEADER, &p->header_topic)) return 0;
	if(!capture_header(data, n, DEVICE_HEADER, &p->header_device)) return 0;
	return n;
}

/* POSTs p->request to `url`; returns the HTTP status, or -1 on a transport
 * error or timeout (p->errbuf then says why). The response is left in
 * p->response, p->header_proof and p->header_topic. */
static long http_post(struct plugin *p, const char *url, struct curl_slist *headers)
{
	CURLcode rc;
	long status = 0;

	buf_clear(&p->response);
	clear_headers(p);
	p->errbuf[0] = '\0';
	if(p->request.failed){
		snprintf(p->errbuf, sizeof(p->errbuf), "out of memory building the request");
		return -1;
	}
	curl_easy_setopt(p->curl, CURLOPT_URL, url);
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, p->request.data ? p->request.data : "");
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->request.len);
	rc = curl_easy_perform(p->curl);
	if(rc != CURLE_OK){
		if(!p->errbuf[0]) snprintf(p->errbuf, sizeof(p->errbuf), "%s", curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* Logs a non-200 answer for `what` about `clientid`: a plain refusal
 * (401/403) at debug level, anything else as a warning. */
static void log_not_ok(struct plugin *p, long status, const char *what, const char *clientid)
{
	if(status < 0){
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "%s for %s failed: %s", what, clientid, p->errbuf);
	}else if(status == 401 || status == 403){
		mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "%s for %s refused (HTTP %ld)", what, clientid, status);
	}else{
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "%s for %s: unexpected HTTP %ld", what, clientid, status);
	}
}

/* ------------------------------------------------------------------------ */
/* CONNECT                                                                  */
/* ------------------------------------------------------------------------ */

/* Records an accepted connection that came with a proof (replacing an older
 * connection of the same client id). False on no memory. */
static bool remember_connection(struct plugin *p, const char *clientid,
		const struct mosquitto *client, const char *username)
{
	struct record *rec;
	const char *device_id;

	if(!p->header_proof || !p->header_proof[0]) return true; /* the provision user (checked by the caller) */
	/* Only a device logging in as itself gets the rule answered here. */
	device_id = p->header_device && !strcmp(p->header_device, clientid) ? p->header_device : NULL;
	rec = record_new(clientid, client, p->header_proof, username, device_id);
	if(!rec) return false;
	table_put(&p->table, rec);
	return true;
}

/* A device's own password, checked here (mosquitto_credentials.c): recorded as
 * /user's answer would be, and queued as an arrival so Lineside marks it
 * connected (and activates it). False: ask Lineside. */
static bool accepted_here(struct plugin *p, const struct mosquitto *client, const char *clientid,
		const char *username, const char *password)
{
	char proof[PROOF_HEX_LEN + 1];
	struct record *rec;

	/* Only while Lineside hears this plugin (its hook secret right, its server up): a device
	 * let in here must reach Lineside to be activated, rechecked and cut off. */
	if(!p->reporting || !credentials_accept(p->credentials, clientid, username, password, proof)) return false;
	rec = record_new(clientid, client, proof, username, clientid);
	if(!rec) return false;
	table_put(&p->table, rec);
	if(!p->arrivals.len) p->arrivals_due = monotonic_seconds() + ARRIVALS_WAIT_SECONDS;
	queue_add(&p->arrivals, clientid, proof);
	return true;
}

/* Asks /user whether this client may connect. The MQTT password is binary,
 * but Mosquitto 2.0 hands plugins a NUL-terminated copy: bytes from the
 * first NUL on cannot reach Lineside. */
static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct plugin *p = userdata;
	const char *clientid = or_empty(mosquitto_client_id(ed->client));
	const char *username = or_empty(ed->username);
	const char *password = or_empty(ed->password);
	long status;

	(void)event;
	/* The provisioner's sessions are thrown away: a persistent one would be memory anyone
	 * without a password could pile up. */
	if(!strcmp(username, PROVISION_USER) && !mosquitto_client_clean_session(ed->client)) return MOSQ_ERR_AUTH;
	if(accepted_here(p, ed->client, clientid, ed->username, password)) return MOSQ_ERR_SUCCESS;
	buf_clear(&p->request);
	form_field(p, &p->request, "username", username, strlen(username));
	form_field(p, &p->request, "password", password, strlen(password));
	form_field(p, &p->request, "clientid", clientid, strlen(clientid));
	status = http_post(p, p->url_user, p->form_headers);
	if(status != 200){
		log_not_ok(p, status, "CONNECT", clientid);
		return MOSQ_ERR_AUTH;
	}
	/* Lineside gives a proof to every device it accepts, but only to a caller with its hook
	 * secret: a device accepted without one could never be rechecked or revoked. */
	if(strcmp(username, PROVISION_USER) && (!p->header_proof || !p->header_proof[0])){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX
				"/user accepted a device without a proof: is plugin_opt_secret Lineside's hook secret? refused");
		return MOSQ_ERR_AUTH;
	}
	if(!remember_connection(p, clientid, ed->client, ed->username)){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "out of memory recording %s: refused", clientid);
		return MOSQ_ERR_AUTH;
	}
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Topic rules                                                              */
/* ------------------------------------------------------------------------ */

/* The contract's acc number for a Mosquitto access kind; 0 when unknown. */
static int acc_code(int access)
{
	switch(access){
		case MOSQ_ACL_READ: return 1;
		case MOSQ_ACL_WRITE: return 2;
		case MOSQ_ACL_SUBSCRIBE: return 4;
		default: return 0;
	}
}

/* Whether a device may use `topic`: Lineside's rule for a device's own topics
 * (lineside.domain.mqtt.device_may), which /user hands to this plugin by naming
 * the connection a device (X-Lineside-Device), so a device's first publish costs
 * no round trip. Below devices/<its id>/, at least one level, none empty; a
 * publish (WRITE) carries no wildcard; a filter (SUBSCRIBE, and READ: the topic
 * of a delivery) may use '+' as a whole level and '#' as the whole last one.
 * tests/e2e/test_mosquitto_broker.py checks it against device_may itself. */
static bool device_topic_allowed(const char *device_id, const char *topic, int access)
{
	size_t root_len = strlen(DEVICE_TOPIC_ROOT), id_len = strlen(device_id), len;
	const char *level, *end;
	bool filter = access != MOSQ_ACL_WRITE, plus, hash;

	if(strncmp(topic, DEVICE_TOPIC_ROOT, root_len)) return false;
	topic += root_len;
	if(strncmp(topic, device_id, id_len) || topic[id_len] != '/') return false;
	for(level = topic + id_len + 1;; level = end + 1){
		end = strchr(level, '/');
		len = end ? (size_t)(end - level) : strlen(level);
		if(len == 0) return false;
		plus = memchr(level, '+', len) != NULL;
		hash = memchr(level, '#', len) != NULL;
		if(!filter && (plus || hash)) return false;
		if(hash && (len != 1 || end)) return false;
		if(plus && len != 1) return false;
		if(!end) return true;
	}
}

/* The record whose cached answers may serve this check: this connection's,
 * still under the username it connected with. */
static struct record *cache_of(struct plugin *p, const struct mosquitto *client)
{
	struct record *rec = record_of(p, client);
	const char *username = mosquitto_client_username(client);

	if(!rec) return NULL;
	if((rec->username == NULL) != (username == NULL)) return NULL;
	if(username && strcmp(rec->username, username)) return NULL;
	return rec;
}

/* Whether a client may read, write or subscribe: a device's own rule here,
 * otherwise /acl (once per connection and allowed topic); unsubscribing needs
 * no permission. */
static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	struct plugin *p = userdata;
	const char *clientid = or_empty(mosquitto_client_id(ed->client));
	const char *username = or_empty(mosquitto_client_username(ed->client));
	const char *topic = or_empty(ed->topic);
	int acc = acc_code(ed->access);
	struct record *rec;
	char acc_text[4];
	long status;

	(void)event;
	if(ed->access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS;
	if(acc == 0) return MOSQ_ERR_ACL_DENIED;
	rec = cache_of(p, ed->client);
	if(rec && rec->device_id){
		return device_topic_allowed(rec->device_id, topic, ed->access) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
	}
	if(rec && acl_cached(rec, acc, topic)) return MOSQ_ERR_SUCCESS;

	snprintf(acc_text, sizeof(acc_text), "%d", acc);
	buf_clear(&p->request);
	form_field(p, &p->request, "username", username, strlen(username));
	form_field(p, &p->request, "clientid", clientid, strlen(clientid));
	form_field(p, &p->request, "topic", topic, strlen(topic));
	form_field(p, &p->request, "acc", acc_text, strlen(acc_text));
	status = http_post(p, p->url_acl, p->form_headers);
	if(status != 200){
		log_not_ok(p, status, "topic check", clientid);
		return MOSQ_ERR_ACL_DENIED;
	}
	/* Nothing else runs on this thread during the request: rec is still valid. */
	if(rec) acl_remember(rec, acc, topic);
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Leaving                                                                  */
/* ------------------------------------------------------------------------ */

/* Turns the end of a recorded connection into a `disconnected` line. Called
 * for every connection Mosquitto closes, including refused ones and the old
 * half of a takeover (whose record the new connection already replaced). */
static int on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	struct plugin *p = userdata;
	struct record *rec = record_of(p, ed->client);
	char *clientid;

	(void)event;
	if(!rec) return MOSQ_ERR_SUCCESS;
	clientid = rec->clientid;
	departure_queue(p, clientid);
	table_remove(&p->table, clientid);
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Tick                                                                     */
/* ------------------------------------------------------------------------ */

/* Appends one line to the request: `word <clientid>[ <proof>]`, fields escaped. */
static void add_line(struct plugin *p, const char *word, const char *clientid, const char *proof)
{
	buf_add_str(&p->request, word);
	buf_add_str(&p->request, " ");
	buf_add_escaped(p, &p->request, clientid, strlen(clientid));
	if(proof){
		buf_add_str(&p->request, " ");
		buf_add_escaped(p, &p->request, proof, strlen(proof));
	}
	buf_add_str(&p->request, "\n");
}

/* Logs, once, how many of the oldest entries a full queue dropped since last said. */
static void log_dropped(struct queue *q, const char *what)
{
	if(!q->dropped) return;
	mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "%s queue full: dropped the %zu oldest", what, q->dropped);
	q->dropped = 0;
}

/* The tick body: cursor, every recorded connection, every queued departure. */
static void build_tick(struct plugin *p)
{
	char number[32];
	size_t i;
	struct record *rec;
	struct queued *d;

	buf_clear(&p->request);
	if(p->has_cursor){
		snprintf(number, sizeof(number), "cursor %lld\n", p->cursor);
		buf_add_str(&p->request, number);
	}
	for(i = 0; i < p->table.nbuckets; i++){
		for(rec = p->table.buckets[i]; rec; rec = rec->next) add_line(p, "connected", rec->clientid, rec->proof);
	}
	for(d = p->departures.head; d; d = d->next) add_line(p, "disconnected", d->clientid, NULL);
}

static void take_cursor(struct plugin *p, const char *text)
{
	char *end;
	long long value;

	errno = 0;
	value = strtoll(text, &end, 10);
	if(errno || end == text || *end){
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "tick answer: bad cursor ignored");
		return;
	}
	p->cursor = value;
	p->has_cursor = true;
}

/* Publishes one firmware notice from a `publish` line to its subscribers. */
static void publish_notice(struct plugin *p, const char *topic_field, const char *qos_field,
		const char *payload_field, bool retain)
{
	char *topic = unescape_text(p, topic_field);
	unsigned char *payload = NULL;
	size_t len = 0;
	int rc;

	if(!topic || !publishable_topic(topic) || strlen(qos_field) != 1
			|| qos_field[0] < '0' || qos_field[0] > '2'
			|| !base64_decode(payload_field, &payload, &len) || len > INT_MAX){
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "tick answer: bad publish line ignored");
	}else{
		rc = mosquitto_broker_publish_copy(NULL, topic, (int)len, payload, qos_field[0] - '0', retain, NULL);
		if(rc != MOSQ_ERR_SUCCESS){
			mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "publish on %s failed: %s", topic, mosquitto_strerror(rc));
		}
	}
	free(payload);
	if(topic) curl_free(topic);
}

/* Client ids to kick, held until the whole answer is read. */
struct kicks {
	char **ids;
	size_t len;
	size_t cap;
};

static void kicks_add(struct plugin *p, struct kicks *k, const char *field)
{
	char *id = unescape_text(p, field);
	char **grown;
	size_t cap;

	if(!id){
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "tick answer: bad kick line ignored");
		return;
	}
	if(k->len == k->cap){
		cap = k->cap ? k->cap * 2 : 8;
		grown = realloc(k->ids, cap * sizeof(*grown));
		if(!grown){
			mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "out of memory: kick of %s skipped", id);
			curl_free(id);
			return;
		}
		k->ids = grown;
		k->cap = cap;
	}
	k->ids[k->len++] = id;
}

/* Cuts off each connection Lineside revoked. The record goes first, so the
 * DISCONNECT event the kick raises queues no `disconnected` line: Lineside
 * already knows. No will: the device did not just vanish. */
static void kicks_run(struct plugin *p, struct kicks *k)
{
	size_t i;
	int rc;

	for(i = 0; i < k->len; i++){
		table_remove(&p->table, k->ids[i]);
		rc = mosquitto_kick_client_by_clientid(k->ids[i], false);
		if(rc == MOSQ_ERR_SUCCESS){
			mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "kicked %s: credential revoked", k->ids[i]);
		}else if(rc == MOSQ_ERR_NOT_FOUND){
			mosquitto_log_printf(MOSQ_LOG_DEBUG, LOG_PREFIX "kick of %s: not connected", k->ids[i]);
		}else{
			mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "kick of %s failed: %s", k->ids[i], mosquitto_strerror(rc));
		}
		curl_free(k->ids[i]);
	}
	free(k->ids);
}

/* Acts on one line of the tick answer; unknown and blank lines are ignored. */
static void apply_line(struct plugin *p, char *line, struct kicks *k)
{
	char *words[5], *save = NULL, *word;
	int n = 0;

	for(word = strtok_r(line, " \t\r", &save); word && n < 5; word = strtok_r(NULL, " \t\r", &save)){
		words[n++] = word;
	}
	if(n >= 2 && !strcmp(words[0], "cursor")){
		take_cursor(p, words[1]);
	}else if(n >= 2 && !strcmp(words[0], "kick")){
		kicks_add(p, k, words[1]);
	}else if(n >= 3 && !strcmp(words[0], "publish")){
		publish_notice(p, words[1], words[2], n >= 4 ? words[3] : "", n >= 5 && !strcmp(words[4], "retain"));
	}
}

static void apply_tick_answer(struct plugin *p)
{
	struct kicks k = {0};
	char *line, *next;

	for(line = p->response.data; line; line = next){
		next = strchr(line, '\n');
		if(next) *next++ = '\0';
		apply_line(p, line, &k);
	}
	kicks_run(p, &k);
}

/* A failing tick is retried every recheck: warn when it starts failing, then
 * only at debug level until it succeeds again. */
static void log_not_ok_tick(struct plugin *p, long status)
{
	int level = p->tick_failing ? MOSQ_LOG_DEBUG : MOSQ_LOG_WARNING;

	p->tick_failing = true;
	if(status < 0){
		mosquitto_log_printf(level, LOG_PREFIX "tick failed (%zu departures kept): %s",
				p->departures.len, p->errbuf);
	}else{
		mosquitto_log_printf(level, LOG_PREFIX "tick: unexpected HTTP %ld (%zu departures kept)",
				status, p->departures.len);
	}
}

/* Tells Lineside which devices this plugin accepted itself (it marks them
 * connected, and activates them); its answer kicks those whose credential
 * changed meanwhile (unless `at_exit`: nobody is left to kick). True when
 * none are left to tell. */
static bool send_arrivals(struct plugin *p, bool at_exit)
{
	struct queued *a;
	long status;

	if(!p->arrivals.len) return true;
	log_dropped(&p->arrivals, "arrival");
	buf_clear(&p->request);
	for(a = p->arrivals.head; a; a = a->next) add_line(p, "arrived", a->clientid, a->proof);
	status = http_post(p, p->url_arrivals, p->text_headers);
	p->reporting = status == 200;
	if(status != 200){
		log_not_ok(p, status, "arrivals", "the devices accepted here");
		p->arrivals_due = monotonic_seconds() + p->recheck_seconds;
		return false;
	}
	queue_clear(&p->arrivals);
	if(!at_exit) apply_tick_answer(p);
	return true;
}

/* Sends one tick; on a 200 the departures it carried are done with. The
 * table and queue cannot change during the request (same thread), so the
 * kicks Lineside answers are decided on exactly what it was sent. */
static void send_tick(struct plugin *p)
{
	long status;

	log_dropped(&p->departures, "departure");
	build_tick(p);
	status = http_post(p, p->url_tick, p->text_headers);
	p->reporting = status == 200;
	if(status != 200){
		log_not_ok_tick(p, status);
		return;
	}
	if(p->tick_failing){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "tick reaches Lineside again");
		p->tick_failing = false;
	}
	queue_clear(&p->departures);
	apply_tick_answer(p);
}

/* Mosquitto 2.0 listens with a backlog of 100, hard-coded: a fleet coming back at once
 * (after an outage, say) overflows it while the broker works through the CONNECTs, and
 * every SYN the kernel drops costs its device a one-second retransmission. Calling
 * listen() again on a listening socket only changes its backlog (Linux): done once, for
 * every socket of this process that listens, at the first tick, when they all exist. */
static void widen_listen_backlog(void)
{
	DIR *fds = opendir("/proc/self/fd");
	struct dirent *entry;
	int fd, listening;
	socklen_t len;
	char *end;

	if(!fds) return;
	while((entry = readdir(fds))){
		fd = (int)strtol(entry->d_name, &end, 10);
		len = sizeof(listening);
		if(*end || end == entry->d_name || fd == dirfd(fds)) continue;
		if(!getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) && listening){
			if(listen(fd, LISTEN_BACKLOG)){
				mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "cannot widen a listener's backlog: %s", strerror(errno));
			}
		}
	}
	closedir(fds);
}

static int on_tick(int event, void *event_data, void *userdata)
{
	struct plugin *p = userdata;

	double now = monotonic_seconds();

	(void)event;
	(void)event_data;
	if(!p->backlog_widened){
		widen_listen_backlog();
		p->backlog_widened = true;
	}
	if(p->arrivals.len && (now >= p->arrivals_due || now >= p->next_tick || p->arrivals.len >= ARRIVALS_BATCH)){
		if(!send_arrivals(p, false) && now >= p->next_tick){
			p->next_tick = now + p->recheck_seconds; /* Lineside is away: the tick waits too */
			return MOSQ_ERR_SUCCESS;
		}
	}
	if(now < p->next_tick) return MOSQ_ERR_SUCCESS;
	send_tick(p);
	/* Counted from the end of the request, so a slow Lineside is not hammered. Until a tick
	 * gets through (Lineside still starting) sooner: devices get in here only after one. */
	p->next_tick = monotonic_seconds() + (p->reporting ? p->recheck_seconds : AWAY_RETRY_SECONDS(p));
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Provisioning                                                             */
/* ------------------------------------------------------------------------ */

/* Sends Lineside's answer (p->response) to the requesting connection alone. */
static void deliver_provision_answer(struct plugin *p, const char *clientid)
{
	const char *topic = p->header_topic && p->header_topic[0] ? p->header_topic : PROVISION_RESPONSE_TOPIC;
	int rc;

	if(!publishable_topic(topic) || p->response.len > INT_MAX){
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "provision answer for %s unusable: dropped", clientid);
		return;
	}
	rc = mosquitto_broker_publish_copy(clientid, topic, (int)p->response.len, p->response.data, 1, false, NULL);
	if(rc != MOSQ_ERR_SUCCESS){
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "provision answer for %s: %s", clientid, mosquitto_strerror(rc));
	}
}

/* Relays a `provision` client's request on /provision/request to Lineside.
 * Every other message passes untouched, without HTTP. Always lets the
 * message through: the answer, not a refusal, is how Lineside replies. */
static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	struct plugin *p = userdata;
	const char *username, *clientid;
	long status;

	(void)event;
	if(!ed->topic || strcmp(ed->topic, PROVISION_REQUEST_TOPIC)) return MOSQ_ERR_SUCCESS;
	username = mosquitto_client_username(ed->client);
	clientid = mosquitto_client_id(ed->client);
	if(!username || strcmp(username, PROVISION_USER) || !clientid) return MOSQ_ERR_SUCCESS;

	buf_clear(&p->request);
	form_field(p, &p->request, "clientid", clientid, strlen(clientid));
	form_field(p, &p->request, "payload", ed->payload, ed->payloadlen);
	status = http_post(p, p->url_provision, p->form_headers);
	if(status != 200){
		log_not_ok(p, status, "provision request", clientid);
		return MOSQ_ERR_SUCCESS;
	}
	deliver_provision_answer(p, clientid);
	return MOSQ_ERR_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Plugin life cycle                                                        */
/* ------------------------------------------------------------------------ */

static const struct {
	int event;
	MOSQ_FUNC_generic_callback callback;
} CALLBACKS[] = {
	{MOSQ_EVT_BASIC_AUTH, on_basic_auth},
	{MOSQ_EVT_ACL_CHECK, on_acl_check},
	{MOSQ_EVT_DISCONNECT, on_disconnect},
	{MOSQ_EVT_TICK, on_tick},
	{MOSQ_EVT_MESSAGE, on_message},
};
#define CALLBACK_COUNT (sizeof(CALLBACKS) / sizeof(CALLBACKS[0]))

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;

	for(i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

/* The options as read from mosquitto.conf (values borrowed from Mosquitto). */
struct options {
	const char *url;
	const char *secret;
	const char *recheck_seconds;
	const char *timeout_ms;
	struct credentials_options credentials;
};

static void read_options(struct options *o, const struct mosquitto_opt *opts, int count)
{
	int i;

	memset(o, 0, sizeof(*o));
	for(i = 0; i < count; i++){
		if(!strcmp(opts[i].key, "url")) o->url = opts[i].value;
		else if(!strcmp(opts[i].key, "secret")) o->secret = opts[i].value;
		else if(!strcmp(opts[i].key, "recheck_seconds")) o->recheck_seconds = opts[i].value;
		else if(!strcmp(opts[i].key, "timeout_ms")) o->timeout_ms = opts[i].value;
		else if(!strcmp(opts[i].key, "key_file")) o->credentials.key_file = opts[i].value;
		else if(!strcmp(opts[i].key, "sqlite")) o->credentials.sqlite = opts[i].value;
		else if(!strcmp(opts[i].key, "postgres")) o->credentials.postgres = opts[i].value;
		else if(!strcmp(opts[i].key, "token_query")) o->credentials.token_query = opts[i].value;
		else if(!strcmp(opts[i].key, "password_query")) o->credentials.password_query = opts[i].value;
		else mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "unknown option plugin_opt_%s ignored", opts[i].key);
	}
}

/* A header value must not smuggle in further header lines. */
static bool header_safe(const char *s)
{
	return !strpbrk(s, "\r\n");
}

/* Checks the options and stores the numbers; logs what is wrong. */
static bool check_options(struct plugin *p, const struct options *o)
{
	char *end;

	if(!o->url || !o->url[0] || !header_safe(o->url)){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "plugin_opt_url is required (Lineside's base URL)");
		return false;
	}
	if(!o->secret || !o->secret[0] || !header_safe(o->secret)){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "plugin_opt_secret is required (one line)");
		return false;
	}
	p->recheck_seconds = 2.0;
	if(o->recheck_seconds){
		errno = 0;
		p->recheck_seconds = strtod(o->recheck_seconds, &end);
		if(errno || end == o->recheck_seconds || *end || !(p->recheck_seconds > 0 && p->recheck_seconds < 1e9)){
			mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "plugin_opt_recheck_seconds must be a number of seconds > 0");
			return false;
		}
	}
	p->timeout_ms = 5000;
	if(o->timeout_ms){
		errno = 0;
		p->timeout_ms = strtol(o->timeout_ms, &end, 10);
		if(errno || end == o->timeout_ms || *end || p->timeout_ms <= 0){
			mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "plugin_opt_timeout_ms must be a whole number > 0");
			return false;
		}
	}
	return true;
}

/* `base` (trailing slashes dropped) followed by `path`. */
static char *join_url(const char *base, const char *path)
{
	size_t n = strlen(base), m = strlen(path);
	char *url;

	while(n > 0 && base[n-1] == '/') n--;
	url = malloc(n + m + 1);
	if(!url) return NULL;
	memcpy(url, base, n);
	memcpy(url + n, path, m + 1);
	return url;
}

/* The headers of every request: its content type, the bearer secret, and no
 * `Expect: 100-continue` (an extra round trip on larger bodies). */
static struct curl_slist *make_headers(const char *content_type, const char *secret)
{
	struct buf auth = {0};
	const char *lines[3];
	struct curl_slist *list = NULL, *grown;
	size_t i;

	buf_add_str(&auth, "Authorization: Bearer ");
	buf_add_str(&auth, secret);
	if(auth.failed){
		buf_free(&auth);
		return NULL;
	}
	lines[0] = content_type;
	lines[1] = auth.data;
	lines[2] = "Expect:";
	for(i = 0; i < 3; i++){
		grown = curl_slist_append(list, lines[i]);
		if(!grown){
			curl_slist_free_all(list);
			list = NULL;
			break;
		}
		list = grown;
	}
	memset(auth.data, 0, auth.len); /* the secret lives on only inside curl's list */
	buf_free(&auth);
	return list;
}

/* The reused easy handle: one keep-alive connection to Lineside. */
static bool setup_curl(struct plugin *p)
{
	p->curl = curl_easy_init();
	if(!p->curl) return false;
	curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM inside the broker */
	curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, p->timeout_ms);
	curl_easy_setopt(p->curl, CURLOPT_ERRORBUFFER, p->errbuf);
	curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(p->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(p->curl, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(p->curl, CURLOPT_POST, 1L);
	return true;
}

static void plugin_free(struct plugin *p)
{
	size_t i;

	if(p->identifier){
		for(i = 0; i < CALLBACK_COUNT; i++){
			mosquitto_callback_unregister(p->identifier, CALLBACKS[i].event, CALLBACKS[i].callback, NULL);
		}
	}
	table_free(&p->table);
	queue_clear(&p->departures);
	clear_headers(p);
	buf_free(&p->request);
	buf_free(&p->response);
	curl_slist_free_all(p->form_headers);
	curl_slist_free_all(p->text_headers);
	if(p->curl) curl_easy_cleanup(p->curl);
	free(p->url_user);
	free(p->url_acl);
	free(p->url_tick);
	free(p->url_provision);
	free(p->url_arrivals);
	queue_clear(&p->arrivals);
	credentials_close(p->credentials);
	free(p);
	curl_global_cleanup();
}

/* Everything but the callbacks; false (logged) when something is missing. */
static bool plugin_setup(struct plugin *p, const struct options *o)
{
	if(!check_options(p, o)) return false;
	p->url_user = join_url(o->url, PATH_USER);
	p->url_acl = join_url(o->url, PATH_ACL);
	p->url_tick = join_url(o->url, PATH_TICK);
	p->url_provision = join_url(o->url, PATH_PROVISION);
	p->url_arrivals = join_url(o->url, PATH_ARRIVALS);
	p->form_headers = make_headers("Content-Type: application/x-www-form-urlencoded", o->secret);
	p->text_headers = make_headers("Content-Type: text/plain", o->secret);
	if(!p->url_user || !p->url_acl || !p->url_tick || !p->url_provision || !p->url_arrivals
			|| !p->form_headers || !p->text_headers || !table_init(&p->table) || !setup_curl(p)){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "out of memory starting the plugin");
		return false;
	}
	p->next_tick = monotonic_seconds(); /* first tick at once: Lineside hands out its cursor */
	return credentials_open(&o->credentials, &p->credentials);
}

static bool register_callbacks(struct plugin *p, mosquitto_plugin_id_t *identifier)
{
	size_t i;
	int rc;

	p->identifier = identifier;
	for(i = 0; i < CALLBACK_COUNT; i++){
		rc = mosquitto_callback_register(identifier, CALLBACKS[i].event, CALLBACKS[i].callback, NULL, p);
		if(rc != MOSQ_ERR_SUCCESS){
			mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "cannot register callback %d: %s",
					CALLBACKS[i].event, mosquitto_strerror(rc));
			return false;
		}
	}
	return true;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	struct plugin *p;
	struct options o;

	if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "libcurl failed to initialise");
		return MOSQ_ERR_UNKNOWN;
	}
	p = calloc(1, sizeof(*p));
	if(!p){
		curl_global_cleanup();
		return MOSQ_ERR_NOMEM;
	}
	read_options(&o, options, option_count);
	if(!plugin_setup(p, &o)){
		plugin_free(p);
		return MOSQ_ERR_INVAL;
	}
	if(!register_callbacks(p, identifier)){
		plugin_free(p);
		return MOSQ_ERR_UNKNOWN;
	}
	*userdata = p;
	mosquitto_log_printf(MOSQ_LOG_INFO, LOG_PREFIX "ready, ticking every %g s%s", p->recheck_seconds,
			p->credentials ? ", checking devices' passwords itself" : "");
	return MOSQ_ERR_SUCCESS;
}

/* Mosquitto is stopping, and every connection it holds ends with it: one last
 * tick reports them all as departures, so Lineside does not show them online.
 * (`lineside serve` stops Mosquitto before its HTTP server for this.) The
 * answer is not applied: there is nobody left to kick or publish to. */
static void farewell_tick(struct plugin *p)
{
	size_t i;
	struct record *rec;
	long status;

	if(!send_arrivals(p, true)){
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "%zu arrivals at shutdown not reported", p->arrivals.len);
	}
	for(i = 0; i < p->table.nbuckets; i++){
		for(rec = p->table.buckets[i]; rec; rec = rec->next){
			departure_queue(p, rec->clientid);
		}
	}
	table_free(&p->table);
	if(!table_init(&p->table)) return;
	if(!p->departures.head) return;
	build_tick(p);
	status = http_post(p, p->url_tick, p->text_headers);
	if(status != 200){
		log_not_ok_tick(p, status);
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX "%zu departures at shutdown not reported",
				p->departures.len);
	}
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	if(userdata){
		farewell_tick(userdata);
		plugin_free(userdata);
	}
	return MOSQ_ERR_SUCCESS;
}
