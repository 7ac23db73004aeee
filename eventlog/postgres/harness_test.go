package postgres_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/postgres"
	"github.com/seqrelay/seqrelay/eventlog/postgres/pgtest"
	"github.com/seqrelay/seqrelay/internal/natsrv"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/publish"
)

const stream = "EVENTS"

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
	opts = append([]postgres.Option{postgres.WithMigrate(), postgres.WithLogger(testLogger(d.t))}, opts...)
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

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

// testConfig is fast enough for tests and slow enough for a loaded machine.
func testConfig() dispatcher.Config {
	return dispatcher.Config{
		CheckpointInterval: 20 * time.Millisecond,
		CheckpointTimeout:  5 * time.Second,
		StallTimeout:       5 * time.Second,
		StallCheckInterval: 50 * time.Millisecond,
		ProcessInterval:    5 * time.Millisecond,
		SeekTimeout:        5 * time.Second,
		BaseRetryInterval:  20 * time.Millisecond,
		MaxRetryInterval:   200 * time.Millisecond,
	}
}

// relay is an embedded NATS server with a stream, and the test's own
// connection for reading it back.
type relay struct {
	t   *testing.T
	srv *natsrv.Server
	nc  *nats.Conn
}

func newRelay(t *testing.T) *relay {
	t.Helper()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL())
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, _, err = publish.EnsureStream(ctx(t), js, publish.StreamConfig{Name: stream, Subjects: publish.DefaultSubjects})
	require.NoError(t, err)
	return &relay{t: t, srv: srv, nc: nc}
}

// dispatcher starts a dispatcher with ID id over log; the test stops it.
func (r *relay) dispatcher(log eventlog.Log, id string, cfg dispatcher.Config) *dispatcher.Dispatcher {
	r.t.Helper()
	nc := natstest.Connect(r.t, r.srv.URL())
	pub, err := publish.NewJetStream(nc, stream)
	require.NoError(r.t, err)
	w, err := eventlog.NewWatcher(log, id)
	require.NoError(r.t, err)
	creator, err := dispatcher.NewSubjectCreator(publish.DefaultSubjectPrefix)
	require.NoError(r.t, err)
	d, err := dispatcher.New(pub, w, creator, cfg, dispatcher.WithLogger(testLogger(r.t)))
	require.NoError(r.t, err)
	require.NoError(r.t, d.Start(ctx(r.t)))
	r.t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Stop(c)
	})
	return d
}

func (r *relay) messages() []natstest.Message { return natstest.ReadStream(r.t, r.nc, stream) }

func (r *relay) js() jetstream.JetStream {
	js, err := jetstream.New(r.nc)
	require.NoError(r.t, err)
	return js
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, time.Minute, 5*time.Millisecond, "waiting for %s", what)
}

func waitAcked(t *testing.T, d *dispatcher.Dispatcher, seq uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("acknowledgement of event %d", seq), func() bool { return d.State().LastAckedSeqNum >= seq })
}

// testLogger sends logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
