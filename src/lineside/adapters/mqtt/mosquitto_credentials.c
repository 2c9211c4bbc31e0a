/*
 * The plugin's own check of a device's password: see mosquitto_credentials.h.
 *
 * The rule is Lineside's (lineside.services.mqtt_access): a password starting
 * `lsd_` is a device token, `lsm_` an MQTT password; its keyed hash must be
 * the current one of a device whose id is the client id, the username absent
 * or that id too, in a state that may connect. The SQL is Lineside's, written
 * into mosquitto.conf by `lineside serve` from its own table definitions.
 *
 * The database connection is read-only (SQLite: query_only over WAL, so it
 * never blocks Lineside's writer; PostgreSQL: plain SELECTs). After a
 * database error every CONNECT goes to Lineside for RETRY_SECONDS, then the
 * connection is opened again.
 */
#define _POSIX_C_SOURCE 200809L

#include "mosquitto_credentials.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sqlite3.h>

#define LOG_PREFIX "lineside: "
#define TOKEN_PREFIX "lsd_"
#define MQTT_PASSWORD_PREFIX "lsm_"
#define KEY_FILE_MAX 1024    /* hex characters; Lineside's key is 64 */
#define KEY_MIN_BYTES 32     /* as lineside.domain.secret_tokens.SecretHasher */
#define RETRY_SECONDS 5.0
#define SQLITE_BUSY_MS 200

enum kind { KIND_TOKEN = 0, KIND_PASSWORD = 1, KIND_COUNT = 2 };

struct credentials {
	EVP_MAC_CTX *keyed;            /* HMAC-SHA-256 under the server key; copied per check */
	char *queries[KIND_COUNT];
	char *sqlite_path;
	sqlite3 *sqlite;
	sqlite3_stmt *statements[KIND_COUNT];
	char *postgres;
	PGconn *pg;
	bool connected;
	double retry_at;               /* monotonic seconds; 0 when not failing */
};

static const char *const STATEMENT_NAMES[KIND_COUNT] = {"lineside_token", "lineside_mqtt_password"};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* The server key                                                           */
/* ------------------------------------------------------------------------ */

static int hex_value(int c)
{
	if(c >= '0' && c <= '9') return c - '0';
	if(c >= 'a' && c <= 'f') return c - 'a' + 10;
	if(c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* The key file's bytes (hex text, surrounding white space ignored) into key;
 * its length, or 0 when unreadable or not hex. */
static size_t read_key(const char *path, unsigned char *key, size_t max)
{
	char text[KEY_FILE_MAX + 2];
	size_t n, start = 0, end, i, len = 0;
	FILE *f = fopen(path, "r");
	int hi, lo;

	if(!f) return 0;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	while(start < n && isspace((unsigned char)text[start])) start++;
	end = n;
	while(end > start && isspace((unsigned char)text[end - 1])) end--;
	if((end - start) % 2 || (end - start) / 2 > max || end - start > KEY_FILE_MAX) len = 0;
	else{
		for(i = start; i < end; i += 2){
			hi = hex_value(text[i]);
			lo = hex_value(text[i + 1]);
			if(hi < 0 || lo < 0){ len = 0; break; }
			key[len++] = (unsigned char)(hi * 16 + lo);
		}
	}
	OPENSSL_cleanse(text, sizeof(text));
	return len;
}

static EVP_MAC_CTX *keyed_hmac(const unsigned char *key, size_t len)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};

	EVP_MAC_free(mac); /* the context keeps its own reference */
	if(ctx && !EVP_MAC_init(ctx, key, len, params)){
		EVP_MAC_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* Lineside's proof of a secret: HMAC-SHA-256 under the server key, in hex. */
static bool keyed_hash(struct credentials *c, const char *secret, char *proof)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char digest[32];
	size_t len = 0, i;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(c->keyed);
	bool ok = ctx && EVP_MAC_update(ctx, (const unsigned char *)secret, strlen(secret))
		&& EVP_MAC_final(ctx, digest, &len, sizeof(digest)) && len == sizeof(digest);

	EVP_MAC_CTX_free(ctx);
	if(!ok) return false;
	for(i = 0; i < sizeof(digest); i++){
		proof[2 * i] = digits[digest[i] >> 4];
		proof[2 * i + 1] = digits[digest[i] & 15];
	}
	proof[PROOF_HEX_LEN] = '\0';
	return true;
}

/* ------------------------------------------------------------------------ */
/* The database                                                             */
/* ------------------------------------------------------------------------ */

static void disconnect(struct credentials *c)
{
	int k;

	for(k = 0; k < KIND_COUNT; k++){
		sqlite3_finalize(c->statements[k]);
		c->statements[k] = NULL;
	}
	if(c->sqlite) sqlite3_close_v2(c->sqlite);
	c->sqlite = NULL;
	if(c->pg) PQfinish(c->pg);
	c->pg = NULL;
	c->connected = false;
}

/* A database error: warn once, ask Lineside for a while, then reconnect. */
static void failed(struct credentials *c, const char *what, const char *why)
{
	if(!c->retry_at){
		mosquitto_log_printf(MOSQ_LOG_WARNING, LOG_PREFIX
				"own password check off for %g s, Lineside answers every CONNECT (%s: %s)",
				RETRY_SECONDS, what, why ? why : "unknown error");
	}
	disconnect(c);
	c->retry_at = now_seconds() + RETRY_SECONDS;
}

static bool connect_sqlite(struct credentials *c)
{
	int k;

	/* No SQLITE_OPEN_CREATE: a database Lineside has not made yet is an error. */
	if(sqlite3_open_v2(c->sqlite_path, &c->sqlite, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK){
		failed(c, "opening the SQLite database", c->sqlite ? sqlite3_errmsg(c->sqlite) : "no memory");
		return false;
	}
	sqlite3_busy_timeout(c->sqlite, SQLITE_BUSY_MS);
	if(sqlite3_exec(c->sqlite, "PRAGMA query_only = ON", NULL, NULL, NULL) != SQLITE_OK){
		failed(c, "PRAGMA query_only", sqlite3_errmsg(c->sqlite));
		return false;
	}
	for(k = 0; k < KIND_COUNT; k++){
		if(sqlite3_prepare_v2(c->sqlite, c->queries[k], -1, &c->statements[k], NULL) != SQLITE_OK){
			failed(c, "preparing the query", sqlite3_errmsg(c->sqlite));
			return false;
		}
	}
	return true;
}

static bool connect_postgres(struct credentials *c)
{
	PGresult *res;
	int k;

	c->pg = PQconnectdb(c->postgres);
	if(!c->pg || PQstatus(c->pg) != CONNECTION_OK){
		failed(c, "connecting to PostgreSQL", c->pg ? PQerrorMessage(c->pg) : "no memory");
		return false;
	}
	for(k = 0; k < KIND_COUNT; k++){
		res = PQprepare(c->pg, STATEMENT_NAMES[k], c->queries[k], 1, NULL);
		if(PQresultStatus(res) != PGRES_COMMAND_OK){
			failed(c, "preparing the query", PQerrorMessage(c->pg));
			PQclear(res);
			return false;
		}
		PQclear(res);
	}
	return true;
}

static bool ensure_connected(struct credentials *c)
{
	if(c->connected) return true;
	if(c->retry_at && now_seconds() < c->retry_at) return false;
	if(!(c->sqlite_path ? connect_sqlite(c) : connect_postgres(c))) return false;
	if(c->retry_at) mosquitto_log_printf(MOSQ_LOG_NOTICE, LOG_PREFIX "own password check on again");
	c->retry_at = 0;
	c->connected = true;
	return true;
}

/* Whether the query for `kind` finds exactly the device `clientid` for `proof`. */
static bool sqlite_finds(struct credentials *c, enum kind kind, const char *proof, const char *clientid)
{
	sqlite3_stmt *s = c->statements[kind];
	const unsigned char *id;
	bool found = false;
	int rc;

	sqlite3_bind_text(s, 1, proof, PROOF_HEX_LEN, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if(rc == SQLITE_ROW){
		id = sqlite3_column_text(s, 0);
		found = id && !strcmp((const char *)id, clientid);
	}else if(rc != SQLITE_DONE){
		failed(c, "the SQLite query", sqlite3_errmsg(c->sqlite));
		return false;
	}
	/* Ends the read transaction at once: a kept snapshot would hold back the WAL checkpoint. */
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return found;
}

static bool postgres_finds(struct credentials *c, enum kind kind, const char *proof, const char *clientid)
{
	const char *values[1] = {proof};
	PGresult *res = PQexecPrepared(c->pg, STATEMENT_NAMES[kind], 1, values, NULL, NULL, 0);
	bool found = false;

	if(PQresultStatus(res) != PGRES_TUPLES_OK){
		failed(c, "the PostgreSQL query", PQerrorMessage(c->pg));
	}else if(PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)){
		found = !strcmp(PQgetvalue(res, 0, 0), clientid);
	}
	PQclear(res);
	return found;
}

/* ------------------------------------------------------------------------ */
/* The interface                                                            */
/* ------------------------------------------------------------------------ */

bool credentials_accept(struct credentials *c, const char *clientid, const char *username,
		const char *password, char *proof)
{
	enum kind kind;

	if(!c || !clientid[0] || (username && username[0] && strcmp(username, clientid))) return false;
	if(!strncmp(password, TOKEN_PREFIX, strlen(TOKEN_PREFIX))) kind = KIND_TOKEN;
	else if(!strncmp(password, MQTT_PASSWORD_PREFIX, strlen(MQTT_PASSWORD_PREFIX))) kind = KIND_PASSWORD;
	else return false;
	if(!ensure_connected(c) || !keyed_hash(c, password, proof)) return false;
	return c->sqlite_path ? sqlite_finds(c, kind, proof, clientid) : postgres_finds(c, kind, proof, clientid);
}

void credentials_close(struct credentials *c)
{
	int k;

	if(!c) return;
	disconnect(c);
	EVP_MAC_CTX_free(c->keyed);
	for(k = 0; k < KIND_COUNT; k++) free(c->queries[k]);
	free(c->sqlite_path);
	if(c->postgres) OPENSSL_cleanse(c->postgres, strlen(c->postgres)); /* may hold a password */
	free(c->postgres);
	free(c);
}

static bool options_complete(const struct credentials_options *o)
{
	if(!o->token_query || !o->password_query || (!o->sqlite == !o->postgres)){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX
				"plugin_opt_key_file needs plugin_opt_token_query, plugin_opt_password_query "
				"and one of plugin_opt_sqlite or plugin_opt_postgres");
		return false;
	}
	return true;
}

bool credentials_open(const struct credentials_options *o, struct credentials **out)
{
	unsigned char key[KEY_FILE_MAX / 2];
	size_t key_len;
	struct credentials *c;

	*out = NULL;
	if(!o->key_file) return true;
	if(!options_complete(o)) return false;
	key_len = read_key(o->key_file, key, sizeof(key));
	if(key_len < KEY_MIN_BYTES){
		OPENSSL_cleanse(key, sizeof(key));
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "plugin_opt_key_file %s: not a readable key of %d bytes or more in hex",
				o->key_file, KEY_MIN_BYTES);
		return false;
	}
	c = calloc(1, sizeof(*c));
	if(c) c->keyed = keyed_hmac(key, key_len);
	OPENSSL_cleanse(key, sizeof(key));
	if(c && c->keyed){
		c->queries[KIND_TOKEN] = strdup(o->token_query);
		c->queries[KIND_PASSWORD] = strdup(o->password_query);
		c->sqlite_path = o->sqlite ? strdup(o->sqlite) : NULL;
		c->postgres = o->postgres ? strdup(o->postgres) : NULL;
	}
	if(!c || !c->keyed || !c->queries[KIND_TOKEN] || !c->queries[KIND_PASSWORD] || (!c->sqlite_path && !c->postgres)){
		mosquitto_log_printf(MOSQ_LOG_ERR, LOG_PREFIX "cannot set up the own password check (HMAC-SHA-256 or memory)");
		credentials_close(c);
		return false;
	}
	*out = c;
	return true;
}
