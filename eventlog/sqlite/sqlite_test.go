package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/logtest"
	"github.com/seqrelay/seqrelay/eventlog/sqlite"
)

func openNew(t *testing.T) *sqlite.Log {
	t.Helper()
	l, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), sqlite.WithCreate())
	require.NoError(t, err)
	return l
}

func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) eventlog.Log { return openNew(t) })
}

func TestReopenKeepsEventsAndCheckpoints(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "events.db")
	l, err := sqlite.Open(ctx, path, sqlite.WithCreate())
	require.NoError(t, err)
	_, err = l.Append(ctx, eventlog.Event{Type: "a"}, eventlog.Event{Type: "b"})
	require.NoError(t, err)
	require.NoError(t, l.Checkpoint(ctx, "d", 1))
	require.NoError(t, l.Close())

	l, err = sqlite.Open(ctx, path) // exists now: no WithCreate needed
	require.NoError(t, err)
	defer l.Close()
	evs, err := l.Read(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	cp, err := l.LastCheckpoint(ctx, "d")
	require.NoError(t, err)
	assert.EqualValues(t, 1, cp)
}

// Sequence numbers are never reused, even after the newest rows are deleted.
func TestSeqNeverReused(t *testing.T) {
	ctx := context.Background()
	l := openNew(t)
	defer l.Close()
	seqs, err := l.Append(ctx, eventlog.Event{Type: "a"}, eventlog.Event{Type: "b"})
	require.NoError(t, err)
	raw := rawDB(t, l.Path())
	_, err = raw.ExecContext(ctx, `DELETE FROM events`)
	require.NoError(t, err)
	more, err := l.Append(ctx, eventlog.Event{Type: "c"})
	require.NoError(t, err)
	assert.Greater(t, more[0], seqs[1])
}

func TestOpenBadFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	_, err := sqlite.Open(ctx, filepath.Join(dir, "missing.db"))
	require.ErrorIs(t, err, sqlite.ErrMissing)
	assert.Contains(t, err.Error(), "seqrelay append --store")
	_, statErr := os.Stat(filepath.Join(dir, "missing.db"))
	assert.ErrorIs(t, statErr, os.ErrNotExist, "a failed open must not create the file")

	_, err = sqlite.Open(ctx, "")
	require.ErrorContains(t, err, "path is empty")

	_, err = sqlite.Open(ctx, dir)
	require.ErrorContains(t, err, "is a directory")

	text := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte("this is not a database, just some text that is long enough to be a header............................................................"), 0o644))
	_, err = sqlite.Open(ctx, text, sqlite.WithCreate())
	require.ErrorIs(t, err, sqlite.ErrNotEventLog)

	other := filepath.Join(dir, "other.db")
	db := rawDB(t, other)
	_, err = db.ExecContext(ctx, `CREATE TABLE users (id INTEGER)`)
	require.NoError(t, err)
	_, err = sqlite.Open(ctx, other, sqlite.WithCreate())
	require.ErrorIs(t, err, sqlite.ErrNotEventLog)
	assert.Contains(t, err.Error(), "no seqrelay schema")

	if os.Geteuid() != 0 { // root reads any file
		locked := filepath.Join(dir, "locked.db")
		l, err := sqlite.Open(ctx, locked, sqlite.WithCreate())
		require.NoError(t, err)
		l.Close()
		require.NoError(t, os.Chmod(locked, 0))
		_, err = sqlite.Open(ctx, locked)
		require.ErrorContains(t, err, "readable and writable")
	}
}

// TestTwoConnectionsAppendWhileOneReads uses three Log values on one file, as
// separate processes would: two append, one follows. The reader polls (it
// gets no in-process notification from the others) and must see every event
// once, in order.
func TestTwoConnectionsAppendWhileOneReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "events.db")
	reader, err := sqlite.Open(ctx, path, sqlite.WithCreate())
	require.NoError(t, err)
	defer reader.Close()

	const perWriter = 500
	errs := make(chan error, 2)
	for w := range 2 {
		go func() {
			l, err := sqlite.Open(ctx, path)
			if err != nil {
				errs <- err
				return
			}
			defer l.Close()
			for i := range perWriter {
				if _, err := l.Append(ctx, eventlog.Event{Type: "w", Payload: fmt.Appendf(nil, "%d-%d", w, i)}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	assertFollows(ctx, t, reader, 2*perWriter, errs)
}

// TestChildProcessAppends runs the appender in a separate OS process.
func TestChildProcessAppends(t *testing.T) {
	if path := os.Getenv("SEQRELAY_TEST_APPEND_TO"); path != "" {
		appendFromChild(path)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "events.db")
	reader, err := sqlite.Open(ctx, path, sqlite.WithCreate())
	require.NoError(t, err)
	defer reader.Close()

	const n = 400
	errs := make(chan error, 2)
	for range 2 {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestChildProcessAppends$")
		cmd.Env = append(os.Environ(), "SEQRELAY_TEST_APPEND_TO="+path, "SEQRELAY_TEST_APPEND_N="+strconv.Itoa(n/2))
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		go func() { errs <- cmd.Wait() }()
	}
	assertFollows(ctx, t, reader, n, errs)
}

func appendFromChild(path string) {
	n, _ := strconv.Atoi(os.Getenv("SEQRELAY_TEST_APPEND_N"))
	ctx := context.Background()
	l, err := sqlite.Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := range n {
		if _, err := l.Append(ctx, eventlog.Event{Type: "child", Payload: fmt.Appendf(nil, "%d-%d", os.Getpid(), i)}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
	}
	l.Close()
}

// assertFollows reads l until want events arrived, checking order and
// uniqueness, and that every writer reported success.
func assertFollows(ctx context.Context, t *testing.T, l eventlog.Log, want int, errs <-chan error) {
	t.Helper()
	seen := map[string]bool{}
	var last uint64
	writers := cap(errs)
	for len(seen) < want || writers > 0 {
		evs, err := l.Read(ctx, last, 100)
		require.NoError(t, err)
		for _, e := range evs {
			require.Greater(t, e.Seq, last)
			last = e.Seq
			require.False(t, seen[string(e.Payload)], "duplicate %s", e.Payload)
			seen[string(e.Payload)] = true
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case err := <-errs:
			require.NoError(t, err)
			writers--
		case <-time.After(5 * time.Millisecond): // poll, as a reader in another process does
		case <-ctx.Done():
			t.Fatalf("saw %d of %d events", len(seen), want)
		}
	}
	assert.Len(t, seen, want)
}
