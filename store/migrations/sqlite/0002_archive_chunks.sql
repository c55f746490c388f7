-- Switchboard store, schema version 2 (SQLite): the archive in chunks.
-- One row holds many entries of one archive (user, transport, peer) in a
-- binary blob (see chunk.go), instead of a row and five index entries per
-- entry. After this SQL, the Go step of version 2 (migrate_archive.go)
-- moves every row of the old archive table into chunks and drops it.

CREATE TABLE archive_chunks (
	id        INTEGER PRIMARY KEY,
	user_jid  TEXT    NOT NULL,
	transport TEXT    NOT NULL,
	peer      TEXT    NOT NULL,
	first_seq INTEGER NOT NULL, -- smallest seq (archive id order key) of its entries
	last_seq  INTEGER NOT NULL, -- largest
	first_at  INTEGER NOT NULL, -- earliest entry time
	last_at   INTEGER NOT NULL, -- latest
	entries   INTEGER NOT NULL, -- how many entries data holds
	data      BLOB    NOT NULL
);
-- Paging (RSM), counting and finding an id within one archive; last_seq
-- lets the chunks that may overlap a seq be found from the index alone.
CREATE INDEX archive_chunks_seq ON archive_chunks (user_jid, transport, peer, first_seq, last_seq);
-- PruneArchive.
CREATE INDEX archive_chunks_time ON archive_chunks (transport, last_at);
