package eventlog_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seqrelay/seqrelay/eventlog"
	"github.com/seqrelay/seqrelay/eventlog/logtest"
)

func TestMemoryConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) eventlog.Log { return eventlog.NewMemory() })
}

func TestWatcherBindsReaderID(t *testing.T) {
	l := eventlog.NewMemory()
	_, err := eventlog.NewWatcher(l, "")
	require.ErrorIs(t, err, eventlog.ErrInvalidReaderID)

	w, err := eventlog.NewWatcher(l, "orders")
	require.NoError(t, err)
	ctx := context.Background()
	assert.Equal(t, "orders", w.ID())
	require.NoError(t, w.Checkpoint(ctx, 4))
	cp, err := l.LastCheckpoint(ctx, "orders")
	require.NoError(t, err)
	assert.EqualValues(t, 4, cp)
	cp, err = w.LastCheckpoint(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 4, cp)
}

func TestNotifierBroadcasts(t *testing.T) {
	var n eventlog.Notifier
	a, b := n.Wait(), n.Wait()
	n.Notify()
	<-a
	<-b
	c := n.Wait()
	select {
	case <-c:
		t.Fatal("a new Wait channel must not be closed by an earlier Notify")
	default:
	}
	n.Notify()
	<-c
}
