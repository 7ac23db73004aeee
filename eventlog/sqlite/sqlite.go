// Package sqlite is the embedded default event log: one SQLite file (pure Go
// driver, no cgo) in WAL mode, which several processes can use at once. An
// application, or `seqrelay append`, appends while a dispatcher reads.
//
// Table layout (schema version 1), for writers in other languages:
//
//	CREATE TABLE events (
//	    seq        INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
//	    type       TEXT    NOT NULL,
//	    payload    BLOB    NOT NULL,
//	    metadata   TEXT,                               -- JSON object of strings, or NULL
//	    created_at INTEGER NOT NULL                    -- Unix nanoseconds, UTC
//	);
//	CREATE TABLE checkpoints (
//	    id         TEXT PRIMARY KEY,                   -- dispatcher ID
//	    seq        INTEGER NOT NULL,
//	    updated_at INTEGER NOT NULL
//	);
//
// SQLite admits one writer at a time and assigns seq inside the write
// transaction, so sequence order is commit order: a reader never sees seq
// N+1 before N.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/seqrelay/seqrelay/eventlog"
)

// applicationID marks a file as a seqrelay event log ("SQRL").
const applicationID = 0x5351524c

// schemaVersion is stored in PRAGMA user_version.
const schemaVersion = 1

// ErrNotEventLog is returned by Open for a file that is not a seqrelay event log.
var ErrNotEventLog = errors.New("not a seqrelay event log")

// ErrMissing is returned by Open when the file does not exist and creation
// was not asked for.
var ErrMissing = errors.New("event log file does not exist")

// Log is the SQLite event log. It implements eventlog.Log.
type Log struct {
	path   string
	db     *sql.DB
	read   *sql.Stmt
	notify eventlog.Notifier
	closed atomic.Bool
	now    func() time.Time
}

var _ eventlog.Log = (*Log)(nil)

type options struct {
	create      bool
	busyTimeout time.Duration
}

// Option configures Open.
type Option func(*options)

// WithCreate makes Open create the file (and its directory) when missing.
func WithCreate() Option { return func(o *options) { o.create = true } }

// WithBusyTimeout sets how long a statement waits for another process's
// lock before failing (default 10s).
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// Open opens the event log at path. Without WithCreate a missing file is an
// error (ErrMissing), so that a mistyped path is not silently a new, empty log.
func Open(ctx context.Context, path string, opts ...Option) (*Log, error) {
	o := options{busyTimeout: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, errors.New("sqlite event log: the path is empty: give a file path such as ./events.db")
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !o.create:
		return nil, fmt.Errorf("open event log %s: %w (check the path, or create it by appending: seqrelay append --store %s)", path, ErrMissing, path)
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("open event log %s: create its directory: %w", path, err)
		}
	case err != nil:
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	case st.IsDir():
		return nil, fmt.Errorf("open event log %s: it is a directory: give a file path", path)
	default:
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("open event log %s: %w (the file must be readable and writable)", path, err)
		}
		f.Close()
	}

	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	l := &Log{path: path, db: db, now: time.Now}
	if err := l.init(ctx, o.create); err != nil {
		db.Close()
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	l.read, err = db.PrepareContext(ctx, `SELECT seq, type, payload, metadata, created_at FROM events WHERE seq > ? ORDER BY seq LIMIT ?`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	return l, nil
}

// Path returns the file the log is stored in.
func (l *Log) Path() string { return l.path }

func (l *Log) init(ctx context.Context, create bool) error {
	var appID, version int
	if err := l.db.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&appID); err != nil {
		if strings.Contains(err.Error(), "not a database") {
			return fmt.Errorf("%w: the file is not an SQLite database", ErrNotEventLog)
		}
		return err
	}
	if err := l.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	switch {
	case appID == applicationID && version == schemaVersion:
		return nil
	case appID == applicationID && version > schemaVersion:
		return fmt.Errorf("the log has schema version %d, newer than this seqrelay knows (%d): upgrade seqrelay", version, schemaVersion)
	case appID != 0:
		return fmt.Errorf("%w: the SQLite file belongs to another application (application_id %#x)", ErrNotEventLog, appID)
	}
	var tables int
	if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&tables); err != nil {
		return err
	}
	if tables > 0 {
		return fmt.Errorf("%w: the SQLite database has %d other objects and no seqrelay schema", ErrNotEventLog, tables)
	}
	if !create {
		return fmt.Errorf("%w: the SQLite database is empty", ErrNotEventLog)
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range []string{
		`CREATE TABLE events (
			seq        INTEGER PRIMARY KEY AUTOINCREMENT,
			type       TEXT    NOT NULL,
			payload    BLOB    NOT NULL,
			metadata   TEXT,
			created_at INTEGER NOT NULL)`,
		`CREATE TABLE checkpoints (
			id         TEXT PRIMARY KEY,
			seq        INTEGER NOT NULL,
			updated_at INTEGER NOT NULL)`,
		fmt.Sprintf(`PRAGMA application_id = %d`, applicationID),
		fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion),
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	return tx.Commit()
}

// Append implements eventlog.Log. All events commit in one transaction.
func (l *Log) Append(ctx context.Context, events ...eventlog.Event) ([]uint64, error) {
	if l.closed.Load() {
		return nil, eventlog.ErrClosed
	}
	if err := eventlog.ValidateAll(events); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, nil
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (type, payload, metadata, created_at) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	defer stmt.Close()
	now := l.now().UnixNano()
	seqs := make([]uint64, len(events))
	for i, e := range events {
		meta, err := encodeMetadata(e.Metadata)
		if err != nil {
			return nil, err
		}
		payload := e.Payload
		if payload == nil {
			payload = []byte{}
		}
		res, err := stmt.ExecContext(ctx, e.Type, payload, meta, now)
		if err != nil {
			return nil, fmt.Errorf("append: %w", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return nil, fmt.Errorf("append: %w", err)
		}
		seqs[i] = uint64(id)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("append: commit: %w", err)
	}
	l.notify.Notify()
	return seqs, nil
}

// Read implements eventlog.Log.
func (l *Log) Read(ctx context.Context, after uint64, limit int) ([]eventlog.Event, error) {
	if l.closed.Load() {
		return nil, eventlog.ErrClosed
	}
	if limit <= 0 {
		return nil, nil
	}
	rows, err := l.read.QueryContext(ctx, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("read after %d: %w", after, err)
	}
	defer rows.Close()
	out := make([]eventlog.Event, 0, min(limit, 1024))
	for rows.Next() {
		var (
			e       eventlog.Event
			seq     int64
			meta    sql.NullString
			created int64
		)
		if err := rows.Scan(&seq, &e.Type, &e.Payload, &meta, &created); err != nil {
			return nil, fmt.Errorf("read after %d: %w", after, err)
		}
		e.Seq = uint64(seq)
		e.Time = time.Unix(0, created).UTC()
		if meta.Valid && meta.String != "" {
			if err := json.Unmarshal([]byte(meta.String), &e.Metadata); err != nil {
				return nil, fmt.Errorf("read event %d: metadata is not a JSON object of strings: %w", seq, err)
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read after %d: %w", after, err)
	}
	return out, nil
}

// Appended implements eventlog.Log. It sees appends made through this Log
// value; appends by other processes are found by the reader's polling.
func (l *Log) Appended() <-chan struct{} { return l.notify.Wait() }

// Head implements eventlog.Log.
func (l *Log) Head(ctx context.Context) (uint64, error) {
	if l.closed.Load() {
		return 0, eventlog.ErrClosed
	}
	var head sql.NullInt64
	if err := l.db.QueryRowContext(ctx, `SELECT max(seq) FROM events`).Scan(&head); err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	return uint64(head.Int64), nil
}

// LastCheckpoint implements eventlog.Log.
func (l *Log) LastCheckpoint(ctx context.Context, id string) (uint64, error) {
	if err := eventlog.ValidateReaderID(id); err != nil {
		return 0, err
	}
	if l.closed.Load() {
		return 0, eventlog.ErrClosed
	}
	var seq int64
	err := l.db.QueryRowContext(ctx, `SELECT seq FROM checkpoints WHERE id = ?`, id).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load checkpoint %q: %w", id, err)
	}
	return uint64(seq), nil
}

// Checkpoint implements eventlog.Log.
func (l *Log) Checkpoint(ctx context.Context, id string, seq uint64) error {
	if err := eventlog.ValidateReaderID(id); err != nil {
		return err
	}
	if l.closed.Load() {
		return eventlog.ErrClosed
	}
	_, err := l.db.ExecContext(ctx, `INSERT INTO checkpoints (id, seq, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq), updated_at = excluded.updated_at`,
		id, int64(seq), l.now().UnixNano())
	if err != nil {
		return fmt.Errorf("store checkpoint %q at %d: %w", id, seq, err)
	}
	return nil
}

// Close implements eventlog.Log.
func (l *Log) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.read.Close()
	return l.db.Close()
}

func encodeMetadata(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("append: encode metadata: %w", err)
	}
	return string(b), nil
}
