package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/postgres"
	"github.com/seqrelay/seqrelay/eventlog/postgres/pgtest"
	"github.com/seqrelay/seqrelay/internal/dispatchertest"
	"github.com/seqrelay/seqrelay/internal/natsrv"
	"github.com/seqrelay/seqrelay/internal/natstest"
)

const stream = dispatchertest.Stream

// db is one test's database: a fresh schema, and a URL whose connections
// carry an application_name unique to the test.
type db struct {
	t      *testing.T
	url    string // with search_path and application_name
	schema string
	app    string
}

func newDB(t *testing.T) *db {
	t.Helper()
	base := pgtest.URL(t)
	schema := pgtest.Schema(t, base)
	app := pgtest.AppName(schema)
	return &db{t: t, url: pgtest.WithParams(t, base, "search_path", schema, "application_name", app), schema: schema, app: app}
}

// open opens a log on the test's schema, creating the tables.
func (d *db) open(opts ...postgres.Option) *postgres.Log {
	d.t.Helper()
	opts = append([]postgres.Option{postgres.WithMigrate(), postgres.WithLogger(dispatchertest.Logger(d.t))}, opts...)
	l, err := postgres.Open(ctx(d.t), d.url, opts...)
	require.NoError(d.t, err)
	d.t.Cleanup(func() { l.Close() })
	return l
}

// appURL is the URL of the application's own connections, which killConns
// spares.
func (d *db) appURL() string {
	return pgtest.WithParams(d.t, d.url, "application_name", d.app+"-app")
}

// pool is a pool of the application's own, for business transactions.
func (d *db) pool() *pgxpool.Pool {
	d.t.Helper()
	p, err := pgxpool.New(ctx(d.t), d.appURL())
	require.NoError(d.t, err)
	d.t.Cleanup(p.Close)
	return p
}

// sqlDB is a database/sql handle on the pgx stdlib driver.
func (d *db) sqlDB() *sql.DB {
	d.t.Helper()
	s, err := sql.Open("pgx", d.appURL())
	require.NoError(d.t, err)
	d.t.Cleanup(func() { s.Close() })
	return s
}

// admin runs one statement on a connection of its own (not the test's
// application_name, so that it survives killConns).
func (d *db) admin(sql string, args ...any) {
	d.t.Helper()
	conn, err := pgx.Connect(ctx(d.t), pgtest.URL(d.t))
	require.NoError(d.t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx(d.t), sql, args...)
	require.NoError(d.t, err)
}

// killConns terminates every connection of this test (pool and listener)
// and returns how many it terminated.
func (d *db) killConns() int {
	d.t.Helper()
	conn, err := pgx.Connect(ctx(d.t), pgtest.URL(d.t))
	require.NoError(d.t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(d.t, conn.QueryRow(ctx(d.t), `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1) k`, d.app).Scan(&n))
	return n
}

// listening reports whether the test has a connection LISTENing.
func (d *db) listening() bool {
	conn, err := pgx.Connect(ctx(d.t), pgtest.URL(d.t))
	if err != nil {
		return false
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx(d.t), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %'`, d.app).Scan(&n)
	return err == nil && n > 0
}

func ctx(t testing.TB) context.Context { return dispatchertest.Context(t) }

func testConfig() dispatcher.Config { return dispatchertest.Config() }

// relay is the target of delivery tests: an embedded NATS server with the
// stream (see dispatchertest.Target).
type relay struct{ *dispatchertest.Target }

func newRelay(t *testing.T) *relay {
	t.Helper()
	return &relay{dispatchertest.NewTarget(t, natsrv.Options{})}
}

// dispatcher starts a dispatcher with ID id over log; the test stops it.
func (r *relay) dispatcher(log eventlog.Log, id string, cfg dispatcher.Config) *dispatcher.Dispatcher {
	r.T.Helper()
	d := r.Dispatcher(log, dispatchertest.Options{ID: id, Config: cfg})
	require.NoError(r.T, d.Start(ctx(r.T)))
	return d
}

func (r *relay) messages() []natstest.Message { return r.Messages() }

func (r *relay) js() jetstream.JetStream { return r.JS() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	dispatchertest.WaitFor(t, what, cond)
}

func waitAcked(t *testing.T, d *dispatcher.Dispatcher, seq uint64) {
	t.Helper()
	dispatchertest.WaitAcked(t, d, seq)
}
