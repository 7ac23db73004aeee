package postgres

import (
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// schemaVersion is the version Migrate brings the tables to.
const schemaVersion = 1

// notifyChannel is the LISTEN/NOTIFY channel; the payload is the schema.
const notifyChannel = "seqrelay_events"

// lockSpace is the first key of every advisory lock seqrelay takes ("SQRL");
// the second is derived from the schema, so that logs in different schemas
// do not contend.
const lockSpace int32 = 0x5351524c

// sequenceChunk bounds the rows one sequencer statement numbers, so that its
// transaction stays short.
const sequenceChunk = 10000

func lockKey(schema string) int32 {
	h := fnv.New32a()
	h.Write([]byte(schema))
	return int32(h.Sum32())
}

// queries holds the SQL of one schema, with qualified, quoted names.
type queries struct {
	events, sequencer, checkpoints, versionTable string
	insert, pending, read, sequence              string
}

func qualify(schema, name string) string { return pgx.Identifier{schema, name}.Sanitize() }

func newQueries(schema string) queries {
	ev := qualify(schema, "seqrelay_events")
	sq := qualify(schema, "seqrelay_sequencer")
	return queries{
		events:       ev,
		sequencer:    sq,
		checkpoints:  qualify(schema, "seqrelay_checkpoints"),
		versionTable: qualify(schema, "seqrelay_schema"),
		// The ORDER BY makes ids follow the order of the events.
		insert: `INSERT INTO ` + ev + ` (type, payload, metadata)
			SELECT t, p, m::jsonb FROM unnest($1::text[], $2::bytea[], $3::text[]) WITH ORDINALITY AS u(t, p, m, o) ORDER BY o
			RETURNING id`,
		pending: `SELECT EXISTS (SELECT 1 FROM ` + ev + ` WHERE seq IS NULL)`,
		read:    `SELECT seq, type, payload, metadata, created_at FROM ` + ev + ` WHERE seq > $1 ORDER BY seq LIMIT $2`,
		// Numbers up to $1 committed, unnumbered rows in id order, from the
		// counter; the caller holds the advisory lock, and this statement's
		// snapshot was taken after it was granted. Returns how many rows
		// were numbered, and the numbers given to the ids in $2.
		sequence: `WITH pending AS (
				SELECT id FROM ` + ev + ` WHERE seq IS NULL ORDER BY id LIMIT $1
			), numbered AS (
				SELECT id, row_number() OVER (ORDER BY id) AS n FROM pending
			), counter AS (
				UPDATE ` + sq + ` SET last_seq = last_seq + (SELECT count(*) FROM pending)
				WHERE (SELECT count(*) FROM pending) > 0
				RETURNING last_seq - (SELECT count(*) FROM pending) AS base
			), assigned AS (
				UPDATE ` + ev + ` e SET seq = counter.base + numbered.n
				FROM numbered, counter WHERE e.id = numbered.id
				RETURNING e.id, e.seq
			)
			SELECT (SELECT count(*) FROM assigned),
				array(SELECT id FROM assigned WHERE id = ANY($2::bigint[]) ORDER BY id),
				array(SELECT seq FROM assigned WHERE id = ANY($2::bigint[]) ORDER BY id)`,
	}
}

// migrations returns, for each version, the statements that bring the
// previous version to it. Version 1 creates everything.
func migrations(schema string) [][]string {
	ev := qualify(schema, "seqrelay_events")
	fn := qualify(schema, "seqrelay_notify")
	return [][]string{
		{
			`CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{schema}.Sanitize(),
			`CREATE TABLE IF NOT EXISTS ` + qualify(schema, "seqrelay_schema") + ` (
				version     integer     NOT NULL,
				migrated_at timestamptz NOT NULL DEFAULT now())`,
			`CREATE TABLE ` + ev + ` (
				id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
				seq        bigint UNIQUE CHECK (seq > 0),
				type       text   NOT NULL CHECK (type <> '' AND octet_length(type) <= 256),
				payload    bytea  NOT NULL DEFAULT '\x',
				metadata   jsonb  CHECK (metadata IS NULL OR (jsonb_typeof(metadata) = 'object' AND NOT metadata ? ''
				               AND NOT jsonb_path_exists(metadata, '$.* ? (@.type() != "string")'))),
				created_at timestamptz NOT NULL DEFAULT now())`,
			`CREATE INDEX seqrelay_events_unsequenced ON ` + ev + ` (id) WHERE seq IS NULL`,
			`CREATE TABLE ` + qualify(schema, "seqrelay_sequencer") + ` (
				singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
				last_seq  bigint  NOT NULL CHECK (last_seq >= 0))`,
			`INSERT INTO ` + qualify(schema, "seqrelay_sequencer") + ` (last_seq) VALUES (0)`,
			`CREATE TABLE ` + qualify(schema, "seqrelay_checkpoints") + ` (
				id         text   PRIMARY KEY,
				seq        bigint NOT NULL,
				updated_at timestamptz NOT NULL DEFAULT now())`,
			`CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					PERFORM pg_notify('` + notifyChannel + `', TG_TABLE_SCHEMA);
					RETURN NULL;
				END $$`,
			`CREATE TRIGGER seqrelay_events_notify AFTER INSERT ON ` + ev + `
				FOR EACH STATEMENT EXECUTE FUNCTION ` + fn + `()`,
			`COMMENT ON TABLE ` + ev + ` IS ` + quoteLiteral("seqrelay event log: insert type, payload, metadata; seq is assigned after commit"),
		},
	}
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
