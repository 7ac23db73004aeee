package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog/sqlite"
	"github.com/seqrelay/seqrelay/internal/natsrv"
	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/internal/verify"
)

// result is one run of the command line.
type result struct {
	code     int
	out, err string
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHelpAndUnknownCommand(t *testing.T) {
	r := run(t, "", "help")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.out, "run ")
	assert.Contains(t, r.out, "append ")
	r = run(t, "")
	assert.Equal(t, 2, r.code)
	r = run(t, "", "frobnicate")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.err, `unknown command "frobnicate"`)
	r = run(t, "", "run", "-h")
	assert.Equal(t, 0, r.code)
	assert.Contains(t, r.out, "-stall-timeout")
}

func TestAppend(t *testing.T) {
	store := filepath.Join(t.TempDir(), "events.db")
	r := run(t, "", "append", "--store", store, "--type", "order.created", "--payload", `{"id": 1}`, "--meta", "tenant=a")
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, "appended event 1\n", r.out)

	lines := `{"type": "order.paid", "payload": {"id": 1}}

{"type": "order.shipped", "payload": "box", "metadata": {"carrier": "x"}}
{"type": "order.closed"}
`
	r = run(t, lines, "append", "--store", store)
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, "appended 3 events: 2-4\n", r.out)

	l, err := sqlite.Open(context.Background(), store)
	require.NoError(t, err)
	defer l.Close()
	evs, err := l.Read(context.Background(), 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 4)
	assert.Equal(t, `{"id":1}`, string(evs[0].Payload))
	assert.Equal(t, map[string]string{"tenant": "a"}, evs[0].Metadata)
	assert.Equal(t, `"box"`, string(evs[2].Payload))
	assert.Equal(t, "x", evs[2].Metadata["carrier"])
	assert.Equal(t, "null", string(evs[3].Payload))
}

func TestAppendBadInputAppendsNothing(t *testing.T) {
	store := filepath.Join(t.TempDir(), "events.db")
	require.Equal(t, 0, run(t, "", "append", "--store", store, "--type", "a").code)
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"payload not JSON", "", []string{"--type", "a", "--payload", "{oops"}, 2, "--payload is not valid JSON"},
		{"meta without =", "", []string{"--type", "a", "--meta", "novalue"}, 2, `"novalue": want key=value`},
		{"payload without type", "", []string{"--payload", "1"}, 2, "need --type"},
		{"empty stdin", "", nil, 1, "no events on stdin"},
		{"line not JSON", "{\"type\":\"a\"}\nnot json\n", nil, 1, "line 2: not an event"},
		{"unknown field", `{"typ":"a"}`, nil, 1, `line 1: not an event: json: unknown field "typ"`},
		{"missing type", `{"payload":1}`, nil, 1, "line 1: invalid event: type is empty"},
		{"two values on a line", `{"type":"a"} {"type":"b"}`, nil, 1, "line 1: more than one JSON value"},
		{"payload not JSON in line", `{"type":"a","payload":nope}`, nil, 1, "line 1: not an event"},
		{"positional argument", "", []string{"extra"}, 2, `unexpected argument "extra"`},
		{"unknown flag", "", []string{"--tpye", "a"}, 2, "flag provided but not defined: -tpye"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.stdin, append([]string{"append", "--store", store}, tc.args...)...)
			assert.Equal(t, tc.code, r.code, r.err)
			assert.Contains(t, r.err, tc.want)
			lines := 1
			if tc.code == 2 {
				lines = 2 // plus the hint to run -h
			}
			assert.Len(t, strings.Split(strings.TrimSpace(r.err), "\n"), lines, r.err)
		})
	}
	l, err := sqlite.Open(context.Background(), store)
	require.NoError(t, err)
	defer l.Close()
	head, err := l.Head(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 1, head, "no bad call appended anything")
}

func TestRunRefusesBadStoresAndFlags(t *testing.T) {
	dir := t.TempDir()
	notLog := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notLog, bytes.Repeat([]byte("not a database "), 100), 0o644))
	srv := natstest.Start(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing store", []string{"--store", filepath.Join(dir, "nope.db")}, 1, "event log file does not exist"},
		{"not an event log", []string{"--store", notLog}, 1, "not a seqrelay event log"},
		{"unreadable store", []string{"--store", filepath.Join(notLog, "events.db")}, 1, "not a directory"},
		{"store is a directory", []string{"--store", dir}, 1, "it is a directory"},
		{"postgres not built", []string{"--store", "mysql://x"}, 2, "only SQLite"},
		{"unreachable NATS", []string{"--nats", "nats://127.0.0.1:1"}, 1, "cannot reach NATS at nats://127.0.0.1:1"},
		{"bad config", []string{"--stall-timeout", "1s"}, 2, "--stall-check-interval is 30s: must be less than --stall-timeout (1s)"},
		{"negative duration", []string{"--seek-timeout", "-1s"}, 2, "--seek-timeout is -1s: must be positive"},
		{"not a duration", []string{"--seek-timeout", "soon"}, 2, `invalid value "soon" for flag -seek-timeout`},
		{"bad poison", []string{"--poison", "drop"}, 2, `unknown poison policy "drop"`},
		{"bad stream", []string{"--stream", "a.b"}, 2, "--stream"},
		{"bad prefix", []string{"--subject-prefix", "a..b"}, 2, "--subject-prefix"},
		{"bad id", []string{"--id", ""}, 2, "--id"},
		{"bad batch", []string{"--batch-size", "0"}, 2, "--batch-size 0"},
		{"bad log level", []string{"--log-level", "loud"}, 2, "--log-level"},
		{"bad nats port", []string{"--nats-port", "70000"}, 2, "--nats-port 70000"},
		{"bad target", []string{"--target", "kafka"}, 2, `--target "kafka": use jetstream or core`},
		{"missing stream, no create", []string{"--nats", srv.URL(), "--create-stream=false", "--stream", "NOPE"}, 1, `stream "NOPE" does not exist and --create-stream=false`},
		{"missing creds file", []string{"--nats", srv.URL(), "--nats-creds", filepath.Join(dir, "x.creds")}, 1, "--nats-creds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(tc.name, "store") && tc.name != "not an event log" {
				// the default store would be created in the data dir
				tc.args = append([]string{"--data", t.TempDir()}, tc.args...)
			}
			r := run(t, "", append([]string{"run"}, tc.args...)...)
			assert.Equal(t, tc.code, r.code, r.err)
			assert.Contains(t, r.err, tc.want)
			assert.NotContains(t, r.err, "goroutine", "no stack traces")
		})
	}
}

// TestRunDeliversUntilInterrupted runs the main job against a NATS server,
// appends with the append command while it runs, and interrupts it.
func TestRunDeliversUntilInterrupted(t *testing.T) {
	store := filepath.Join(t.TempDir(), "events.db")
	require.Equal(t, 0, run(t, "", "append", "--store", store, "--type", "first").code)
	out := runDelivers(t, store)
	assert.Contains(t, out, "stream:     ORDERS (created, subjects orders.>")
}

// runDelivers runs `seqrelay run` on a store that holds one event, appends
// 50 more with `seqrelay append` while it runs, waits until the stream
// holds all 51, interrupts it, checks the stream and the final status, and
// returns what run printed.
func runDelivers(t *testing.T, store string, extra ...string) string {
	t.Helper()
	srv := natstest.Start(t)
	b := startBackground(t, append([]string{"run", "--store", store, "--nats", srv.URL(), "--stream", "ORDERS",
		"--subjects", "orders.>", "--subject-prefix", "orders", "--checkpoint-interval", "50ms", "--id", "o1"}, extra...)...)
	b.waitFor(t, "delivering from event 1")
	assert.Contains(t, b.out.String(), "nats:       "+srv.URL())

	var lines strings.Builder
	for i := range 50 {
		fmt.Fprintf(&lines, `{"type":"order.created","payload":{"n":%d}}`+"\n", i)
	}
	r := run(t, lines.String(), "append", "--store", store)
	require.Equal(t, 0, r.code, r.err)
	assert.Equal(t, "appended 50 events: 2-51\n", r.out)

	js, err := jetstream.New(natstest.Connect(t, srv.URL()))
	require.NoError(t, err)
	waitFor(t, func() bool {
		rep, err := verify.Stream(context.Background(), js, "ORDERS")
		return err == nil && rep.Messages == 51
	})
	assert.Equal(t, 0, b.stop(t), b.err.String())
	assert.Contains(t, b.out.String(), "stopped: acked 51, observed 51, checkpoint 51")
	rep, err := verify.Stream(context.Background(), js, "ORDERS")
	require.NoError(t, err)
	assert.True(t, rep.ExactlyOnce(1, 51), rep.String())
	return b.out.String()
}

func TestDemo(t *testing.T) {
	r := run(t, "", "demo", "--events", "3000", "--dir", t.TempDir())
	require.Equal(t, 0, r.code, r.err)
	for _, want := range []string{"delivered:   3000", "in order:    yes", "duplicates:  0", "gaps:        0", "events/s:", "final state: LastAckedSeqNum=3000 LastObservedSeqNum=3000 LastCheckpoint=3000"} {
		assert.Contains(t, r.out, want)
	}
	r = run(t, "", "demo", "--events", "0")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.err, "--events 0")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 30*time.Second, 10*time.Millisecond)
}

// TestRunWithEmbeddedDefaults: no flags but the data directory (and a free
// port): an SQLite file there and an embedded NATS with JetStream.
func TestRunWithEmbeddedDefaults(t *testing.T) {
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "--data", data, "--nats-port", "0", "--status-interval", "20ms"}, strings.NewReader(""), &out, &errb)
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "delivering from event 1") })
	assert.Contains(t, out.String(), "store:      "+filepath.Join(data, "events.db"))
	assert.Contains(t, out.String(), "(embedded, JetStream data in "+filepath.Join(data, "nats"))
	assert.Contains(t, out.String(), "stream:     SEQRELAY (created, subjects seqrelay.>")
	r := run(t, "", "append", "--data", data, "--type", "hello")
	require.Equal(t, 0, r.code, r.err)
	waitFor(t, func() bool { return strings.Contains(out.String(), "status: acked 1,") })
	cancel()
	require.Equal(t, 0, <-done, errb.String())
	assert.Contains(t, out.String(), "stopped: acked 1, observed 1, checkpoint 1")
}

// TestRunWithCredentials: wrong credentials are one clear line; the right
// ones (in the URL) work.
func TestRunWithCredentials(t *testing.T) {
	srv := natstest.StartWith(t, natsrv.Options{Username: "relay", Password: "s3cret"})
	hostPort := strings.TrimPrefix(srv.URL(), "nats://")
	r := run(t, "", "run", "--data", t.TempDir(), "--nats", "nats://relay:wrong@"+hostPort)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "NATS at nats://***@"+hostPort+" refused the credentials")
	assert.NotContains(t, r.err, "wrong", "no password in messages")

	b := startBackground(t, "run", "--data", t.TempDir(), "--nats", "nats://relay:s3cret@"+hostPort)
	b.waitFor(t, "delivering from event 1")
	assert.NotContains(t, b.out.String(), "s3cret")
	assert.Equal(t, 0, b.stop(t))
}

// TestRunCoreTarget: with --target core the start-up says which guarantee
// remains, and events reach plain subscribers.
func TestRunCoreTarget(t *testing.T) {
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL())
	got := make(chan string, 10)
	sub, err := nc.Subscribe("seqrelay.events.>", func(m *nats.Msg) { got <- m.Header.Get("Bacalhau-SeqNum") })
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, nc.Flush())
	store := filepath.Join(t.TempDir(), "events.db")
	require.Equal(t, 0, run(t, "", "append", "--store", store, "--type", "hello").code)
	b := startBackground(t, "run", "--store", store, "--nats", srv.URL(), "--target", "core")
	b.waitFor(t, "delivering from event 1")
	assert.Contains(t, b.out.String(), "target:     core NATS (no JetStream): a message is sent at most once per attempt")
	assert.Contains(t, b.out.String(), "at least once")
	select {
	case seq := <-got:
		assert.Equal(t, "1", seq)
	case <-time.After(30 * time.Second):
		t.Fatal("no message on core NATS")
	}
	assert.Equal(t, 0, b.stop(t))
}
