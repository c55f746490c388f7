-- Switchboard store, schema version 1 (SQLite).
-- Times are Unix microseconds (UTC) in INTEGER columns.

-- Store-wide values: key_check proves the key file matches.
CREATE TABLE meta (
	name  TEXT NOT NULL PRIMARY KEY,
	value BLOB NOT NULL
);

CREATE TABLE accounts (
	user_jid  TEXT    NOT NULL,
	transport TEXT    NOT NULL,
	fields    TEXT    NOT NULL DEFAULT '{}', -- JSON object of strings
	secrets   BLOB    NOT NULL,              -- AES-256-GCM, see secrets.go
	created   INTEGER NOT NULL,
	updated   INTEGER NOT NULL,
	PRIMARY KEY (user_jid, transport)
);

CREATE TABLE message_ids (
	n         INTEGER PRIMARY KEY,
	user_jid  TEXT    NOT NULL,
	transport TEXT    NOT NULL,
	peer      TEXT    NOT NULL,
	stanza_id TEXT    NOT NULL,
	remote_id TEXT    NOT NULL,
	created   INTEGER NOT NULL,
	UNIQUE (user_jid, transport, peer, stanza_id, remote_id)
);
CREATE INDEX message_ids_remote ON message_ids (user_jid, transport, peer, remote_id);
CREATE INDEX message_ids_created ON message_ids (transport, created);

CREATE TABLE archive (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	id        TEXT    NOT NULL UNIQUE,
	user_jid  TEXT    NOT NULL,
	transport TEXT    NOT NULL,
	peer      TEXT    NOT NULL,
	nick      TEXT    NOT NULL DEFAULT '',
	outgoing  INTEGER NOT NULL DEFAULT 0,
	body      TEXT    NOT NULL DEFAULT '',
	action    INTEGER NOT NULL DEFAULT 0,
	remote_id TEXT    NOT NULL DEFAULT '',
	origin_id TEXT    NOT NULL DEFAULT '',
	sent_at   INTEGER NOT NULL
);
-- Paging (RSM) and counting within one archive.
CREATE INDEX archive_peer_seq ON archive (user_jid, transport, peer, seq);
-- MAM start/end filters.
CREATE INDEX archive_peer_time ON archive (user_jid, transport, peer, sent_at);
-- PruneArchive.
CREATE INDEX archive_time ON archive (transport, sent_at);

CREATE TABLE queue (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	transport  TEXT    NOT NULL,
	user_jid   TEXT    NOT NULL,
	peer       TEXT    NOT NULL DEFAULT '',
	stanza_id  TEXT    NOT NULL DEFAULT '',
	payload    BLOB    NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0,
	next_try   INTEGER NOT NULL,
	last_error TEXT    NOT NULL DEFAULT '',
	created    INTEGER NOT NULL
);
CREATE INDEX queue_due ON queue (transport, next_try, id);
CREATE INDEX queue_user ON queue (user_jid, transport);

CREATE TABLE state (
	user_jid  TEXT    NOT NULL,
	transport TEXT    NOT NULL,
	state_key TEXT    NOT NULL,
	value     BLOB    NOT NULL,
	updated   INTEGER NOT NULL,
	PRIMARY KEY (user_jid, transport, state_key)
);
