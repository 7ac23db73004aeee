package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog/postgres/pgtest"
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

	out := runDelivers(t, store, "--migrate")
	assert.Contains(t, out, "store:      postgres://postgres@127.0.0.1")

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
