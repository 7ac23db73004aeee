package dispatcher_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/dispatcher"
	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/internal/dispatchertest"
	"github.com/seqrelay/seqrelay/internal/natsrv"
)

const stream = dispatchertest.Stream

// fixture is one test's world: a target (an embedded NATS server with the
// stream) and an event log.
type fixture struct {
	*dispatchertest.Target
	log eventlog.Log
}

func newFixture(t *testing.T) *fixture {
	return newFixtureWith(t, natsrv.Options{}, eventlog.NewMemory())
}

func newFixtureWith(t *testing.T, opts natsrv.Options, log eventlog.Log) *fixture {
	t.Helper()
	t.Cleanup(func() { log.Close() })
	return &fixture{Target: dispatchertest.NewTarget(t, opts), log: log}
}

func ctx(t *testing.T) context.Context { return dispatchertest.Context(t) }

// newDispatcher builds a dispatcher over the fixture's log.
func (f *fixture) newDispatcher(o dispatchertest.Options) *dispatcher.Dispatcher {
	f.T.Helper()
	return f.Dispatcher(f.log, o)
}

// append appends n events of type order.created with payloads {"n":i}.
func (f *fixture) append(n int) []uint64 {
	f.T.Helper()
	evs := make([]eventlog.Event, n)
	for i := range evs {
		evs[i] = eventlog.Event{Type: "order.created", Payload: fmt.Appendf(nil, `{"n":%d}`, i)}
	}
	seqs, err := f.log.Append(dispatchertest.Context(f.T), evs...)
	require.NoError(f.T, err)
	return seqs
}
