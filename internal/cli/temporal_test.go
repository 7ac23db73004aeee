package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/server/temporaltest"

	"github.com/seqrelay/seqrelay/internal/natstest"
	"github.com/seqrelay/seqrelay/workflows"
)

// background runs a long-running command until the test ends.
type background struct {
	out, err syncBuffer
	done     chan int
	cancel   context.CancelFunc
}

func startBackground(t *testing.T, args ...string) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{done: make(chan int, 1), cancel: cancel}
	go func() { b.done <- Main(ctx, args, strings.NewReader(""), &b.out, &b.err) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(time.Minute):
			t.Errorf("%s did not stop", args[0])
		}
	})
	return b
}

func (b *background) waitFor(t *testing.T, text string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(b.out.String(), text) }, time.Minute, 10*time.Millisecond,
		"waiting for %q; stdout: %s; stderr: %s", text, b.out.String(), b.err.String())
}

func (b *background) stop(t *testing.T) int {
	b.cancel()
	select {
	case code := <-b.done:
		b.done <- code
		return code
	case <-time.After(time.Minute):
		t.Fatal("did not stop")
		return -1
	}
}

// stateOf runs `seqrelay state`; ok is false when it failed.
func stateOf(t *testing.T, args ...string) (workflows.Status, bool) {
	r := run(t, "", append([]string{"state"}, args...)...)
	var st workflows.Status
	if r.code != 0 || json.Unmarshal([]byte(r.out), &st) != nil {
		return st, false
	}
	return st, true
}

// waitState runs `seqrelay state` until cond holds.
func waitState(t *testing.T, args []string, cond func(workflows.Status) bool) workflows.Status {
	t.Helper()
	var (
		mu   sync.Mutex
		last workflows.Status
	)
	ok := assert.Eventually(t, func() bool {
		st, ok := stateOf(t, args...)
		mu.Lock()
		defer mu.Unlock()
		last = st
		return ok && cond(st)
	}, time.Minute, 50*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if !ok {
		t.Fatalf("state never met the condition; last: %+v", last)
	}
	return last
}

// TestTemporalCommands drives worker, start, state, pause, resume and stop
// against a real Temporal server.
func TestTemporalCommands(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	srv := natstest.Start(t)
	store := filepath.Join(t.TempDir(), "events.db")
	require.Equal(t, 0, run(t, "", "append", "--store", store, "--type", "first").code)
	tflags := []string{"--temporal", ts.GetFrontendHostPort(), "--namespace", ts.GetDefaultNamespace(), "--task-queue", "q"}

	w := startBackground(t, append([]string{"worker", "--store", store, "--nats", srv.URL()}, tflags...)...)
	w.waitFor(t, "worker running")
	assert.Contains(t, w.out.String(), "stream:     SEQRELAY (created")

	r := run(t, "", append([]string{"start", "--id", "orders", "--checkpoint-interval", "100ms", "--stall-timeout", "5s", "--stall-check-interval", "1s", "--batch-duration", "1s"}, tflags...)...)
	require.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.out, "started workflow seqrelay-orders")
	assert.Contains(t, r.out, "temporal workflow query --workflow-id seqrelay-orders --type state")

	r = run(t, "", append([]string{"start", "--id", "orders"}, tflags...)...)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.err, "workflow seqrelay-orders is already running")

	var lines strings.Builder
	for i := range 99 {
		fmt.Fprintf(&lines, `{"type":"order.created","payload":{"n":%d}}`+"\n", i)
	}
	require.Equal(t, 0, run(t, lines.String(), "append", "--store", store).code)
	state := append([]string{"--id", "orders"}, tflags...)
	st := waitState(t, state, func(s workflows.Status) bool { return s.LastCheckpoint == 100 })
	assert.EqualValues(t, 100, st.LastAckedSeqNum)
	assert.EqualValues(t, 100, st.Published)

	r = run(t, "", append([]string{"pause"}, state...)...)
	require.Equal(t, 0, r.code, r.err)
	waitState(t, state, func(s workflows.Status) bool { return s.Paused })
	require.Equal(t, 0, run(t, "", append([]string{"resume"}, state...)...).code)
	waitState(t, state, func(s workflows.Status) bool { return !s.Paused })

	r = run(t, "", append([]string{"stop"}, state...)...)
	require.Equal(t, 0, r.code, r.err)
	assert.Contains(t, r.out, "sent stop to seqrelay-orders")
	assert.Contains(t, r.out, `"LastCheckpoint": 100`)
	assert.Equal(t, 0, w.stop(t))
}

func TestTemporalCommandErrors(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	tflags := []string{"--temporal", ts.GetFrontendHostPort(), "--namespace", ts.GetDefaultNamespace()}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"invalid config", append([]string{"start", "--id", "o", "--stall-timeout", "1s"}, tflags...), 2, "--stall-check-interval is 30s: must be less than --stall-timeout (1s)"},
		{"invalid stream", append([]string{"start", "--id", "o", "--stream", "a.b"}, tflags...), 2, "Stream: stream name"},
		{"no such workflow", append([]string{"state", "--id", "nobody"}, tflags...), 1, "no workflow seqrelay-nobody"},
		{"no such namespace", []string{"state", "--temporal", ts.GetFrontendHostPort(), "--namespace", "nope"}, 1, `namespace "nope" does not exist`},
		{"signal to nothing", append([]string{"pause", "--id", "nobody"}, tflags...), 1, "no running workflow seqrelay-nobody"},
		{"unreachable", []string{"state", "--temporal", "127.0.0.1:1"}, 1, "cannot reach Temporal at 127.0.0.1:1"},
		{"worker without store", append([]string{"worker", "--store", filepath.Join(t.TempDir(), "missing.db")}, tflags...), 1, "event log file does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "", tc.args...)
			assert.Equal(t, tc.code, r.code, r.err)
			assert.Contains(t, r.err, tc.want)
		})
	}
}

// TestDev starts `seqrelay dev` and uses what it prints: start a
// dispatcher, append events to its store, read its state.
func TestDev(t *testing.T) {
	data := t.TempDir()
	d := startBackground(t, "dev", "--data", data, "--temporal-port", "0", "--nats-port", "0")
	d.waitFor(t, "running; Ctrl-C to stop")
	out := d.out.String()
	addr := regexp.MustCompile(`temporal:\s+(\S+)`).FindStringSubmatch(out)
	require.Len(t, addr, 2, out)
	for _, want := range []string{"namespace:  default", "task queue: seqrelay", "nats:       nats://127.0.0.1:", "store:      " + filepath.Join(data, "events.db")} {
		assert.Contains(t, out, want)
	}
	tflags := []string{"--temporal", addr[1]}
	r := run(t, "", append([]string{"start", "--id", "orders", "--checkpoint-interval", "100ms"}, tflags...)...)
	require.Equal(t, 0, r.code, r.err)
	r = run(t, "", "append", "--store", filepath.Join(data, "events.db"), "--type", "order.created", "--payload", `{"id":1}`)
	require.Equal(t, 0, r.code, r.err)
	state := append([]string{"--id", "orders"}, tflags...)
	waitState(t, state, func(s workflows.Status) bool { return s.LastAckedSeqNum == 1 })
	assert.Equal(t, 0, d.stop(t), d.err.String())
}
