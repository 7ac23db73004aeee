package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog/postgres/pgtest"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/internal/verify"
)

// pgStore returns a postgres:// store URL on a fresh schema of the test's.
func pgStore(t *testing.T) string {
	base := pgtest.URL(t)
	return pgtest.WithParams(t, base, "search_path", pgtest.Schema(t, base))
}

// TestPostgresAppendRunPrune: append refuses a store without tables and
// creates them with --migrate; run delivers until interrupted, appends
// made meanwhile included; prune deletes what the dispatcher delivered.
func TestPostgresAppendRunPrune(t *testing.T) {
	store := pgStore(t)
	r := run(t, "", "append", "--store", store, "--type", "first")
	require.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "pass --migrate")
	assert.Len(t, strings.Split(strings.TrimSpace(r.err), "\n"), 1, r.err)

	r = run(t, "", "append", "--store", store, "--migrate", "--type", "order.created", "--payload", `{"id": 1}`, "--meta", "tenant=a")
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, "appended event 1\n", r.out)

	srv := natstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "--store", store, "--migrate", "--nats", srv.URL(), "--stream", "ORDERS",
			"--subjects", "orders.>", "--subject-prefix", "orders", "--checkpoint-interval", "50ms", "--id", "o1"},
			strings.NewReader(""), &out, &errb)
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "delivering from event 1") })
	assert.Contains(t, out.String(), "store:      postgres://postgres@127.0.0.1")

	var lines strings.Builder
	for i := range 50 {
		fmt.Fprintf(&lines, `{"type":"order.created","payload":{"n":%d}}`+"\n", i)
	}
	r = run(t, lines.String(), "append", "--store", store)
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, "appended 50 events: 2-51\n", r.out)

	nc := natstest.Connect(t, srv.URL())
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	waitFor(t, func() bool {
		rep, err := verify.Stream(context.Background(), js, "ORDERS")
		return err == nil && rep.Messages == 51
	})
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, errb.String())
	case <-time.After(time.Minute):
		t.Fatal("run did not stop on interrupt")
	}
	assert.Contains(t, out.String(), "stopped: acked 51, observed 51, checkpoint 51")
	rep, err := verify.Stream(context.Background(), js, "ORDERS")
	require.NoError(t, err)
	assert.True(t, rep.ExactlyOnce(1, 51), rep.String())

	r = run(t, "", "prune", "--store", store)
	require.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.out, "pruned 51 events from postgres://")
	r = run(t, "", "append", "--store", store, "--type", "after")
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, "appended event 52\n", r.out, "numbering survives pruning")
}

// TestPostgresStoreErrors: a bad URL, an unreachable server, a missing
// database or user give one line that says what to do, exit 1, and never
// the password.
func TestPostgresStoreErrors(t *testing.T) {
	base := pgtest.URL(t)
	withPassword := strings.Replace(base, "postgres@", "postgres:s3cr3tpw@", 1)
	for _, tc := range []struct {
		name  string
		store string
		want  string
	}{
		{"unreachable", strings.Replace(withPassword, "127.0.0.1:5432", "127.0.0.1:1", 1), "cannot reach PostgreSQL at 127.0.0.1:1"},
		{"missing database", strings.Replace(withPassword, "/test", "/no_such_db", 1), `database "no_such_db" does not exist`},
		{"unknown user", strings.Replace(withPassword, "postgres:s3cr3tpw@", "nobody_here:s3cr3tpw@", 1), `refused user "nobody_here"`},
		{"bad port", "postgres://postgres:s3cr3tpw@127.0.0.1:port/test", "is not valid"},
		{"password in the query", strings.Replace(base, "127.0.0.1:5432", "127.0.0.1:1", 1) + "&password=s3cr3tpw", "cannot reach PostgreSQL"},
	} {
		for _, cmd := range [][]string{
			{"run", "--nats-port", "0", "--data", t.TempDir()},
			{"append", "--type", "t"},
			{"prune"},
		} {
			t.Run(tc.name+"/"+cmd[0], func(t *testing.T) {
				r := run(t, "", append(cmd, "--store", tc.store)...)
				assert.Equal(t, 1, r.code, r.err)
				assert.Contains(t, r.err, tc.want)
				assert.NotContains(t, r.err+r.out, "s3cr3tpw")
				assert.Len(t, strings.Split(strings.TrimSpace(r.err), "\n"), 1, r.err)
				t.Log(strings.TrimSpace(r.err))
			})
		}
	}
}

// TestPruneSQLite: prune works on the default store too.
func TestPruneSQLite(t *testing.T) {
	store := filepath.Join(t.TempDir(), "events.db")
	r := run(t, "", "append", "--store", store, "--type", "a")
	require.Equal(t, 0, r.code, r.err)
	r = run(t, "", "prune", "--store", store)
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, "pruned 0 events from "+store+"\n", r.out)
	r = run(t, "", "prune", "--store", filepath.Join(t.TempDir(), "missing.db"))
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "does not exist")
}
