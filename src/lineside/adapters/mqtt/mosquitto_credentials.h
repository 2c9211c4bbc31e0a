/*
 * The plugin's own check of a device's password (mosquitto_credentials.c).
 *
 * Lineside keeps every device token and MQTT password only as HMAC-SHA-256
 * under its server key. With that key and read access to Lineside's database,
 * the plugin accepts a device's CONNECT itself: the keyed hash of the
 * password, one index probe, no round trip to Lineside on Mosquitto's only
 * thread. It only ever *accepts*; anything it cannot settle (no such hash, a
 * station's pool token, another client id, a database error) goes to
 * Lineside's /user as before, which stays the authority for every refusal.
 */
#ifndef LINESIDE_MOSQUITTO_CREDENTIALS_H
#define LINESIDE_MOSQUITTO_CREDENTIALS_H

#include <stdbool.h>

#define PROOF_HEX_LEN 64 /* a SHA-256 in lowercase hex, as Lineside stores it */

struct credentials;

/* What mosquitto.conf says (values borrowed from Mosquitto). */
struct credentials_options {
	const char *key_file;       /* Lineside's server key file (hex) */
	const char *sqlite;         /* path of Lineside's SQLite database, or */
	const char *postgres;       /* a libpq connection string */
	const char *token_query;    /* one parameter, the hash; selects the device id */
	const char *password_query; /* the same for MQTT passwords */
};

/* *out is NULL when no local check is configured (no key_file): every CONNECT
 * is asked of Lineside. False (logged) when the options are incomplete or the
 * key cannot be read. The database is opened lazily, at the first check. */
bool credentials_open(const struct credentials_options *o, struct credentials **out);

/* True when the password is a device token or MQTT password of the device
 * `clientid` that may connect now; `proof` (PROOF_HEX_LEN + 1 bytes) then
 * holds its keyed hash. False means "ask Lineside", never "refused". */
bool credentials_accept(struct credentials *c, const char *clientid, const char *username,
		const char *password, char *proof);

void credentials_close(struct credentials *c);

#endif
