package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seqrelay/seqrelay/eventlog"
)

// DefaultSchema is the schema used when neither WithSchema nor the URL's
// search_path names one.
const DefaultSchema = "public"

// ErrNotMigrated is returned by Open when the seqrelay tables are missing or
// older than this package, and WithMigrate was not given.
var ErrNotMigrated = errors.New("the seqrelay tables are missing or out of date")

// Log is the PostgreSQL event log. It implements eventlog.Log and is safe
// for concurrent use.
type Log struct {
	pool     *pgxpool.Pool
	schema   string
	display  string // the connection string, password redacted
	q        queries
	lockKey  int32 // second key of the sequencer's advisory lock
	notify   eventlog.Notifier
	closed   atomic.Bool
	logger   *slog.Logger
	listener *listener
}

var _ eventlog.Log = (*Log)(nil)

type options struct {
	schema   string
	migrate  bool
	logger   *slog.Logger
	maxConns int32
}

// Option configures Open.
type Option func(*options)

// WithSchema puts the tables in the named PostgreSQL schema (default: the
// first schema of the URL's search_path parameter, else public). Migrate
// creates the schema when missing.
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithMigrate makes Open create or upgrade the tables (see Migrate).
func WithMigrate() Option { return func(o *options) { o.migrate = true } }

// WithLogger sets where the log reports connection trouble of its listener
// (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMaxConns bounds the connection pool (default: the URL's pool_max_conns,
// else pgxpool's default of max(4, number of CPUs)). The listener uses one
// more connection.
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// Open connects to PostgreSQL and opens the event log. connString is a URL
// (postgres://user:password@host:5432/db?sslmode=disable) or a key=value
// string, as pgx accepts. Without WithMigrate, missing tables are an error
// (ErrNotMigrated), so that a mistyped URL or schema is not silently a new,
// empty log. Errors never contain the password.
func Open(ctx context.Context, connString string, opts ...Option) (*Log, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	display := Redact(connString)
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("open event log: the PostgreSQL URL %s is not valid: %s (want postgres://user:password@host:5432/database)", display, scrub(parseErrorText(err), connString))
	}
	if o.schema == "" {
		o.schema = schemaFromSearchPath(cfg.ConnConfig.RuntimeParams["search_path"])
	}
	if err := validateSchema(o.schema); err != nil {
		return nil, fmt.Errorf("open event log at %s: %w", display, err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "seqrelay"
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open event log: %s", scrub(err.Error(), connString))
	}
	l := &Log{
		pool:    pool,
		schema:  o.schema,
		display: display,
		q:       newQueries(o.schema),
		lockKey: lockKey(o.schema),
		logger:  o.logger.With("store", "postgres", "schema", o.schema),
	}
	if err := l.open(ctx, o.migrate, connString); err != nil {
		pool.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) open(ctx context.Context, migrate bool, connString string) error {
	if err := l.pool.Ping(ctx); err != nil {
		return connectError(l.display, l.pool.Config().ConnConfig, connString, err)
	}
	if migrate {
		if err := l.Migrate(ctx); err != nil {
			return err
		}
	} else if err := l.checkSchema(ctx); err != nil {
		return err
	}
	lst, err := startListener(ctx, l.pool.Config().ConnConfig, l.schema, &l.notify, l.logger)
	if err != nil {
		return fmt.Errorf("open event log at %s: listen for appends: %s", l.display, scrub(err.Error(), connString))
	}
	l.listener = lst
	return nil
}

// Schema returns the PostgreSQL schema the tables live in.
func (l *Log) Schema() string { return l.schema }

// String describes the log: its URL with the password redacted, and schema.
func (l *Log) String() string { return fmt.Sprintf("%s (schema %s)", l.display, l.schema) }

// Pool returns the connection pool of the log, for applications that want to
// run their business transactions (and AppendTx) on it.
func (l *Log) Pool() *pgxpool.Pool { return l.pool }

// checkSchema verifies that the tables exist at the current version.
func (l *Log) checkSchema(ctx context.Context) error {
	v, err := l.version(ctx, l.pool)
	if err != nil {
		return fmt.Errorf("open event log at %s: read the schema version: %w", l.display, err)
	}
	switch {
	case v == 0:
		return fmt.Errorf("open event log at %s: %w: schema %q has no seqrelay tables; create them with Migrate or WithMigrate (seqrelay commands: pass --migrate)", l.display, ErrNotMigrated, l.schema)
	case v < schemaVersion:
		return fmt.Errorf("open event log at %s: %w: schema %q has version %d, this seqrelay needs %d; upgrade with Migrate or WithMigrate (seqrelay commands: pass --migrate)", l.display, ErrNotMigrated, l.schema, v, schemaVersion)
	case v > schemaVersion:
		return fmt.Errorf("open event log at %s: schema %q has version %d, newer than this seqrelay knows (%d): upgrade seqrelay", l.display, l.schema, v, schemaVersion)
	}
	return nil
}

// querier is what both a pool and a transaction offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// version returns the schema version, 0 when the tables do not exist.
func (l *Log) version(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, l.q.versionTable).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+l.q.versionTable).Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// Migrate creates the schema and tables, or upgrades them to the version
// this package knows. It is idempotent and safe to run from several
// processes at once (it takes the sequencer's advisory lock).
func (l *Log) Migrate(ctx context.Context) error {
	if l.closed.Load() {
		return eventlog.ErrClosed
	}
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockSpace, l.lockKey); err != nil {
			return err
		}
		v, err := l.version(ctx, tx)
		if err != nil {
			return err
		}
		if v > schemaVersion {
			return fmt.Errorf("schema %q has version %d, newer than this seqrelay knows (%d): upgrade seqrelay", l.schema, v, schemaVersion)
		}
		for next := v + 1; next <= schemaVersion; next++ {
			for _, stmt := range migrations(l.schema)[next-1] {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("migrate to version %d: %w", next, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+l.q.versionTable+` (version) VALUES ($1)`, next); err != nil {
				return fmt.Errorf("migrate to version %d: %w", next, err)
			}
			l.logger.Info("migrated the event log schema", "version", next)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate event log at %s: %w", l.display, err)
	}
	return nil
}

// Close stops the listener and closes the pool. It waits for queries in
// progress.
func (l *Log) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	if l.listener != nil {
		l.listener.stop()
	}
	l.pool.Close()
	return nil
}

// schemaFromSearchPath returns the first schema of a search_path value,
// skipping "$user", or DefaultSchema.
func schemaFromSearchPath(sp string) string {
	for part := range strings.SplitSeq(sp, ",") {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, `"`) && strings.HasSuffix(part, `"`) && len(part) >= 2 {
			part = strings.ReplaceAll(part[1:len(part)-1], `""`, `"`)
		} else {
			part = strings.ToLower(part)
		}
		if part != "" && part != "$user" {
			return part
		}
	}
	return DefaultSchema
}

func validateSchema(s string) error {
	switch {
	case s == "":
		return errors.New("the schema name is empty")
	case len(s) > 63:
		return fmt.Errorf("schema name %q is %d bytes, more than PostgreSQL's 63", s, len(s))
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("schema name %q contains a NUL byte", s)
	}
	return nil
}
