package crashtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog/sqlite"
)

// dispatcherRuntime is a way of running the dispatcher as a process that
// the harness can crash. The harness starts the process with args, kills it
// with SIGKILL at random moments and starts it again, restarts NATS under
// it, and finally stops it with SIGINT once the stream holds every event.
//
// The in-process runtime runs `seqrelay run`. A Temporal runtime would
// start a Temporal dev server and the dispatcher workflow in prepare, and
// run `seqrelay worker` as the process.
type dispatcherRuntime interface {
	// name labels the runtime: it is the subtest's name.
	name() string
	// prepare readies what outlives the dispatcher processes, once, before
	// the first one starts. It may register cleanups with t.
	prepare(t *testing.T, e *env)
	// args returns the command line of dispatcher process n (1, 2, ...),
	// after the binary.
	args(e *env, n int) []string
	// ready reports whether a line of the process's stdout says that it
	// has started delivering.
	ready(line string) bool
	// caughtUp reports whether a line of the process's stdout says that
	// it has delivered, and had acknowledged, events 1..n. The harness stops
	// the last process only then.
	caughtUp(line string, n uint64) bool
	// checkStopped checks what a process stopped with SIGINT printed on
	// stdout, and the state it left, once the stream held every event.
	checkStopped(t *testing.T, e *env, stdout []string)
}

// env is the world a runtime works in.
type env struct {
	bin      string        // the seqrelay binary
	dir      string        // the test's work directory
	store    string        // the SQLite event log
	natsURL  string        // the embedded NATS server
	stream   string        // the target stream (created by the test)
	subjects string        // the stream's subjects
	prefix   string        // subject prefix: an event of type T goes to prefix.T
	id       string        // dispatcher ID: its checkpoint and message IDs
	dedupe   time.Duration // the stream's de-duplication window
	events   uint64        // how many events the test appends
}

// inProcess runs the in-process dispatcher: `seqrelay run`. Its settings
// make it recover fast: short retries and stall detection, and mostly
// frequent checkpoints. Every second process checkpoints only every 5s, so
// that its successor often starts from a checkpoint well behind the
// stream: after a NATS outage longer than the de-duplication window, only
// the reconciliation with the stream's newest message keeps it from
// sending those events again.
type inProcess struct{}

func (inProcess) name() string { return "inprocess" }

func (inProcess) prepare(*testing.T, *env) {}

func (inProcess) args(e *env, n int) []string {
	checkpoint := "100ms"
	if n%2 == 0 {
		checkpoint = "5s"
	}
	return []string{"run",
		"--store", e.store,
		"--data", e.dir,
		"--nats", e.natsURL,
		"--stream", e.stream,
		"--subjects", e.subjects,
		"--subject-prefix", e.prefix,
		"--create-stream=false", // the test made it; a missing stream is a failure, not a new empty one
		"--dedupe-window", e.dedupe.String(),
		"--id", e.id,
		"--checkpoint-interval", checkpoint,
		"--stall-timeout", "3s",
		"--stall-check-interval", "250ms",
		"--base-retry-interval", "50ms",
		"--max-retry-interval", "1s",
		"--status-interval", "1s",
		"--log-level", "info",
	}
}

func (inProcess) ready(line string) bool { return strings.HasPrefix(line, "delivering from event ") }

// caughtUp: the status line, printed every --status-interval.
func (inProcess) caughtUp(line string, n uint64) bool {
	return strings.HasPrefix(line, fmt.Sprintf("status: acked %d, observed %d,", n, n))
}

// checkStopped: the final status line says everything was acknowledged and
// checkpointed, and the store holds that checkpoint.
func (inProcess) checkStopped(t *testing.T, e *env, stdout []string) {
	t.Helper()
	want := fmt.Sprintf("stopped: acked %d, observed %d, checkpoint %d,", e.events, e.events, e.events)
	assert.Contains(t, strings.Join(stdout, "\n"), want, "the final status of the stopped dispatcher")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := sqlite.Open(ctx, e.store)
	require.NoError(t, err)
	defer l.Close()
	cp, err := l.LastCheckpoint(ctx, e.id)
	require.NoError(t, err)
	assert.Equal(t, e.events, cp, "checkpoint of dispatcher %q in the store after the graceful stop", e.id)
}
