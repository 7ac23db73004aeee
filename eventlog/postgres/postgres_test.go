package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/logtest"
	"github.com/seqrelay/seqrelay/eventlog/postgres"
	"github.com/seqrelay/seqrelay/eventlog/postgres/pgtest"
)

func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) eventlog.Log {
		l, err := postgres.Open(ctx(t), newDB(t).url, postgres.WithMigrate())
		require.NoError(t, err)
		return l
	})
}

// appender appends inside a transaction of the application's and commits
// or rolls back; one per driver.
type appender struct {
	name   string
	append func(t *testing.T, d *db, l *postgres.Log, commit bool, events ...eventlog.Event)
}

func appenders() []appender {
	return []appender{
		{"pgx", func(t *testing.T, d *db, l *postgres.Log, commit bool, events ...eventlog.Event) {
			tx, err := d.pool().Begin(ctx(t))
			require.NoError(t, err)
			_, err = tx.Exec(ctx(t), `CREATE TABLE IF NOT EXISTS orders (id int)`) // the business change
			require.NoError(t, err)
			require.NoError(t, l.AppendTx(ctx(t), tx, events...))
			if commit {
				require.NoError(t, tx.Commit(ctx(t)))
			} else {
				require.NoError(t, tx.Rollback(ctx(t)))
			}
		}},
		{"database/sql", func(t *testing.T, d *db, l *postgres.Log, commit bool, events ...eventlog.Event) {
			tx, err := d.sqlDB().BeginTx(ctx(t), nil)
			require.NoError(t, err)
			_, err = tx.ExecContext(ctx(t), `CREATE TABLE IF NOT EXISTS orders (id int)`)
			require.NoError(t, err)
			require.NoError(t, l.AppendSQLTx(ctx(t), tx, events...))
			if commit {
				require.NoError(t, tx.Commit())
			} else {
				require.NoError(t, tx.Rollback())
			}
		}},
	}
}

// TestAppendInTransaction: events appended in a transaction that commits
// are read in order with their fields; those of one that rolls back are
// never read, and leave no gap in the numbering.
func TestAppendInTransaction(t *testing.T) {
	for _, a := range appenders() {
		t.Run(a.name, func(t *testing.T) {
			d := newDB(t)
			l := d.open()
			a.append(t, d, l, true,
				eventlog.Event{Type: "order.created", Payload: []byte(`{"id":1}`), Metadata: map[string]string{"tenant": "a"}},
				eventlog.Event{Type: "order.paid"})
			a.append(t, d, l, false, eventlog.Event{Type: "order.rolled-back"})
			a.append(t, d, l, true, eventlog.Event{Type: "order.shipped", Payload: []byte("box")})
			a.append(t, d, l, false, eventlog.Event{Type: "order.rolled-back"}, eventlog.Event{Type: "order.rolled-back"})

			evs, err := l.Read(ctx(t), 0, 10)
			require.NoError(t, err)
			require.Len(t, evs, 3)
			for i, want := range []string{"order.created", "order.paid", "order.shipped"} {
				assert.EqualValues(t, i+1, evs[i].Seq)
				assert.Equal(t, want, evs[i].Type)
			}
			assert.Equal(t, `{"id":1}`, string(evs[0].Payload))
			assert.Equal(t, map[string]string{"tenant": "a"}, evs[0].Metadata)
			assert.Empty(t, evs[1].Payload)
			assert.Nil(t, evs[1].Metadata)
			assert.Equal(t, "box", string(evs[2].Payload))

			head, err := l.Head(ctx(t))
			require.NoError(t, err)
			assert.EqualValues(t, 3, head)
			seqs, err := l.Append(ctx(t), eventlog.Event{Type: "after"})
			require.NoError(t, err)
			assert.Equal(t, []uint64{4}, seqs, "numbering continues without a gap")
		})
	}
}

// TestOutOfOrderCommit: transaction A appends first but commits last; B and
// C commit meanwhile. The reader gets B and C as 1 and 2, then A as 3:
// nothing is skipped, whatever the order of the internal ids.
func TestOutOfOrderCommit(t *testing.T) {
	d := newDB(t)
	l := d.open()
	r := newRelay(t)
	disp := r.dispatcher(l, "orders", testConfig())
	pool := d.pool()
	begin := func(payload string) pgx.Tx {
		tx, err := pool.Begin(ctx(t))
		require.NoError(t, err)
		require.NoError(t, l.AppendTx(ctx(t), tx, eventlog.Event{Type: "t", Payload: []byte(payload)}))
		return tx
	}
	a := begin("A") // the lowest id, held open
	b := begin("B")
	c := begin("C")
	require.NoError(t, b.Commit(ctx(t)))
	require.NoError(t, c.Commit(ctx(t)))

	waitFor(t, "B and C", func() bool {
		evs, err := l.Read(ctx(t), 0, 10)
		require.NoError(t, err)
		return len(evs) == 2
	})
	evs, err := l.Read(ctx(t), 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"B", "C"}, payloads(evs))
	assert.Equal(t, []uint64{1, 2}, seqsOf(evs))
	waitAcked(t, disp, 2)

	require.NoError(t, a.Commit(ctx(t)))
	waitFor(t, "A", func() bool {
		evs, err := l.Read(ctx(t), 2, 10)
		require.NoError(t, err)
		return len(evs) == 1
	})
	evs, err = l.Read(ctx(t), 0, 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"B", "C", "A"}, payloads(evs))
	assert.Equal(t, []uint64{1, 2, 3}, seqsOf(evs))

	waitAcked(t, disp, 3)
	msgs := r.messages()
	require.Len(t, msgs, 3)
	for i, want := range []string{"B", "C", "A"} {
		assert.EqualValues(t, i+1, msgs[i].Seq)
		assert.Equal(t, want, string(msgs[i].Data))
	}
}

func payloads(evs []eventlog.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e.Payload)
	}
	return out
}

func seqsOf(evs []eventlog.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

// TestPruneNeverPassesTheSlowestCheckpoint: Prune deletes at or below the
// lowest checkpoint only, nothing without checkpoints, never an event that
// waits for its number; numbering goes on after everything is pruned.
func TestPruneNeverPassesTheSlowestCheckpoint(t *testing.T) {
	d := newDB(t)
	l := d.open()
	c := ctx(t)
	batch := make([]eventlog.Event, 10)
	for i := range batch {
		batch[i] = eventlog.Event{Type: "t", Payload: fmt.Appendf(nil, "%d", i+1)}
	}
	_, err := l.Append(c, batch...)
	require.NoError(t, err)

	first := func() uint64 {
		evs, err := l.Read(c, 0, 100)
		require.NoError(t, err)
		if len(evs) == 0 {
			return 0
		}
		return evs[0].Seq
	}
	for _, step := range []struct {
		name      string
		setup     func()
		deleted   int64
		firstLeft uint64
	}{
		{"no checkpoint: nothing", func() {}, 0, 1},
		{"slowest at 3", func() {
			require.NoError(t, l.Checkpoint(c, "fast", 7))
			require.NoError(t, l.Checkpoint(c, "slow", 3))
		}, 3, 4},
		{"again: nothing more", func() {}, 0, 4},
		{"slow passes fast: fast at 7 is the slowest", func() { require.NoError(t, l.Checkpoint(c, "slow", 8)) }, 4, 8},
		{"a lower checkpoint is ignored", func() { require.NoError(t, l.Checkpoint(c, "slow", 1)) }, 0, 8},
		{"both at the end: everything", func() {
			require.NoError(t, l.Checkpoint(c, "fast", 10))
			require.NoError(t, l.Checkpoint(c, "slow", 10))
		}, 3, 0},
	} {
		step.setup()
		n, err := l.Prune(c)
		require.NoError(t, err, step.name)
		assert.Equal(t, step.deleted, n, step.name)
		assert.Equal(t, step.firstLeft, first(), step.name)
	}

	// An event committed but not yet numbered is never pruned, even with a
	// checkpoint beyond everything (which no dispatcher can store).
	require.NoError(t, l.Checkpoint(c, "slow", 1000))
	require.NoError(t, l.Checkpoint(c, "fast", 1000))
	pool := d.pool()
	tx, err := pool.Begin(c)
	require.NoError(t, err)
	require.NoError(t, l.AppendTx(c, tx, eventlog.Event{Type: "late"}))
	require.NoError(t, tx.Commit(c))
	n, err := l.Prune(c)
	require.NoError(t, err)
	assert.Zero(t, n)

	head, err := l.Head(c)
	require.NoError(t, err)
	assert.EqualValues(t, 11, head, "pruning does not reset numbering")
	evs, err := l.Read(c, 10, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, "late", evs[0].Type)
}

// TestWritersInOtherLanguages: plain SQL inserts, as the package doc shows,
// are read like appended events; bad rows are refused at insert.
func TestWritersInOtherLanguages(t *testing.T) {
	d := newDB(t)
	l := d.open()
	pool := d.pool()
	_, err := pool.Exec(ctx(t), `INSERT INTO seqrelay_events (type, payload, metadata) VALUES ('order.created', convert_to('{"id": 1}', 'UTF8'), '{"tenant": "a"}')`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx(t), `INSERT INTO seqrelay_events (type) VALUES ('order.paid')`)
	require.NoError(t, err)
	evs, err := l.Read(ctx(t), 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, `{"id": 1}`, string(evs[0].Payload))
	assert.Equal(t, map[string]string{"tenant": "a"}, evs[0].Metadata)
	assert.Equal(t, "order.paid", evs[1].Type)
	assert.Empty(t, evs[1].Payload)

	for _, bad := range []string{
		`INSERT INTO seqrelay_events (type) VALUES ('')`,
		`INSERT INTO seqrelay_events (type) VALUES (repeat('x', 257))`,
		`INSERT INTO seqrelay_events (type, metadata) VALUES ('t', '{"n": 1}')`,
		`INSERT INTO seqrelay_events (type, metadata) VALUES ('t', '["a"]')`,
		`INSERT INTO seqrelay_events (type, metadata) VALUES ('t', '{"": "v"}')`,
		`INSERT INTO seqrelay_events (id, type) VALUES (1, 't')`,
	} {
		_, err := pool.Exec(ctx(t), bad)
		assert.Error(t, err, bad)
	}
}

// TestOpen covers the schema lifecycle and the errors of Open: each is one
// line that says what to do, and none shows the password.
func TestOpen(t *testing.T) {
	base := pgtest.URL(t)
	d := newDB(t)

	_, err := postgres.Open(ctx(t), d.url)
	require.ErrorIs(t, err, postgres.ErrNotMigrated)
	assert.Contains(t, err.Error(), "--migrate")

	l := d.open() // WithMigrate creates the schema
	assert.Equal(t, d.schema, l.Schema(), "the schema comes from the URL's search_path")
	_, err = l.Append(ctx(t), eventlog.Event{Type: "kept"})
	require.NoError(t, err)
	require.NoError(t, l.Migrate(ctx(t)), "Migrate is idempotent")
	require.NoError(t, l.Close())

	l, err = postgres.Open(ctx(t), base, postgres.WithSchema(d.schema)) // exists now
	require.NoError(t, err)
	head, err := l.Head(ctx(t))
	require.NoError(t, err)
	assert.EqualValues(t, 1, head)
	require.NoError(t, l.Close())

	// A newer schema than this build knows is refused.
	d.admin(`INSERT INTO ` + pgx.Identifier{d.schema, "seqrelay_schema"}.Sanitize() + ` (version) VALUES (99)`)
	_, err = postgres.Open(ctx(t), d.url)
	require.ErrorContains(t, err, "upgrade seqrelay")

	withPassword := func(u string) string {
		return strings.Replace(u, "postgres@", "postgres:s3cr3tpw@", 1) + "&password=s3cr3tpw"
	}
	for _, tc := range []struct {
		name string
		url  string
		want string
		code string
	}{
		{"unreachable", withPassword(strings.Replace(base, "127.0.0.1:5432", "127.0.0.1:1", 1)), "cannot reach PostgreSQL at 127.0.0.1:1", ""},
		{"unknown host", withPassword(strings.Replace(base, "127.0.0.1", "no-such-host.invalid", 1)), "check the host", ""},
		{"missing database", withPassword(strings.Replace(base, "/test", "/no_such_db", 1)), `database "no_such_db" does not exist`, "3D000"},
		{"unknown user", strings.Replace(base, "postgres@", "nobody_here:s3cr3tpw@", 1), `refused user "nobody_here"`, "28000"},
		{"not a URL", "postgres://postgres:s3cr3tpw@127.0.0.1:notaport/test", "is not valid", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := postgres.Open(ctx(t), tc.url)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "s3cr3tpw")
			assert.NotContains(t, err.Error(), "\n")
			if tc.code != "" {
				var pgErr *pgconn.PgError
				require.True(t, errors.As(err, &pgErr), "the driver's error is wrapped")
				assert.Equal(t, tc.code, pgErr.Code)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:secret@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgres://u@h/db?password=secret&sslmode=disable", "postgres://u@h/db?password=xxxxx&sslmode=disable"},
		{"postgresql://u:p%40ss@h/db", "postgresql://u:xxxxx@h/db"},
		{"postgres://u:secret@h:port/db", "postgres://xxxxx@h:port/db"},
		{"host=h user=u password=secret dbname=db", "host=h user=u password=xxxxx dbname=db"},
		{"host=h password='se cret' sslpassword=x", "host=h password=xxxxx sslpassword=xxxxx"},
		{"postgres://h/db", "postgres://h/db"},
	} {
		assert.Equal(t, tc.want, postgres.Redact(tc.in), tc.in)
	}
}

// TestConcurrentMigrate: several processes starting at once with
// WithMigrate all succeed.
func TestConcurrentMigrate(t *testing.T) {
	d := newDB(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			l, err := postgres.Open(context.Background(), d.url, postgres.WithMigrate())
			if err == nil {
				l.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		require.NoError(t, <-errs)
	}
}
